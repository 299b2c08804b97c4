package node_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
)

func key(t *testing.T) secure.KeyPair {
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func lookupN(t *testing.T, cl *registry.Client, name string, n int) []registry.Entry {
	t.Helper()
	var es []registry.Entry
	testutil.Eventually(t, 10*time.Second, "lookup "+name, func() bool {
		var err error
		es, err = cl.Lookup(testutil.Context(t, time.Second), name)
		return err == nil && len(es) == n
	})
	return es
}

// TestRegistryOnly: a node without keys is a registry; Run stops cleanly
// and leaves no goroutine behind.
func TestRegistryOnly(t *testing.T) {
	base := runtime.NumGoroutine()
	n := nodetest.Start(t, node.Config{})
	if n.Tunnels() != nil || n.Secure() {
		t.Fatal("a node without keys has tunnels or CURVE")
	}
	cl := n.Client(t)
	ctx := testutil.Context(t, 5*time.Second)
	if _, err := cl.Register(ctx, registry.Service{Name: "web", Host: "10.0.0.5", Port: 80}); err != nil {
		t.Fatal(err)
	}
	if es := lookupN(t, cl, "web", 1); es[0].Origin != n.Server().ID() {
		t.Fatalf("entry origin %q, want the node's server id %q", es[0].Origin, n.Server().ID())
	}
	cl.Close()
	n.Stop()
	testutil.CheckGoroutines(t, base)
}

// TestJoinedNodes: B joins A; what is registered on either is looked up on
// both.
func TestJoinedNodes(t *testing.T) {
	a := nodetest.Start(t, node.Config{Join: join.Config{Interval: 100 * time.Millisecond}})
	joined := make(chan string, 1)
	b := nodetest.Start(t, node.Config{Join: join.Config{Interval: 100 * time.Millisecond, Peers: []string{a.Addr()},
		OnLink: func(ev join.LinkEvent) {
			if ev.Up {
				joined <- ev.Addr
			}
		}}})
	select {
	case addr := <-joined:
		if addr != a.Addr() {
			t.Fatalf("joined %s, want %s", addr, a.Addr())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B did not join A")
	}
	ca, cb := a.Client(t), b.Client(t)
	ctx := testutil.Context(t, 5*time.Second)
	if _, err := ca.Register(ctx, registry.Service{Name: "on-a", Host: "10.0.0.1", Port: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Register(ctx, registry.Service{Name: "on-b", Host: "10.0.0.2", Port: 2}); err != nil {
		t.Fatal(err)
	}
	lookupN(t, cb, "on-a", 1)
	lookupN(t, ca, "on-b", 1)
}

// TestTunnelProxiesLeaveFirst: A tunnels to B and gets a proxy for B's
// service, through which bytes flow; when A stops, its watchers see the
// proxy withdrawn (tunnels stop before the registry), not just the
// connection drop.
func TestTunnelProxiesLeaveFirst(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	ka, kb := key(t), key(t)
	// Export "*": the service is bound to loopback, which stays home by default.
	b := nodetest.Start(t, node.Config{Keys: &kb, Access: node.Access{Tunnels: secure.NewAllowList(ka.Public)}, Tunnel: tunnel.Config{Export: []string{"*"}}})
	a := nodetest.Start(t, node.Config{Keys: &ka, Tunnel: tunnel.Config{
		Remotes: []tunnel.Remote{{Addr: b.Addr(), Key: kb.Public}}, RedialMin: 50 * time.Millisecond}})

	ctx := testutil.Context(t, 10*time.Second)
	port := echo.Addr().(*net.TCPAddr).Port
	if _, err := b.Client(t).Register(ctx, registry.Service{Name: "echo", Host: "127.0.0.1", Port: port}); err != nil {
		t.Fatal(err)
	}
	ca := a.Client(t)
	proxy := lookupN(t, ca, "echo", 1)[0]
	if proxy.Meta[tunnel.MetaPeer] == "" || proxy.Port == port {
		t.Fatalf("A's entry for echo %+v is not a tunnel proxy", proxy)
	}
	c, err := net.Dial("tcp", proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("through the tunnel: %q, %v", buf, err)
	}
	c.Close()

	events, err := ca.Watch(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	<-events // the sync event
	go a.Stop()
	for ev := range events {
		if ev.Type == registry.EventDeregister && ev.Entry.Instance == proxy.Instance {
			return
		}
	}
	t.Fatal("A stopped without its watcher seeing the tunnel proxy deregistered")
}

// TestValidateNamesTheField: problems come as *ConfigError naming the field
// path, so the command line can name its flag.
func TestValidateNamesTheField(t *testing.T) {
	kp := key(t)
	other := key(t)
	for _, c := range []struct {
		cfg   node.Config
		field string
	}{
		{node.Config{Endpoint: "udp://x:1"}, "Endpoint"},
		{node.Config{Curve: true}, "Curve"},
		{node.Config{Access: node.Access{Tunnels: secure.AllowAny()}}, "Access.Tunnels"},
		{node.Config{Tunnel: tunnel.Config{Remotes: []tunnel.Remote{{Addr: "h:1", Key: other.Public}}}}, "Tunnel.Remotes"},
		{node.Config{Keys: &kp, JoinKeys: map[string]secure.PublicKey{"h:8420": other.Public}}, "JoinKeys"},
		{node.Config{Keys: &kp, Curve: true, Join: join.Config{Peers: []string{"h"}}}, "JoinKeys"},
		{node.Config{Registry: registry.Config{MinTTL: time.Hour, MaxTTL: time.Minute}}, "Registry"},
		{node.Config{Join: join.Config{Interval: time.Second, Timeout: time.Second}}, "Join"},
		{node.Config{Keys: &kp, Access: node.Access{Tunnels: secure.AllowAny()}, Endpoint: "ipc:///tmp/x.sock"}, "Endpoint"},
		{node.Config{HTTP: node.HTTPConfig{Addr: "no-port"}}, "HTTP"},
		{node.Config{HTTP: node.HTTPConfig{Addr: "127.0.0.1:http-nope"}}, "HTTP"},
		{node.Config{HTTP: node.HTTPConfig{TokenFile: "/x"}}, "HTTP"},
		{node.Config{HTTP: node.HTTPConfig{Addr: "127.0.0.1:0", MaxBodyBytes: -1}}, "HTTP"},
	} {
		err := c.cfg.Validate()
		var ce *node.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("Validate(%+v) = %v, want a ConfigError on %s", c.cfg, err, c.field)
		}
	}
	if err := (node.Config{}).Validate(); err != nil {
		t.Errorf("the zero Config: %v", err)
	}
}

// TestInfoTunnels: INFO carries node's "version" and "tunnels" (state,
// streams, bytes) and counts the tunnel proxies as in-process entries,
// while registry knows nothing of tunnels (registry.Config.Info).
func TestInfoTunnels(t *testing.T) {
	ka, kb := key(t), key(t)
	b := nodetest.Start(t, node.Config{Keys: &kb, Access: node.Access{Tunnels: secure.NewAllowList(ka.Public)}, Version: "vB",
		Tunnel: tunnel.Config{Export: []string{"*"}}})
	a := nodetest.Start(t, node.Config{Keys: &ka, Version: "vA", Tunnel: tunnel.Config{
		Remotes: []tunnel.Remote{{Addr: b.Addr(), Key: kb.Public}}, RedialMin: 50 * time.Millisecond}})
	ctx := testutil.Context(t, 10*time.Second)
	if _, err := b.Client(t).Register(ctx, registry.Service{Name: "svc", Host: "127.0.0.1", Port: 9}); err != nil {
		t.Fatal(err)
	}
	ca := a.Client(t)
	lookupN(t, ca, "svc", 1)
	var got struct {
		Version string              `json:"version"`
		Kinds   registry.EntryKinds `json:"kinds"`
		Tunnels []tunnel.LinkInfo   `json:"tunnels"`
	}
	testutil.Eventually(t, 10*time.Second, "A's INFO with the tunnel up and its proxy", func() bool {
		raw, err := ca.Request(ctx, registry.VerbInfo, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		return len(got.Tunnels) == 1 && got.Tunnels[0].State == tunnel.StateUp && got.Kinds.InProcess == 1
	})
	tl := got.Tunnels[0]
	if got.Version != "vA" || tl.Key != kb.Public.String() || tl.BytesIn == 0 || tl.BytesOut == 0 || len(tl.Proxies) != 1 || tl.Since.IsZero() {
		t.Fatalf("INFO: %+v", got)
	}
}
