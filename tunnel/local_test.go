package tunnel_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
)

// memRegistry is a Registry in memory whose entries never expire, as
// registry.Local's: what proxies are deregistered from is only what the
// tunnel deregisters.
type memRegistry struct {
	id string

	mu       sync.Mutex
	next     int
	entries  map[string]registry.Entry
	watchers map[chan registry.Event]bool
}

func newMemRegistry(id string) *memRegistry {
	return &memRegistry{id: id, entries: map[string]registry.Entry{}, watchers: map[chan registry.Event]bool{}}
}

func (r *memRegistry) publish(ev registry.Event) {
	for ch := range r.watchers {
		ch <- ev // buffered; the tunnel reads its watch at once
	}
}

func (r *memRegistry) Register(_ context.Context, svc registry.Service) (string, error) {
	if err := registry.CheckName(svc.Name); err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	inst := fmt.Sprintf("%s-%d", r.id, r.next)
	e := registry.Entry{Service: svc, Instance: inst, Origin: r.id, Version: 1}
	r.entries[inst] = e
	r.publish(registry.Event{Type: registry.EventRegister, Entry: e})
	return inst, nil
}

func (r *memRegistry) Update(_ context.Context, inst string, svc registry.Service) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[inst]
	if !ok {
		return registry.ErrNotFound
	}
	e.Service = svc
	e.Version++
	r.entries[inst] = e
	r.publish(registry.Event{Type: registry.EventUpdate, Entry: e})
	return nil
}

func (r *memRegistry) Deregister(_ context.Context, inst string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[inst]
	if !ok {
		return registry.ErrNotFound
	}
	delete(r.entries, inst)
	r.publish(registry.Event{Type: registry.EventDeregister, Entry: e})
	return nil
}

func (r *memRegistry) Watch(ctx context.Context) (<-chan registry.Event, error) {
	ch := make(chan registry.Event, 1024)
	r.mu.Lock()
	var all []registry.Entry
	for _, e := range r.entries {
		all = append(all, e)
	}
	ch <- registry.Event{Type: registry.EventSync, Entries: all}
	r.watchers[ch] = true
	r.mu.Unlock()
	context.AfterFunc(ctx, func() {
		r.mu.Lock()
		delete(r.watchers, ch)
		close(ch)
		r.mu.Unlock()
	})
	return ch, nil
}

// proxies returns the proxy entries (those with MetaPeer) by name.
func (r *memRegistry) proxies() map[string]registry.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]registry.Entry{}
	for _, e := range r.entries {
		if e.Meta[tunnel.MetaPeer] != "" {
			out[e.Name] = e
		}
	}
	return out
}

// memNode is Tunnels over a memRegistry, on a plain listener.
type memNode struct {
	reg    *memRegistry
	tun    *tunnel.Tunnels
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func startMemNode(t *testing.T, id string, kp secure.KeyPair, cfg tunnel.Config) *memNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &memNode{reg: newMemRegistry(id), addr: ln.Addr().String(), done: make(chan error, 1)}
	cfg.ServerID, cfg.Static, cfg.Logger = id, kp, testutil.Logger(t)
	if cfg.Export == nil {
		cfg.Export = []string{"*"} // the tests' services listen on 127.0.0.1
	}
	cfg.RedialMin, cfg.RedialMax = 20*time.Millisecond, 100*time.Millisecond
	if n.tun, err = tunnel.New(cfg, n.reg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- n.tun.Run(ctx, ln) }()
	t.Cleanup(n.stop)
	return n
}

func (n *memNode) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
}

func (n *memNode) state() tunnel.State {
	l := n.tun.Links()
	if len(l) != 1 {
		return tunnel.State(255)
	}
	return l[0].State
}

// Entries that never expire: the proxies go when the peer's grace ends,
// and all of them when Run ends; no goroutine is left.
func TestProxiesWithoutTTL(t *testing.T) {
	base := runtime.NumGoroutine()
	ka, kb := newKey(t), newKey(t)
	t.Run("grace", func(t *testing.T) {
		b := startMemNode(t, "srv-b", kb, tunnel.Config{Allow: secure.NewAllowList(ka.Public), Grace: 200 * time.Millisecond})
		relay := testutil.NewRelay(t, b.addr, 0)
		a := startMemNode(t, "srv-a", ka, tunnel.Config{Grace: 200 * time.Millisecond,
			Remotes: []tunnel.Remote{{Addr: relay.Addr(), Key: kb.Public}}})
		echo := testutil.EchoServer(t)
		if _, err := a.reg.Register(ctxT(t), registry.Service{Name: "echo", Host: echo.IP.String(), Port: echo.Port}); err != nil {
			t.Fatal(err)
		}
		var px registry.Entry
		testutil.Eventually(t, 10*time.Second, "a proxy for echo at B", func() bool {
			px = b.reg.proxies()["echo"]
			return px.Port != 0
		})
		if px.Meta[tunnel.MetaPeer] != "srv-a" || px.Meta[tunnel.MetaOrigin] != "srv-a" || px.Meta[tunnel.MetaInstance] != "srv-a-1" {
			t.Fatalf("proxy entry: %+v", px)
		}
		msg := []byte("through a tunnel over registries without TTLs")
		if got, err := testutil.EchoRoundTrip(px.Addr(), msg); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo: %q, %v", got, err)
		}
		if len(a.reg.proxies()) != 0 {
			t.Fatalf("A's own service came back as a proxy: %+v", a.reg.proxies())
		}
		if s := b.state(); s != tunnel.StateUp {
			t.Fatalf("B's link: %v, want up", s)
		}

		// The link dies for good: grace, then the proxy is gone.
		relay.Close()
		testutil.Eventually(t, 10*time.Second, "B's link in its grace or gone", func() bool {
			s := b.state()
			return s == tunnel.StateGrace || s == tunnel.StateGone
		})
		testutil.Eventually(t, 10*time.Second, "B's proxy deregistered after the grace", func() bool {
			return len(b.reg.proxies()) == 0 && b.state() == tunnel.StateGone
		})
		if _, err := net.DialTimeout("tcp", px.Addr(), time.Second); err == nil {
			t.Fatal("the proxy listener outlived its grace")
		}
	})
	t.Run("stop", func(t *testing.T) {
		b := startMemNode(t, "srv-b", kb, tunnel.Config{Allow: secure.NewAllowList(ka.Public)})
		a := startMemNode(t, "srv-a", ka, tunnel.Config{Remotes: []tunnel.Remote{{Addr: b.addr, Key: kb.Public}}})
		echo := testutil.EchoServer(t)
		for _, name := range []string{"one", "two"} {
			if _, err := a.reg.Register(ctxT(t), registry.Service{Name: name, Host: echo.IP.String(), Port: echo.Port}); err != nil {
				t.Fatal(err)
			}
		}
		testutil.Eventually(t, 10*time.Second, "two proxies at B", func() bool { return len(b.reg.proxies()) == 2 })
		// An update at A reaches B's proxy entry in place.
		if err := a.reg.Update(ctxT(t), "srv-a-1", registry.Service{Name: "one", Host: echo.IP.String(), Port: echo.Port,
			Meta: map[string]string{"rev": "2"}}); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "the update at B", func() bool { return b.reg.proxies()["one"].Meta["rev"] == "2" })
		b.stop()
		if p := b.reg.proxies(); len(p) != 0 {
			t.Fatalf("proxies left after Run: %+v", p)
		}
		testutil.Eventually(t, 10*time.Second, "A's link down", func() bool { return a.state() != tunnel.StateUp })
	})
	testutil.CheckGoroutines(t, base)
}

func TestConfigValidate(t *testing.T) {
	kp := newKey(t)
	good := tunnel.Config{ServerID: "srv", Static: kp}
	if err := good.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for field, mutate := range map[string]func(*tunnel.Config){
		"ServerID":         func(c *tunnel.Config) { c.ServerID = "" },
		"Static":           func(c *tunnel.Config) { c.Static = secure.KeyPair{} },
		"Remotes":          func(c *tunnel.Config) { c.Remotes = []tunnel.Remote{{Addr: "h:99999", Key: kp.Public}} },
		"PortMin":          func(c *tunnel.Config) { c.PortMin, c.PortMax = 9, 1 },
		"RedialMax":        func(c *tunnel.Config) { c.RedialMin, c.RedialMax = time.Second, time.Millisecond },
		"Grace":            func(c *tunnel.Config) { c.Grace = -1 },
		"MaxServices":      func(c *tunnel.Config) { c.MaxServices = -1 },
		"MaxMetadataBytes": func(c *tunnel.Config) { c.MaxMetadataBytes = -1 },
		"DialTimeout":      func(c *tunnel.Config) { c.DialTimeout = -1 },
		"Mux.StreamWindow": func(c *tunnel.Config) { c.Mux.StreamWindow = 1 },
	} {
		c := good
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "tunnel: config: "+field+":") && !strings.HasPrefix(err.Error(), "tunnel: config: "+field+" ") {
			t.Errorf("bad %s: Validate = %v", field, err)
		}
		if _, err := tunnel.New(c, newMemRegistry("x")); err == nil {
			t.Errorf("bad %s: New accepted it", field)
		}
	}
	if _, err := tunnel.New(good, nil); err == nil {
		t.Error("New without a registry")
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[tunnel.State]string{tunnel.StateConnecting: "connecting", tunnel.StateUp: "up",
		tunnel.StateGrace: "grace", tunnel.StateGone: "gone", 9: "state 9"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", s, s.String(), want)
		}
	}
}
