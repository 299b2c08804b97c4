package node_test

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
	"github.com/hydra-net/hydra/zmtp"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// curveClient is a registry client of n with key pair kp, through endpoint
// (n's own when "").
func curveClient(t *testing.T, n *nodetest.Running, kp secure.KeyPair, server secure.PublicKey, endpoint string) *registry.Client {
	if endpoint == "" {
		endpoint = n.Endpoint()
	}
	return nodetest.RegistryClient(t, endpoint, registry.ClientConfig{Security: curve.Client(kp, server)})
}

// rawSync sends a SYNC that is not link traffic on a REQ socket (with
// CURVE key kp when sec) and returns the ERR reply's code: "forbidden"
// when the peer may not act as a server at all, "bad_request" when it may
// (join then looked at the message).
func rawSync(t *testing.T, endpoint string, sec func() zmtp.Mechanism) string {
	t.Helper()
	s, err := zmtp.NewSocket(zmtp.REQ, zmtp.Config{Security: sec, RecvTimeout: 5 * time.Second, SendTimeout: 5 * time.Second, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Connect(endpoint); err != nil {
		t.Fatal(err)
	}
	if err := s.Send([]byte(registry.VerbSync), []byte("two"), []byte("frames")); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Recv()
	if err != nil {
		t.Fatalf("SYNC: no reply: %v", err)
	}
	var e struct {
		Code string `json:"code"`
	}
	if len(rep) != 2 || string(rep[0]) != "ERR" || json.Unmarshal(rep[1], &e) != nil {
		t.Fatalf("SYNC reply %q", rep)
	}
	return e.Code
}

func isForbidden(err error) bool {
	var re *registry.Error
	return errors.As(err, &re) && re.Code == registry.CodeForbidden
}

// TestRolesCurve: on a CURVE node a key grants only the role of its list:
// a client key cannot send SYNC or JOIN, nor open a tunnel; a server key
// cannot register; an admin key may JOIN.
func TestRolesCurve(t *testing.T) {
	srvKey, ck, sk, ak, tk := key(t), key(t), key(t), key(t), key(t)
	n := nodetest.Start(t, node.Config{Keys: &srvKey, Curve: true, Access: node.Access{
		Clients: secure.NewAllowList(ck.Public),
		Servers: secure.NewServerList(secure.ListedKey{Key: sk.Public, Sign: sk.Signer().Public, HasSign: true}),
		Admins:  secure.NewAllowList(ak.Public),
		Tunnels: secure.NewAllowList(tk.Public),
	}})
	ctx := testutil.Context(t, 20*time.Second)
	svc := registry.Service{Name: "web", Host: "10.0.0.5", Port: 80}

	client := curveClient(t, n, ck, srvKey.Public, "")
	if _, err := client.Register(ctx, svc); err != nil {
		t.Fatalf("a client key registers: %v", err)
	}
	if _, err := client.Request(ctx, registry.VerbJoin, map[string]string{"peer": "127.0.0.1:1"}); !isForbidden(err) {
		t.Errorf("JOIN from a client key: %v, want forbidden", err)
	}
	if code := rawSync(t, n.Endpoint(), curve.Client(ck, srvKey.Public)); code != registry.CodeForbidden {
		t.Errorf("SYNC from a client key: %s, want forbidden", code)
	}
	if code := rawSync(t, n.Endpoint(), curve.Client(sk, srvKey.Public)); code != registry.CodeBadRequest {
		t.Errorf("SYNC from a server key: %s, want bad_request (allowed, and not a hello)", code)
	}
	server := curveClient(t, n, sk, srvKey.Public, "")
	if _, err := server.Register(ctx, svc); !isForbidden(err) {
		t.Errorf("REGISTER from a server key: %v, want forbidden", err)
	}
	admin := curveClient(t, n, ak, srvKey.Public, "")
	if _, err := admin.Request(ctx, registry.VerbJoin, map[string]string{"peer": "127.0.0.1:1"}); isForbidden(err) {
		t.Errorf("JOIN from an admin key: %v", err)
	}

	// The client key on a tunnel: refused (it is not on Tunnels); the
	// tunnel key gets in.
	for _, c := range []struct {
		kp secure.KeyPair
		up bool
	}{{ck, false}, {tk, true}} {
		d := nodetest.Start(t, node.Config{Keys: &c.kp, Tunnel: tunnel.Config{
			Remotes: []tunnel.Remote{{Addr: n.Addr(), Key: srvKey.Public}}, RedialMin: 50 * time.Millisecond}})
		testutil.Eventually(t, 10*time.Second, "the tunnel's first outcome", func() bool {
			l := d.Tunnels().Links()
			return len(l) == 1 && (l[0].State == tunnel.StateUp || l[0].Failures > 0)
		})
		if l := d.Tunnels().Links()[0]; (l.State == tunnel.StateUp) != c.up {
			t.Errorf("tunnel from key %s: %+v, want up %v", c.kp.Public, l, c.up)
		}
		d.Stop()
	}
}

// TestNullJoinNamedOnly: without keys a join link is taken only from the
// addresses the operator named (ServerAddrs here; the Join.Peers'
// addresses too), never from an arbitrary registry client.
func TestNullJoinNamedOnly(t *testing.T) {
	// Named: a TEST-NET address, not loopback, where this test's raw
	// socket comes from.
	closed := nodetest.Start(t, node.Config{Access: node.Access{ServerAddrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}}})
	if code := rawSync(t, closed.Endpoint(), nil); code != registry.CodeForbidden {
		t.Errorf("SYNC from an address not named: %s, want forbidden", code)
	}
	open := nodetest.Start(t, node.Config{Join: join.Config{Interval: 100 * time.Millisecond},
		Access: node.Access{ServerAddrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	if code := rawSync(t, open.Endpoint(), nil); code != registry.CodeBadRequest {
		t.Errorf("SYNC from a named address: %s, want bad_request (allowed, and not a hello)", code)
	}
	b := nodetest.Start(t, node.Config{Join: join.Config{Interval: 100 * time.Millisecond, Peers: []string{open.Addr()}}})
	ctx := testutil.Context(t, 10*time.Second)
	if _, err := b.Client(t).Register(ctx, registry.Service{Name: "db", Host: "10.0.0.6", Port: 5432}); err != nil {
		t.Fatal(err)
	}
	lookupN(t, open.Client(t), "db", 1)
}

// TestReloadDropsRevokedClient: a client key removed from its file loses
// its established connection at Reload (the client's redial is then
// refused); a bad file keeps the old list and says why.
func TestReloadDropsRevokedClient(t *testing.T) {
	srvKey, alice, bob := key(t), key(t), key(t)
	path := filepath.Join(t.TempDir(), "clients")
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(alice.Public.String() + "\n" + bob.Public.String() + "\n")
	clients, err := secure.LoadAllowList(path)
	if err != nil {
		t.Fatal(err)
	}
	n := nodetest.Start(t, node.Config{Keys: &srvKey, Curve: true, Access: node.Access{Clients: clients}})
	relay := testutil.NewRelay(t, n.Addr(), 0)
	ctx := testutil.Context(t, 20*time.Second)
	cl := curveClient(t, n, alice, srvKey.Public, "tcp://"+relay.Addr())
	if _, err := cl.Lookup(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	other := curveClient(t, n, bob, srvKey.Public, "")
	if _, err := other.Lookup(ctx, "x"); err != nil {
		t.Fatal(err)
	}

	write("# bob only\n" + bob.Public.String() + "\n")
	start := time.Now()
	if reloaded, err := n.Reload(); !reloaded || err != nil {
		t.Fatalf("Reload: %v %v", reloaded, err)
	}
	testutil.Eventually(t, 10*time.Second, "alice's connection dropped and redialled", func() bool { return relay.Accepted() >= 2 })
	t.Logf("alice's connection dropped and redialled %v after Reload", time.Since(start))
	if _, err := cl.Lookup(testutil.Context(t, 2*time.Second), "x"); err == nil {
		t.Error("alice still served after her key was removed")
	}
	if _, err := other.Lookup(ctx, "x"); err != nil {
		t.Errorf("bob, still listed: %v", err)
	}

	write("not a key\n")
	if reloaded, err := n.Reload(); !reloaded || err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("Reload of a bad file: %v %v", reloaded, err)
	}
	if !clients.Authorize(bob.Public) {
		t.Error("a bad file replaced the list")
	}
}

// TestReloadClosesRevokedTunnel: a tunnel key removed from the tunnels'
// file loses its established tunnel at Reload. It runs once tunnel.Tunnels
// has Recheck (branch tunnel-trust); before, it skips.
func TestReloadClosesRevokedTunnel(t *testing.T) {
	ka, kb := key(t), key(t)
	path := filepath.Join(t.TempDir(), "tunnels")
	if err := os.WriteFile(path, []byte(ka.Public.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tunnels, err := secure.LoadAllowList(path)
	if err != nil {
		t.Fatal(err)
	}
	b := nodetest.Start(t, node.Config{Keys: &kb, Access: node.Access{Tunnels: tunnels}})
	if _, ok := any(b.Tunnels()).(interface{ Recheck() int }); !ok {
		t.Skip("tunnel.Tunnels has no Recheck yet (branch tunnel-trust)")
	}
	a := nodetest.Start(t, node.Config{Keys: &ka, Tunnel: tunnel.Config{
		Remotes: []tunnel.Remote{{Addr: b.Addr(), Key: kb.Public}}, RedialMin: 50 * time.Millisecond}})
	up := func() bool {
		l := b.Tunnels().Links()
		return len(l) == 1 && l[0].State == tunnel.StateUp
	}
	testutil.Eventually(t, 10*time.Second, "the tunnel up", up)
	if err := os.WriteFile(path, []byte("# nobody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the revoked key's tunnel down", func() bool { return !up() })
	t.Logf("down %v after Reload; A redials and is refused", time.Since(start))
	_ = a
}
