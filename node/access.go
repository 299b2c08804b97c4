package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
)

// Access is who may do what on this server: one list of keys per role, so
// that a key on one list grants nothing on another (SECURITY.md). The
// lists are asked at every request (registry) and handshake (CURVE,
// Noise): a *secure.AllowList changes in place when Node.Reload re-reads
// its file.
//
// With Curve, the ZMTP port's CURVE accepts a key on any of Clients,
// Servers and Admins, and each request is then checked against the list
// of the role its verb needs (registry.Role). Without Curve (NULL: no
// keys on the ZMTP port) peers are told apart by address only: clients
// anyone, servers only from the Join.Peers' addresses and ServerAddrs,
// admins only loopback and ipc.
type Access struct {
	// Clients may register, look up and watch, with Curve (by their
	// CURVE key; secure.AllowAny for encryption without authorization).
	// Default nil: with Curve nobody; without Curve anyone.
	Clients secure.Authorizer
	// Servers may open join links and send SYNC, with Curve. A servers'
	// list (secure.LoadServerList) carries each server's signing key too,
	// for join's trusted origins (TrustsSigner), with Curve or without
	// (then only that: join links are taken by address). Default nil: with
	// Curve nobody.
	Servers secure.Authorizer
	// Tunnels may open tunnels to this server (their Noise static key).
	// Default nil: inbound tunnels are refused.
	Tunnels secure.Authorizer
	// Admins may use run-time control (JOIN, LEAVE), with Curve. Default
	// nil: with Curve nobody; without Curve, loopback and ipc peers.
	Admins secure.Authorizer
	// ServerAddrs are the addresses join links may come from without
	// Curve, besides the addresses the Join.Peers resolve to (at start and
	// at each Reload). Default none: only the Join.Peers.
	ServerAddrs []netip.Prefix
}

// validate: the clients' and admins' lists need Curve, and the addresses
// need NULL, so that no setting is silently without effect. The servers'
// list is allowed without Curve: there it names the signing keys whose
// origins join trusts (join links are then taken by address).
func (a Access) validate(curve bool) error {
	if curve {
		if len(a.ServerAddrs) > 0 {
			return &ConfigError{"Access.ServerAddrs", errors.New("without effect with Curve: joining servers are known by their key (Access.Servers)")}
		}
		return nil
	}
	for _, l := range []struct {
		field string
		a     secure.Authorizer
	}{{"Access.Clients", a.Clients}, {"Access.Admins", a.Admins}} {
		if l.a != nil {
			return &ConfigError{l.field, errors.New("needs Curve (without CURVE on the ZMTP port no peer has a key)")}
		}
	}
	return nil
}

// access is Access at run time: what the registry's Authorize and CURVE
// ask, safe for concurrent use.
type access struct {
	Access
	curve   bool
	peers   []string // Join.Peers, HOST:PORT
	log     *slog.Logger
	peerIPs atomic.Pointer[[]netip.Addr] // the Join.Peers' addresses, NULL only
}

func newAccess(a Access, curve bool, peers []string, log *slog.Logger) *access {
	ac := &access{Access: a, curve: curve, peers: peers, log: log}
	ac.resolvePeers()
	return ac
}

// resolveTimeout bounds the lookup of the Join.Peers' names: start and
// SIGHUP must not hang on a dead resolver.
const resolveTimeout = 2 * time.Second

// resolvePeers looks up the addresses of the Join.Peers (NULL only: with
// Curve a server is known by its key, not where it comes from). A name that
// does not resolve is logged and grants nothing until a later Reload.
func (a *access) resolvePeers() {
	if a.curve {
		return
	}
	var ips []netip.Addr
	for _, p := range a.peers {
		addr, err := join.ParseAddr(p)
		if err != nil {
			continue // Validate said so already
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = append(ips, ip.Unmap())
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		got, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		if err != nil {
			a.log.Debug("join: a --join peer's name does not resolve: its join links are refused until a SIGHUP resolves it (join's dial reports it too)", "peer", p, "err", err)
			continue
		}
		for _, ip := range got {
			ips = append(ips, ip.Unmap())
		}
	}
	a.peerIPs.Store(&ips)
}

// curvePeer is CURVE's Authorizer: a key on any list of the ZMTP port.
func (a *access) curvePeer(k secure.PublicKey) bool {
	return secure.Authorized(a.Clients, k) || secure.Authorized(a.Servers, k) || secure.Authorized(a.Admins, k)
}

// authorize is registry.Config.Authorize.
func (a *access) authorize(p registry.Peer, r registry.Role) bool {
	if a.curve {
		k, err := secure.ParsePublicKey(p.Key)
		if err != nil {
			return false // not a CURVE peer: cannot happen on a CURVE port
		}
		switch r {
		case registry.RoleClient:
			return secure.Authorized(a.Clients, k)
		case registry.RoleServer:
			return secure.Authorized(a.Servers, k)
		case registry.RoleAdmin:
			return secure.Authorized(a.Admins, k)
		}
		return false
	}
	switch r {
	case registry.RoleClient:
		return true
	case registry.RoleServer:
		return a.serverAddr(p.Addr)
	case registry.RoleAdmin:
		return registry.DefaultAuthorize(p, r) // loopback, ipc, inproc
	}
	return false
}

// serverAddr reports whether a NULL join link may come from ap: a --join
// peer's address or one of ServerAddrs. An ipc or inproc peer (no address)
// is not a server: join links are tcp.
func (a *access) serverAddr(ap netip.AddrPort) bool {
	if !ap.IsValid() {
		return false
	}
	ip := ap.Addr().Unmap()
	if ips := a.peerIPs.Load(); ips != nil && slices.Contains(*ips, ip) {
		return true
	}
	for _, pf := range a.ServerAddrs {
		if pf.Contains(ip) {
			return true
		}
	}
	return false
}

// reload re-reads every list backed by a file (each once, though it may
// serve several roles) and the Join.Peers' addresses.
func (a *access) reload() (reloaded bool, err error) {
	var errs []error
	seen := map[*secure.AllowList]bool{}
	for _, l := range []secure.Authorizer{a.Clients, a.Servers, a.Tunnels, a.Admins} {
		al, ok := l.(*secure.AllowList)
		if !ok || al.Path() == "" || seen[al] {
			continue
		}
		seen[al] = true
		reloaded = true
		if err := al.Reload(); err != nil {
			errs = append(errs, err)
		}
	}
	a.resolvePeers()
	return reloaded, errors.Join(errs...)
}
