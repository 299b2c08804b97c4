package tunnel_test

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

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/secure/noise"
	"github.com/hydra-net/hydra/tunnel"
)

func TestTunnelInProcessBothWays(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	b := startNode(t, kb, tunnel.Config{Allow: secure.NewAllowList(ka.Public)})
	a := startNode(t, ka, tunnel.Config{Remotes: []tunnel.Remote{{Addr: b.addr, Key: kb.Public}}})

	// A's service, reached from B's side.
	regA := register(t, a.cl, "echo-a", testutil.EchoServer(t))
	e := nodetest.TunnelProxy(t, b.cl, "echo-a")
	if e.Meta["k"] != "v" || e.Meta[tunnel.MetaPeer] != a.srv.ID() || e.Meta[tunnel.MetaOrigin] != a.srv.ID() ||
		e.Meta[tunnel.MetaInstance] != regA.Instance() || e.Host != "127.0.0.1" {
		t.Fatalf("proxy entry at B: %+v", e)
	}
	msg := bytes.Repeat([]byte("hello through the tunnel "), 4000)
	got, err := testutil.EchoRoundTrip(e.Addr(), msg)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo via B's proxy: %d bytes, err %v", len(got), err)
	}

	// B's service, reached from A's side, over the same tunnel.
	register(t, b.cl, "echo-b", testutil.EchoServer(t))
	e2 := nodetest.TunnelProxy(t, a.cl, "echo-b")
	got, err = testutil.EchoRoundTrip(e2.Addr(), msg)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo via A's proxy: %d bytes, err %v", len(got), err)
	}

	// Proxies are not shared back: B's view of echo-b has no proxy, and A
	// holds exactly one proxy entry for echo-b.
	es, _ := b.cl.Lookup(ctxT(t), "echo-b")
	for _, x := range es {
		if x.Meta[tunnel.MetaPeer] != "" {
			t.Fatalf("B's own service came back through the tunnel: %+v", x)
		}
	}

	// Deregistering at A removes the proxy at B.
	if err := regA.Deregister(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "echo-a gone at B", func() bool {
		es, err := b.cl.Lookup(ctxT(t), "echo-a")
		return err == nil && len(es) == 0 || errors.Is(err, registry.ErrNotFound)
	})
}

// A service that refuses connections: the client's connection through the
// proxy is closed, not left hanging.
func TestTunnelRefusedServiceClosesClient(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	b := startNode(t, kb, tunnel.Config{Allow: secure.NewAllowList(ka.Public)})
	a := startNode(t, ka, tunnel.Config{Remotes: []tunnel.Remote{{Addr: b.addr, Key: kb.Public}}})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().(*net.TCPAddr)
	ln.Close()
	register(t, a.cl, "dead", dead)
	e := nodetest.TunnelProxy(t, b.cl, "dead")
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

// The link killed in the middle of a transfer: the transfer fails with
// an error (never a clean, short EOF), the tunnel redials, the proxy keeps
// its address, and new connections work.
func TestTunnelLinkKilledMidTransfer(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	b := startNode(t, kb, tunnel.Config{Allow: secure.NewAllowList(ka.Public)})
	relay := testutil.NewRelay(t, b.addr, 0)
	a := startNode(t, ka, tunnel.Config{Remotes: []tunnel.Remote{{Addr: relay.Addr(), Key: kb.Public}}})

	// A sink on A's side.
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
	register(t, a.cl, "echo", testutil.EchoServer(t))
	e := nodetest.TunnelProxy(t, b.cl, "sink")
	eEcho := nodetest.TunnelProxy(t, b.cl, "echo")

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
	testutil.Eventually(t, 20*time.Second, "data through the tunnel before the kill", func() bool {
		return relay.Forwarded() >= 1<<20
	})
	relay.Kill()
	select {
	case err := <-errc:
		if isTimeout(err) {
			t.Fatalf("writer hung until its deadline: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writer never saw an error after the link died")
	}

	// Redial, and the same proxy address works again.
	testutil.Eventually(t, 20*time.Second, "a second tunnel connection", func() bool { return relay.Accepted() >= 2 })
	msg := []byte("after the reconnect")
	testutil.Eventually(t, 20*time.Second, "echo through the redialled tunnel at the same address", func() bool {
		got, err := testutil.EchoRoundTrip(eEcho.Addr(), msg)
		return err == nil && bytes.Equal(got, msg)
	})
	if e2 := nodetest.TunnelProxy(t, b.cl, "echo"); e2.Addr() != eEcho.Addr() {
		t.Fatalf("proxy moved from %s to %s", eEcho.Addr(), e2.Addr())
	}
}

// 100 concurrent streams, each a different random payload, checked by
// SHA-256 after the echo.
func TestTunnelConcurrentStreamsInProcess(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	b := startNode(t, kb, tunnel.Config{Allow: secure.NewAllowList(ka.Public)})
	a := startNode(t, ka, tunnel.Config{Remotes: []tunnel.Remote{{Addr: b.addr, Key: kb.Public}}})
	register(t, a.cl, "echo", testutil.EchoServer(t))
	e := nodetest.TunnelProxy(t, b.cl, "echo")
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
			got, err := testutil.EchoRoundTrip(addr, msg)
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
	b := startNode(t, kb, tunnel.Config{Allow: secure.NewAllowList(ka.Public)})
	register(t, b.cl, "secret", testutil.EchoServer(t))

	t.Run("UnknownKey", func(t *testing.T) {
		relay := testutil.NewRelay(t, b.addr, 0)
		m := startNode(t, km, tunnel.Config{Remotes: []tunnel.Remote{{Addr: relay.Addr(), Key: kb.Public}}})
		testutil.Eventually(t, 20*time.Second, "the intruder's attempts", func() bool { return relay.Accepted() >= 2 })
		for _, l := range m.tun.Links() {
			if l.State == tunnel.StateUp || len(l.Proxies) > 0 {
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
		mitm := startNode(t, km, tunnel.Config{Allow: secure.NewAllowList(ka.Public)})
		register(t, mitm.cl, "fake", testutil.EchoServer(t))
		relay := testutil.NewRelay(t, mitm.addr, 0)
		a := startNode(t, ka, tunnel.Config{Remotes: []tunnel.Remote{{Addr: relay.Addr(), Key: kb.Public}}})
		testutil.Eventually(t, 20*time.Second, "A's attempts at the impostor", func() bool { return relay.Accepted() >= 2 })
		for _, l := range a.tun.Links() {
			if l.State == tunnel.StateUp || len(l.Proxies) > 0 {
				t.Fatalf("A linked with the impostor: %+v", l)
			}
		}
		for _, l := range mitm.tun.Links() {
			if l.State == tunnel.StateUp {
				t.Fatalf("impostor got a link: %+v", l)
			}
		}
		if es, _ := a.cl.Lookup(ctxT(t), "fake"); len(es) > 0 {
			t.Fatalf("A sees the impostor's services: %+v", es)
		}
	})

	t.Run("Replay", func(t *testing.T) {
		relay := testutil.NewRelay(t, b.addr, 0)
		// A real tunnel through a recording relay, then gone.
		t.Run("record", func(t *testing.T) {
			a := startNode(t, ka, tunnel.Config{Remotes: []tunnel.Remote{{Addr: relay.Addr(), Key: kb.Public}}})
			nodetest.TunnelProxy(t, a.cl, "secret")
		})
		linkUp := func() bool {
			for _, l := range b.tun.Links() {
				if l.Key == ka.Public.String() && l.State == tunnel.StateUp {
					return true
				}
			}
			return false
		}
		testutil.Eventually(t, 20*time.Second, "B sees A's tunnel go down", func() bool { return !linkUp() })
		rec := relay.Recorded(0)
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
