package node

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
)

func newKey(t *testing.T) secure.KeyPair {
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TestAuthorizeCurveRoles: with Curve each role asks its own list only: a
// key on one list grants nothing on another, and CURVE takes the union.
func TestAuthorizeCurveRoles(t *testing.T) {
	c, s, a, x := newKey(t), newKey(t), newKey(t), newKey(t)
	acc := newAccess(Access{Clients: secure.NewAllowList(c.Public), Servers: secure.NewAllowList(s.Public),
		Admins: secure.NewAllowList(a.Public), Tunnels: secure.NewAllowList(x.Public)}, true, nil, slog.New(slog.DiscardHandler))
	lo := netip.MustParseAddrPort("127.0.0.1:5000")
	want := map[secure.PublicKey][3]bool{ // client, server, admin
		c.Public: {true, false, false},
		s.Public: {false, true, false},
		a.Public: {false, false, true},
		x.Public: {false, false, false}, // a tunnel key is nothing on the ZMTP port
	}
	for k, w := range want {
		for i, r := range []registry.Role{registry.RoleClient, registry.RoleServer, registry.RoleAdmin} {
			if got := acc.authorize(registry.Peer{Key: k.String(), Addr: lo}, r); got != w[i] {
				t.Errorf("key %s role %s: %v, want %v", k, r, got, w[i])
			}
		}
		if got := acc.curvePeer(k); got != (k != x.Public) {
			t.Errorf("CURVE accepts %s: %v", k, got)
		}
	}
	// No key (cannot happen on a CURVE port): nothing, loopback or not.
	for _, r := range []registry.Role{registry.RoleClient, registry.RoleServer, registry.RoleAdmin} {
		if acc.authorize(registry.Peer{Addr: lo}, r) {
			t.Errorf("a peer without a key is %s", r)
		}
	}
}

// TestAuthorizeNullAddresses: without Curve, clients are anyone, servers
// only a --join peer's address or a ServerAddrs prefix (never ipc), admins
// loopback and ipc only.
func TestAuthorizeNullAddresses(t *testing.T) {
	acc := newAccess(Access{ServerAddrs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::7/128")}},
		false, []string{"192.0.2.9:8420", "localhost"}, slog.New(slog.DiscardHandler))
	for _, c := range []struct {
		addr                  string // "" for ipc
		client, server, admin bool
	}{
		{"192.0.2.9:40000", true, true, false}, // a --join peer, any source port
		{"192.0.2.10:40000", true, false, false},
		{"10.1.200.3:1", true, true, false},        // --join-allow 10.1.0.0/16
		{"[fd00::7]:1", true, true, false},         // --join-allow fd00::7
		{"[::ffff:10.1.0.1]:1", true, true, false}, // v4-mapped is the v4 address
		{"127.0.0.1:1", true, true, true},          // localhost is a --join peer here
		{"127.0.0.2:1", true, false, true},
		{"203.0.113.5:1", true, false, false}, // an arbitrary registry client
		{"", true, false, true},               // ipc: local, but never a join link
	} {
		var p registry.Peer
		if c.addr != "" {
			p.Addr = netip.MustParseAddrPort(c.addr)
		}
		got := [3]bool{acc.authorize(p, registry.RoleClient), acc.authorize(p, registry.RoleServer), acc.authorize(p, registry.RoleAdmin)}
		if got != [3]bool{c.client, c.server, c.admin} {
			t.Errorf("%q: client/server/admin %v, want %v", c.addr, got, [3]bool{c.client, c.server, c.admin})
		}
	}
}
