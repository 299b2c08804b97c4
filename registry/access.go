package registry

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/hydra-net/hydra/zmtp"
)

// Role is what a peer of the registry's port may do. Every verb needs one
// (PROTOCOL.md, "Roles"): SYNC RoleServer, JOIN and LEAVE RoleAdmin, PING
// and INFO any role, the rest RoleClient.
type Role uint8

// The roles.
const (
	RoleClient Role = iota // registers, looks up, watches
	RoleServer             // a joined server: sends SYNC (replication)
	RoleAdmin              // run-time control: JOIN, LEAVE
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	case RoleAdmin:
		return "admin"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// roles lists every Role, for "refused every role" checks.
var roles = [...]Role{RoleClient, RoleServer, RoleAdmin}

// Peer is who sent a request, as Config.Authorize sees it.
type Peer struct {
	// Key is the CURVE client key the peer proved, in Z85; "" under NULL.
	Key string
	// Addr is the peer's address; invalid (!Addr.IsValid()) for ipc and
	// inproc peers, which are local by construction.
	Addr netip.AddrPort
}

// peerOf turns what the socket knows of a connection into a Peer.
func peerOf(pi zmtp.PeerInfo) Peer {
	p := Peer{Key: pi.UserID}
	if ta, ok := pi.RemoteAddr.(*net.TCPAddr); ok {
		p.Addr = ta.AddrPort()
		p.Addr = netip.AddrPortFrom(p.Addr.Addr().Unmap(), p.Addr.Port())
	}
	return p
}

// DefaultAuthorize is the Authorize a nil Config.Authorize means: clients
// anyone, servers nobody, admins only loopback, ipc and inproc peers.
func DefaultAuthorize(p Peer, r Role) bool {
	switch r {
	case RoleClient:
		return true
	case RoleAdmin:
		return !p.Addr.IsValid() || p.Addr.Addr().IsLoopback()
	}
	return false
}

// authorize says whether p may act in role r.
func (s *Server) authorize(p Peer, r Role) bool {
	if s.cfg.Authorize == nil {
		return DefaultAuthorize(p, r)
	}
	return s.cfg.Authorize(p, r)
}

// Recheck closes, within a second, every connection whose peer Authorize
// now refuses for every role: node calls it after SIGHUP re-read the key
// lists, so that a revoked key loses what it had established. Safe to call
// from any goroutine.
func (s *Server) Recheck() {
	n := s.sock.DropPeers(func(pi zmtp.PeerInfo) bool {
		p := peerOf(pi)
		for _, r := range roles {
			if s.authorize(p, r) {
				return false
			}
		}
		return true
	})
	if n > 0 {
		s.log.Info("registry: recheck closed connections", "count", n)
	}
}
