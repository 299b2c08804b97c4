package tunnel_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/mux"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
)

// testNames are the names the tests here register.
var testNames = []string{"db", "echo", "lh", "lo6", "ssh", "web1", "web2", "zz-web-ssh"}

// proxyNames is the set of testNames the server of c holds tunnel proxies
// for.
func proxyNames(t *testing.T, c *registry.Client) []string {
	t.Helper()
	var out []string
	for _, name := range testNames {
		es, err := c.Lookup(ctxT(t), name)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Meta[tunnel.MetaPeer] != "" {
				out = append(out, e.Name)
				break
			}
		}
	}
	return out
}

// nodeConfig is a node with key pair kp logging to sink, dialling remotes
// with short redials.
func nodeConfig(kp secure.KeyPair, sink *testutil.LogSink, remotes ...tunnel.Remote) node.Config {
	return node.Config{Logger: sink.Logger(), Keys: &kp, Tunnel: tunnel.Config{Remotes: remotes,
		RedialMin: 50 * time.Millisecond, RedialMax: 200 * time.Millisecond}}
}

// linkOf is the one link of n to key.
func linkOf(n *testNode, key secure.PublicKey) (tunnel.LinkInfo, bool) {
	for _, l := range n.tun.Links() {
		if l.Key == key.String() {
			return l, true
		}
	}
	return tunnel.LinkInfo{}, false
}

// The proxy listens where its entry says, loopback by default: an
// address of 127.0.0.0/8 other than 127.0.0.1 reaches nothing (on the
// old code an unspecified ProxyHost listened on every address while the
// entry said 127.0.0.1).
func TestProxyBindsWhatItsEntrySays(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("127.0.0.2 is a loopback address only on Linux")
	}
	for _, tc := range []struct{ bind, host string }{{"", "127.0.0.1"}, {"0.0.0.0", "0.0.0.0"}} {
		t.Run("bind="+tc.bind, func(t *testing.T) {
			ka, kb := newKey(t), newKey(t)
			b := startNode(t, kb, tunnel.Config{Allow: secure.NewAllowList(ka.Public), ProxyHost: tc.bind})
			a := startNode(t, ka, tunnel.Config{Remotes: []tunnel.Remote{{Addr: b.addr, Key: kb.Public}}})
			register(t, a.cl, "echo", testutil.EchoServer(t))
			e := nodetest.TunnelProxy(t, b.cl, "echo")
			if e.Host != tc.host {
				t.Fatalf("proxy entry host %q, want %q", e.Host, tc.host)
			}
			l, _ := linkOf(b, ka.Public)
			for _, addr := range l.Proxies {
				if h, _, _ := net.SplitHostPort(addr); h != tc.host {
					t.Fatalf("proxy listens on %s, its entry says %s", addr, e.Host)
				}
			}
			other := net.JoinHostPort("127.0.0.2", strconv.Itoa(e.Port))
			c, err := net.DialTimeout("tcp", other, 2*time.Second)
			if c != nil {
				c.Close()
			}
			if wantReach := tc.bind == "0.0.0.0"; (err == nil) != wantReach {
				t.Fatalf("dial %s: %v; want reachable %v", other, err, wantReach)
			}
		})
	}
}

// Export and Import: what a side does not export never crosses; what the
// other does not import is never registered; by default loopback-bound
// services stay home.
func TestExportImportFilters(t *testing.T) {
	echo := testutil.EchoServer(t)
	services := func(t *testing.T, a *testNode) {
		for _, s := range []struct{ name, host string }{
			{"ssh", "127.0.0.1"}, {"web1", "127.0.0.1"}, {"web2", "192.0.2.7"}, {"db", "192.0.2.8"}, {"lo6", "::1"}, {"lh", "localhost"},
		} {
			if _, err := a.cl.Register(ctxT(t), registry.Service{Name: s.name, Host: s.host, Port: echo.Port}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name            string
		export, import_ []string
		want            []string
	}{
		{"default", nil, nil, []string{"db", "web2"}},
		{"export", []string{"ssh", "web*"}, nil, []string{"ssh", "web1", "web2"}},
		{"all", []string{"*"}, nil, []string{"db", "lh", "lo6", "ssh", "web1", "web2"}},
		{"import", []string{"*"}, []string{"web*", "nothing"}, []string{"web1", "web2"}},
		{"both", []string{"ssh", "db"}, []string{"s?h", "web*"}, []string{"ssh"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ka, kb := newKey(t), newKey(t)
			b := startNode(t, kb, tunnel.Config{Allow: secure.NewAllowList(ka.Public), Import: tc.import_})
			a := startNodeAsIs(t, ka, tunnel.Config{Export: tc.export, Remotes: []tunnel.Remote{{Addr: b.addr, Key: kb.Public}}})
			services(t, a)
			var got []string
			testutil.Eventually(t, 20*time.Second, "B's proxies settle", func() bool {
				got = proxyNames(t, b.cl)
				return slices.Equal(got, tc.want) || len(got) > len(tc.want)
			})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("B's proxies %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	kp := newKey(t)
	for _, c := range []tunnel.Config{{Export: []string{"[a"}}, {Import: []string{""}}, {ProxyHost: "$(id)"}} {
		c.ServerID, c.Static = "s", kp
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid", c)
		}
	}
}

// Recheck closes an established inbound tunnel whose key left the
// allow-list, and the stream on it, at once; the dialler is told why and
// backs off (it does not get its link back).
func TestRecheckRevokes(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	allow := secure.NewAllowList(ka.Public)
	b := startNode(t, kb, tunnel.Config{Allow: allow})
	a := startNode(t, ka, tunnel.Config{Remotes: []tunnel.Remote{{Addr: b.addr, Key: kb.Public}}})
	register(t, a.cl, "echo", testutil.EchoServer(t))
	e := nodetest.TunnelProxy(t, b.cl, "echo")
	c, err := net.Dial("tcp", e.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 5)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if n := b.tun.Recheck(); n != 0 {
		t.Fatalf("Recheck with the key still allowed closed %d tunnels", n)
	}
	allow.Set() // the key is removed
	if n := b.tun.Recheck(); n != 1 {
		t.Fatalf("Recheck closed %d tunnels, want 1", n)
	}
	// Recheck has returned: the stream is already dead.
	c.SetDeadline(time.Now().Add(time.Second))
	c.Write([]byte("more"))
	if n, err := c.Read(buf); err == nil || isTimeout(err) {
		t.Fatalf("the stream still carries data after Recheck: %d bytes, %v", n, err)
	}
	if got := proxyNames(t, b.cl); len(got) != 0 {
		t.Fatalf("proxies of the revoked peer still registered: %q", got)
	}
	testutil.Eventually(t, 20*time.Second, "A told why", func() bool {
		l, _ := linkOf(a, kb.Public)
		return l.State != tunnel.StateUp && strings.Contains(l.Error, "refused this server's key") && l.Failures >= 2
	})
	if l, ok := linkOf(b, ka.Public); ok && l.State == tunnel.StateUp {
		t.Fatalf("B linked again with the revoked key: %+v", l)
	}
}

// A refused dialler learns which of its two keys is wrong, as far as the
// handshake lets it: a remote that does not allow its key says so; one
// that is not the pinned key cannot answer at all.
func TestRefusedDiallerToldWhy(t *testing.T) {
	ka, kb, kx := newKey(t), newKey(t), newKey(t)
	b := startNode(t, kb, tunnel.Config{Allow: secure.NewAllowList(kx.Public)})
	sink := testutil.NewLogSink()
	n := nodetest.Start(t, nodeConfig(ka, sink, tunnel.Remote{Addr: b.addr, Key: kb.Public}))
	testutil.Eventually(t, 20*time.Second, "A's refusals", func() bool {
		l, _ := linkOf(&testNode{tun: n.Tunnels()}, kb.Public)
		return strings.Contains(l.Error, "refused this server's key (key not on the allow-list)") && l.Failures >= 3
	})
	sink.WaitFor(t, "WARN ", "refused this server's key")
	if n := strings.Count(strings.Join(sink.Lines(), "\n"), "refused this server's key"); n != 1 {
		t.Fatalf("the refusal logged %d times, want once per cause: %q", n, sink.Lines())
	}

	// Pinned to a key the remote does not hold.
	sink2 := testutil.NewLogSink()
	n2 := nodetest.Start(t, nodeConfig(kx, sink2, tunnel.Remote{Addr: b.addr, Key: ka.Public}))
	testutil.Eventually(t, 20*time.Second, "the wrong pinned key named", func() bool {
		l, _ := linkOf(&testNode{tun: n2.Tunnels()}, ka.Public)
		return strings.Contains(l.Error, "--remote-key is likely not its public key") && l.Failures >= 2
	})
	sink2.WaitFor(t, "WARN ", "--remote-key is likely not its public key")
}

// A link lost without a word (the path cut, no FIN): the peer's services
// leave lookups within the liveness timeout, long before the grace, and
// come back at the same address when the link does.
func TestLostPeerWithdrawnWithinLiveness(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	quick := mux.Config{KeepAliveInterval: 100 * time.Millisecond, LivenessTimeout: 500 * time.Millisecond}
	b := startNode(t, kb, tunnel.Config{Allow: secure.NewAllowList(ka.Public), Mux: quick, Grace: time.Hour})
	relay := testutil.NewRelay(t, b.addr, 0)
	a := startNode(t, ka, tunnel.Config{Remotes: []tunnel.Remote{{Addr: relay.Addr(), Key: kb.Public}}, Mux: quick, Grace: time.Hour})
	register(t, a.cl, "echo", testutil.EchoServer(t))
	e := nodetest.TunnelProxy(t, b.cl, "echo")
	w, err := b.cl.Watch(ctxT(t), "echo")
	if err != nil {
		t.Fatal(err)
	}
	<-w // sync
	relay.Cut()
	testutil.Eventually(t, 20*time.Second, "the lost peer's proxy out of B's lookups", func() bool {
		return len(proxyNames(t, b.cl)) == 0
	})
	select {
	case ev := <-w:
		if ev.Type != registry.EventDeregister || ev.Entry.Instance != e.Instance {
			t.Fatalf("B's watcher got %+v, want the proxy's deregister", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B's watcher got no event")
	}
	relay.Resume()
	relay.Kill() // the old connections go; A redials through the relay
	e2 := nodetest.TunnelProxy(t, b.cl, "echo")
	if e2.Addr() != e.Addr() {
		t.Fatalf("the proxy came back at %s, was %s", e2.Addr(), e.Addr())
	}
	msg := []byte("back")
	if got, err := testutil.EchoRoundTrip(e2.Addr(), msg); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo after the return: %q, %v", got, err)
	}
}

// A peer that shuts down says so: its proxies go at once, listeners
// included (no grace), and watchers see them go.
func TestGracefulLeaveWithdrawsAtOnce(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	b := startNode(t, kb, tunnel.Config{Allow: secure.NewAllowList(ka.Public), Grace: time.Hour})
	a := startNode(t, ka, tunnel.Config{Remotes: []tunnel.Remote{{Addr: b.addr, Key: kb.Public}}, Grace: time.Hour})
	register(t, a.cl, "echo", testutil.EchoServer(t))
	e := nodetest.TunnelProxy(t, b.cl, "echo")
	w, err := b.cl.Watch(ctxT(t), "echo")
	if err != nil {
		t.Fatal(err)
	}
	<-w
	a.run.Stop()
	select {
	case ev := <-w:
		if ev.Type != registry.EventDeregister || ev.Entry.Instance != e.Instance {
			t.Fatalf("B's watcher got %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no deregister event at B after A shut down")
	}
	testutil.Eventually(t, 10*time.Second, "B's link gone (not in grace)", func() bool {
		l, _ := linkOf(b, ka.Public)
		return l.State == tunnel.StateGone
	})
	if c, err := net.DialTimeout("tcp", e.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the proxy listener of a peer that left is still open")
	}
}
