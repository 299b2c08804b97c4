package registry_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/secure/noise"
)

// tunnelNode is a registry server sharing its port with tunnels, and its
// Tunnels, in this process.
type tunnelNode struct {
	srv  *registry.Server
	tun  *registry.Tunnels
	kp   secure.KeyPair
	addr string // HOST:PORT of the shared port
	cl   *registry.Client
}

func newKey(t testing.TB) secure.KeyPair {
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// startTunnelNode runs a server with tunnels cfg (Static set from kp).
func startTunnelNode(t testing.TB, kp secure.KeyPair, cfg registry.TunnelConfig) *tunnelNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := testLogger(t)
	sl := registry.NewSharedListener(ln, log)
	srv, err := registry.NewServer(registry.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.BindListener(sl.ZMTP()); err != nil {
		t.Fatal(err)
	}
	sdone := make(chan error, 1)
	go func() { sdone <- srv.Serve(context.Background()) }()
	cfg.Static = kp
	cfg.Logger = log
	if cfg.RedialMax == 0 {
		cfg.RedialMax = 500 * time.Millisecond
	}
	if cfg.RedialMin == 0 {
		cfg.RedialMin = 50 * time.Millisecond
	}
	tun, err := registry.NewTunnels(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tdone := make(chan error, 1)
	go func() { tdone <- tun.Run(ctx, srv.Endpoint(), sl.Tunnels()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-tdone; err != nil {
			t.Errorf("Tunnels.Run: %v", err)
		}
		srv.Close()
		<-sdone
		sl.Close()
	})
	n := &tunnelNode{srv: srv, tun: tun, kp: kp, addr: ln.Addr().String()}
	n.cl = newClient(t, srv, registry.ClientConfig{})
	return n
}

// echoServer accepts connections and echoes them until EOF, then
// half-closes.
func echoServer(t testing.TB) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr)
}

func register(t testing.TB, c *registry.Client, name string, a *net.TCPAddr) *registry.Registration {
	t.Helper()
	r, err := c.Register(ctxT(t), registry.Service{Name: name, Host: a.IP.String(), Port: a.Port, Meta: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// proxied waits until c's server lists a tunnel proxy for name and
// returns it.
func proxied(t testing.TB, c *registry.Client, name string) registry.Entry {
	t.Helper()
	var got registry.Entry
	eventually(t, 20*time.Second, "a tunnel proxy for "+name, func() bool {
		es, err := c.Lookup(ctxT(t), name)
		if err != nil {
			return false
		}
		for _, e := range es {
			if e.Meta[registry.MetaTunnel] != "" {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

// echoRoundTrip sends msg to addr, half-closes, and returns all it read.
func echoRoundTrip(t testing.TB, addr string, msg []byte) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if e := <-werr; err == nil {
		err = e
	}
	return got, err
}

func TestTunnelInProcessBothWays(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	b := startTunnelNode(t, kb, registry.TunnelConfig{Allow: secure.NewAllowList(ka.Public)})
	a := startTunnelNode(t, ka, registry.TunnelConfig{Remotes: []registry.TunnelRemote{{Addr: b.addr, Key: kb.Public}}})

	// A's service, reached from B's side.
	regA := register(t, a.cl, "echo-a", echoServer(t))
	e := proxied(t, b.cl, "echo-a")
	if e.Meta["k"] != "v" || e.Meta[registry.MetaTunnel] != a.srv.ID() || e.Meta[registry.MetaOrigin] != a.srv.ID() ||
		e.Meta[registry.MetaInstance] != regA.Instance() || e.Host != "127.0.0.1" {
		t.Fatalf("proxy entry at B: %+v", e)
	}
	msg := bytes.Repeat([]byte("hello through the tunnel "), 4000)
	got, err := echoRoundTrip(t, e.Addr(), msg)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo via B's proxy: %d bytes, err %v", len(got), err)
	}

	// B's service, reached from A's side, over the same tunnel.
	register(t, b.cl, "echo-b", echoServer(t))
	e2 := proxied(t, a.cl, "echo-b")
	got, err = echoRoundTrip(t, e2.Addr(), msg)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo via A's proxy: %d bytes, err %v", len(got), err)
	}

	// Proxies are not shared back: B's view of echo-b has no proxy, and A
	// holds exactly one proxy entry for echo-b.
	es, _ := b.cl.Lookup(ctxT(t), "echo-b")
	for _, x := range es {
		if x.Meta[registry.MetaTunnel] != "" {
			t.Fatalf("B's own service came back through the tunnel: %+v", x)
		}
	}

	// Deregistering at A removes the proxy at B.
	if err := regA.Deregister(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "echo-a gone at B", func() bool {
		es, err := b.cl.Lookup(ctxT(t), "echo-a")
		return err == nil && len(es) == 0 || errors.Is(err, registry.ErrNotFound)
	})
}

// A service that refuses connections: the client's connection through the
// proxy is closed, not left hanging.
func TestTunnelRefusedServiceClosesClient(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	b := startTunnelNode(t, kb, registry.TunnelConfig{Allow: secure.NewAllowList(ka.Public)})
	a := startTunnelNode(t, ka, registry.TunnelConfig{Remotes: []registry.TunnelRemote{{Addr: b.addr, Key: kb.Public}}})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().(*net.TCPAddr)
	ln.Close()
	register(t, a.cl, "dead", dead)
	e := proxied(t, b.cl, "dead")
	c, err := net.Dial("tcp", e.Addr())
	if errors.Is(err, syscall.ECONNRESET) {
		return // reset before connect returned: closed promptly, as wanted
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("anyone?"))
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, err := c.Read(make([]byte, 10))
	if n != 0 || err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("read from a refused service: %d, %v (want the connection closed)", n, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// killRelay is a TCP relay whose connections can all be killed at once,
// and which can record what the dialling side sent.
type killRelay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	rec    [][]byte // per connection, the bytes from the dialler
	accept int
}

func newKillRelay(t testing.TB, target string) *killRelay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &killRelay{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); r.kill() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", r.target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			i := len(r.rec)
			r.rec = append(r.rec, nil)
			r.conns = append(r.conns, c, u)
			r.accept++
			r.mu.Unlock()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						r.mu.Lock()
						if len(r.rec[i]) < 4096 {
							r.rec[i] = append(r.rec[i], buf[:n]...)
						}
						r.mu.Unlock()
						if _, err := u.Write(buf[:n]); err != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
				u.Close()
			}()
			go func() { io.Copy(c, u); c.Close(); u.Close() }()
		}
	}()
	return r
}

func (r *killRelay) Addr() string { return r.ln.Addr().String() }

// kill closes every connection through the relay (the link dies).
func (r *killRelay) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	r.conns = nil
}

func (r *killRelay) accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accept
}

// The link killed in the middle of a transfer: the transfer fails with
// an error (never a clean, short EOF), the tunnel redials, the proxy keeps
// its address, and new connections work.
func TestTunnelLinkKilledMidTransfer(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	b := startTunnelNode(t, kb, registry.TunnelConfig{Allow: secure.NewAllowList(ka.Public)})
	relay := newKillRelay(t, b.addr)
	a := startTunnelNode(t, ka, registry.TunnelConfig{Remotes: []registry.TunnelRemote{{Addr: relay.Addr(), Key: kb.Public}}})

	// A sink on A's side that hashes what it gets and reports it.
	sink, _ := net.Listen("tcp", "127.0.0.1:0")
	defer sink.Close()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	register(t, a.cl, "sink", sink.Addr().(*net.TCPAddr))
	register(t, a.cl, "echo", echoServer(t))
	e := proxied(t, b.cl, "sink")
	eEcho := proxied(t, b.cl, "echo")

	c, err := net.Dial("tcp", e.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				errc <- err
				return
			}
		}
	}()
	// Let some data flow, then kill the link.
	time.Sleep(200 * time.Millisecond)
	relay.kill()
	select {
	case err := <-errc:
		if isTimeout(err) {
			t.Fatalf("writer hung until its deadline: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writer never saw an error after the link died")
	}

	// Redial, and the same proxy address works again.
	eventually(t, 20*time.Second, "a second tunnel connection", func() bool { return relay.accepted() >= 2 })
	msg := []byte("after the reconnect")
	eventually(t, 20*time.Second, "echo through the redialled tunnel at the same address", func() bool {
		got, err := echoRoundTrip(t, eEcho.Addr(), msg)
		return err == nil && bytes.Equal(got, msg)
	})
	if e2 := proxied(t, b.cl, "echo"); e2.Addr() != eEcho.Addr() {
		t.Fatalf("proxy moved from %s to %s", eEcho.Addr(), e2.Addr())
	}
}

// 100 concurrent streams, each a different random payload, checked by
// SHA-256 after the echo.
func TestTunnelConcurrentStreamsInProcess(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	b := startTunnelNode(t, kb, registry.TunnelConfig{Allow: secure.NewAllowList(ka.Public)})
	a := startTunnelNode(t, ka, registry.TunnelConfig{Remotes: []registry.TunnelRemote{{Addr: b.addr, Key: kb.Public}}})
	register(t, a.cl, "echo", echoServer(t))
	e := proxied(t, b.cl, "echo")
	concurrentEcho(t, e.Addr(), 100, 256<<10)
}

func concurrentEcho(t *testing.T, addr string, n, size int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, size+i)
			rand.Read(msg)
			got, err := echoRoundTrip(t, addr, msg)
			if err != nil {
				errs <- err
				return
			}
			if sha256.Sum256(got) != sha256.Sum256(msg) {
				errs <- errors.New("hash mismatch")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Security: a tunnel whose key is not on the remote's allow-list gets no
// session; a man in the middle with another key is refused by the
// dialler (pinned key); replayed handshake bytes make no session.
func TestTunnelSecurity(t *testing.T) {
	ka, kb, km := newKey(t), newKey(t), newKey(t)
	b := startTunnelNode(t, kb, registry.TunnelConfig{Allow: secure.NewAllowList(ka.Public)})
	register(t, b.cl, "secret", echoServer(t))

	t.Run("UnknownKey", func(t *testing.T) {
		relay := newKillRelay(t, b.addr)
		m := startTunnelNode(t, km, registry.TunnelConfig{Remotes: []registry.TunnelRemote{{Addr: relay.Addr(), Key: kb.Public}}})
		eventually(t, 20*time.Second, "the intruder's attempts", func() bool { return relay.accepted() >= 2 })
		for _, l := range m.tun.Links() {
			if l.Up || len(l.Proxies) > 0 {
				t.Fatalf("intruder got a link: %+v", l)
			}
		}
		for _, l := range b.tun.Links() {
			if l.Key == km.Public.String() {
				t.Fatalf("B kept state for an unknown key: %+v", l)
			}
		}
		if es, _ := m.cl.Lookup(ctxT(t), "secret"); len(es) > 0 {
			t.Fatalf("intruder sees B's services: %+v", es)
		}
	})

	t.Run("MITM", func(t *testing.T) {
		// M accepts A (its allow-list has A's key) but is not B: A, pinned
		// to B's key, must refuse it.
		mitm := startTunnelNode(t, km, registry.TunnelConfig{Allow: secure.NewAllowList(ka.Public)})
		register(t, mitm.cl, "fake", echoServer(t))
		relay := newKillRelay(t, mitm.addr)
		a := startTunnelNode(t, ka, registry.TunnelConfig{Remotes: []registry.TunnelRemote{{Addr: relay.Addr(), Key: kb.Public}}})
		eventually(t, 20*time.Second, "A's attempts at the impostor", func() bool { return relay.accepted() >= 2 })
		for _, l := range a.tun.Links() {
			if l.Up || len(l.Proxies) > 0 {
				t.Fatalf("A linked with the impostor: %+v", l)
			}
		}
		for _, l := range mitm.tun.Links() {
			if l.Up {
				t.Fatalf("impostor got a link: %+v", l)
			}
		}
		if es, _ := a.cl.Lookup(ctxT(t), "fake"); len(es) > 0 {
			t.Fatalf("A sees the impostor's services: %+v", es)
		}
	})

	t.Run("Replay", func(t *testing.T) {
		relay := newKillRelay(t, b.addr)
		// A real tunnel through a recording relay, then gone.
		t.Run("record", func(t *testing.T) {
			a := startTunnelNode(t, ka, registry.TunnelConfig{Remotes: []registry.TunnelRemote{{Addr: relay.Addr(), Key: kb.Public}}})
			proxied(t, a.cl, "secret")
		})
		linkUp := func() bool {
			for _, l := range b.tun.Links() {
				if l.Key == ka.Public.String() && l.Up {
					return true
				}
			}
			return false
		}
		eventually(t, 20*time.Second, "B sees A's tunnel go down", func() bool { return !linkUp() })
		relay.mu.Lock()
		rec := append([]byte(nil), relay.rec[0]...)
		relay.mu.Unlock()
		if len(rec) < noise.PreambleSize || !strings.HasPrefix(string(rec), noise.PreambleMagic) {
			t.Fatalf("recorded %d bytes, not a handshake", len(rec))
		}
		// Replay what A sent, all at once, on a fresh connection.
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(rec)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		reply, err := io.ReadAll(c)
		if isTimeout(err) {
			t.Fatalf("B kept the replayed connection open (%d bytes back)", len(reply))
		}
		// B answered at most its handshake message; no session came up.
		if linkUp() {
			t.Fatal("a replayed handshake made a session")
		}
	})
}
