package registry

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/hydra-net/hydra/internal/repeatlog"
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

// verbRole is the role verb needs; any: any role will do (PING, INFO).
func verbRole(verb string) (r Role, any bool) {
	switch verb {
	case VerbPing, VerbInfo:
		return RoleClient, true
	case VerbSync:
		return RoleServer, false
	case VerbJoin, VerbLeave:
		return RoleAdmin, false
	}
	return RoleClient, false
}

// allowed says whether the peer of routing id may act in role r. A peer
// gone meanwhile may do nothing (its reply would go nowhere anyway).
func (s *Server) allowed(id []byte, r Role) bool {
	return s.allowedVerb(id, r, false)
}

func (s *Server) allowedVerb(id []byte, r Role, any bool) bool {
	if s.cfg.Authorize == nil && r == RoleClient {
		return true // the default lets anyone be a client: no lookup per request
	}
	pi, ok := s.sock.Peer(id)
	if !ok {
		return false
	}
	p := peerOf(pi)
	if !any {
		return s.authorize(p, r)
	}
	for _, r := range roles {
		if s.authorize(p, r) {
			return true
		}
	}
	return false
}

// forbiddenRole is the ERR of a verb whose role the peer lacks.
func forbiddenRole(verb string, r Role) *Error {
	return &Error{Code: CodeForbidden, Message: fmt.Sprintf("%s needs the %s role, which this connection's peer does not have", verb, r)}
}

// refused logs a request refused for its role, at Warn once per peer
// address, verb and key with a count after (a client retrying must not
// flood the log).
func (s *Server) refused(id []byte, verb string, r Role) {
	pi, ok := s.sock.Peer(id)
	if !ok {
		// Its connection closed (cut off, or it hung up) after the request
		// arrived: nobody to refuse, and no role was missing.
		s.log.Debug("registry: request from a peer that has gone", "verb", verb)
		return
	}
	p := peerOf(pi)
	who := p.Addr.Addr().String()
	if !p.Addr.IsValid() {
		who = "local"
	}
	if p.Key != "" {
		who += " key " + p.Key
	}
	f := s.refusals[who+" "+verb]
	if f == nil {
		if len(s.refusals) >= maxRefusals {
			clear(s.refusals) // bounded: an attacker with many addresses only resets the counts
		}
		f = &repeatlog.Failures{}
		s.refusals[who+" "+verb] = f
	}
	f.Fail(s.log, "registry: request refused: role missing", verb+" needs "+r.String(), "peer", who, "verb", verb)
}

// maxRefusals bounds the refusal counters kept for logging.
const maxRefusals = 1024

// requestID is the "id" of a request body that parseRequest never saw (a
// refused SYNC), so that a client matching replies by id gets its ERR.
func requestID(frames [][]byte) json.RawMessage {
	if len(frames) != 2 {
		return nil
	}
	var b struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(frames[1], &b) != nil {
		return nil
	}
	return b.ID
}

// identity is who registers through the peer of routing id, for the
// per-client quota: its CURVE key, or without one its source address (an
// IPv6 address by its /64, what one host gets), or "local" for ipc and
// inproc peers. Tokens do not count: anyone can make more. who says it for
// an error message.
func (s *Server) identity(id []byte) (ident, who string) {
	pi, ok := s.sock.Peer(id)
	if !ok {
		return "gone", "a connection that is gone"
	}
	p := peerOf(pi)
	switch {
	case p.Key != "":
		return "key " + p.Key, "key " + p.Key
	case !p.Addr.IsValid():
		return "local", "local peers (ipc, inproc)"
	case p.Addr.Addr().Is6():
		pfx, _ := p.Addr.Addr().Prefix(64)
		return "addr " + pfx.String(), "address " + pfx.String()
	}
	a := p.Addr.Addr().String()
	return "addr " + a, "address " + a
}

// Instance ids are derived from the token that registered them (PROTOCOL.md
// §8): a random nonce, then a tag that only that token yields. After a
// restart, whoever sends an id back must hold its token: ids are public,
// tokens are not, and finding another token with the same 64-bit tag is
// out of reach.
const (
	idNonceLen = 8  // hex digits
	idTagLen   = 16 // hex digits
	idLen      = idNonceLen + idTagLen
)

func newInstanceID(token string) string {
	nonce := randomHex(idNonceLen / 2)
	return nonce + instanceTag(token, nonce)
}

func instanceTag(token, nonce string) string {
	h := sha256.New()
	h.Write([]byte("hydra instance id\x00"))
	h.Write([]byte(token))
	h.Write([]byte{0})
	h.Write([]byte(nonce))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:idTagLen/2])
}

// tokenOwns reports whether id was derived from token.
func tokenOwns(token, id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return subtle.ConstantTimeCompare([]byte(id[idNonceLen:]), []byte(instanceTag(token, id[:idNonceLen]))) == 1
}
