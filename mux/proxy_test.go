package mux

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
)

// tunnel is a Forwarder on a local listener and a StreamServer dialling
// services, joined by a session over TCP loopback: the whole data path of a
// tunnelled connection, without encryption.
type tunnel struct {
	local    string // the Forwarder's listener address
	cs, ss   *Session
	services map[string]string
}

func newTunnel(t *testing.T, target string, services map[string]string) *tunnel {
	t.Helper()
	cs, ss := sessionPair(t, nil, nil)
	tn := &tunnel{cs: cs, ss: ss, services: services}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &StreamServer{Dial: func(ctx context.Context, name string) (net.Conn, error) {
		addr, ok := services[name]
		if !ok {
			return nil, ErrUnknownTarget
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tn.local = ln.Addr().String()
	f := &Forwarder{Target: target, Open: func(context.Context) (net.Conn, error) { return cs.Open() }}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Serve(ctx, ss) }()
	go func() { defer wg.Done(); f.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		cs.Close()
		ss.Close()
		wg.Wait()
	})
	return tn
}

// service listens on loopback and runs handle for each connection.
func service(t *testing.T, handle func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// hashAfterEOF reads the whole request, and only after its EOF replies
// with the request's SHA-256: it works only if half-close propagates.
func hashAfterEOF(c *net.TCPConn) {
	h := sha256.New()
	if _, err := io.Copy(h, c); err != nil {
		return
	}
	c.Write(h.Sum(nil))
}

// dialAndRead connects to addr, writes w and reads, returning the first
// error: of the dial (a reset may beat connect's completion), the write or
// the read (after failAfter: os.ErrDeadlineExceeded).
func dialAndRead(addr string, w []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if len(w) > 0 {
		if _, err := c.Write(w); err != nil {
			return err
		}
	}
	c.SetReadDeadline(time.Now().Add(failAfter))
	_, err = c.Read(make([]byte, 1))
	return err
}

// TestForwardHalfClose: a client writes a request through the tunnel and
// half-closes; the service sees EOF, replies, and the client reads the
// reply and then EOF. Many such connections run at once, with integrity.
func TestForwardHalfClose(t *testing.T) {
	tn := newTunnel(t, "hash", map[string]string{"hash": service(t, hashAfterEOF)})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := bytes.Repeat([]byte{byte(i)}, 100<<10+i*999)
			c, err := net.Dial("tcp", tn.local)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if _, err := c.Write(req); err != nil {
				errs <- err
				return
			}
			c.(*net.TCPConn).CloseWrite()
			reply, err := io.ReadAll(c)
			if err != nil {
				errs <- err
				return
			}
			if want := sum(req); !bytes.Equal(reply, want[:]) {
				errs <- errors.New("reply is not the request's hash")
			}
		}()
	}
	within(t, "forwarded connections", wg.Wait)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	testutil.Eventually(t, failAfter, "streams released", func() bool { return tn.cs.NumStreams() == 0 && tn.ss.NumStreams() == 0 })
}

// TestForwardRefused: when the far side's dial is refused (or the target
// is unknown), the client's connection is reset at once instead of
// hanging; the tunnel goes on working.
func TestForwardRefused(t *testing.T) {
	// A port with nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	for _, target := range []string{"refused", "unknown"} {
		t.Run(target, func(t *testing.T) {
			tn := newTunnel(t, target, map[string]string{"refused": closed})
			err := dialAndRead(tn.local, []byte("hello?")) // a client that speaks first
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("client connection still open after the far side's dial failed")
			}
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client got %v, want a connection reset", err)
			}
			testutil.Eventually(t, failAfter, "streams released", func() bool { return tn.cs.NumStreams() == 0 && tn.ss.NumStreams() == 0 })

			// The opener learns why, for its logs.
			f := &Forwarder{Target: target, Open: func(context.Context) (net.Conn, error) { return tn.cs.Open() }}
			c1, c2 := tcpPair(t)
			defer c1.Close()
			err = f.Forward(context.Background(), c2)
			var de *DialError
			want := map[string]Status{"refused": StatusRefused, "unknown": StatusUnknownTarget}[target]
			if !errors.As(err, &de) || de.Status != want || de.Target != target {
				t.Fatalf("Forward returned %v, want a DialError with status %v", err, want)
			}
		})
	}
}

// TestForwardResetPropagates: a service that resets its connection makes
// the client's connection reset too, and a client that resets makes the
// service's connection reset.
func TestForwardResetPropagates(t *testing.T) {
	t.Run("service resets", func(t *testing.T) {
		svc := service(t, func(c *net.TCPConn) {
			io.ReadFull(c, make([]byte, 5))
			c.SetLinger(0) // then the deferred Close sends RST
		})
		tn := newTunnel(t, "svc", map[string]string{"svc": svc})
		c, err := net.Dial("tcp", tn.local)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("hello"))
		c.SetReadDeadline(time.Now().Add(failAfter))
		_, err = c.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("client read %v, want a connection reset", err)
		}
	})
	t.Run("client resets", func(t *testing.T) {
		got := make(chan error, 1)
		svc := service(t, func(c *net.TCPConn) {
			c.Write([]byte("welcome"))
			_, err := io.Copy(io.Discard, c)
			got <- err
		})
		tn := newTunnel(t, "svc", map[string]string{"svc": svc})
		c, err := net.Dial("tcp", tn.local)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(c, make([]byte, 7)) // the path is up end to end
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		select {
		case err := <-got:
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("service read %v, want a connection reset", err)
			}
		case <-time.After(failAfter):
			t.Fatal("service connection still open after the client reset")
		}
	})
}

// TestForwardSessionLoss: when the session dies under a proxied
// connection, the client's and the service's TCP connections are reset
// rather than left hanging or closed as if the transfer were complete.
func TestForwardSessionLoss(t *testing.T) {
	svcErr := make(chan error, 1)
	svc := service(t, func(c *net.TCPConn) {
		_, err := io.Copy(c, c) // echo
		svcErr <- err
	})
	tn := newTunnel(t, "echo", map[string]string{"echo": svc})
	c, err := net.Dial("tcp", tn.local)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	tn.cs.Close() // the link drops
	c.SetReadDeadline(time.Now().Add(failAfter))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read %v, want a connection reset", err)
	}
	select {
	case err := <-svcErr:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("service read %v, want a connection reset", err)
		}
	case <-time.After(failAfter):
		t.Fatal("service connection still open after the session died")
	}
}

// TestForwardNoSession: a Forwarder that cannot open a stream resets the
// client's connection at once.
func TestForwardNoSession(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Forwarder{Target: "x", Open: func(context.Context) (net.Conn, error) { return nil, ErrSessionClosed }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Serve(ctx, ln) }()
	if err := dialAndRead(ln.Addr().String(), nil); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client got %v, want a connection reset", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve returned %v", err)
	}
}

// TestServeStreamBadHeader: a stream with a malformed or missing header is
// reset; the session goes on serving.
func TestServeStreamBadHeader(t *testing.T) {
	cs, ss := sessionPair(t, nil, nil)
	srv := &StreamServer{
		Dial:          func(context.Context, string) (net.Conn, error) { return nil, ErrUnknownTarget },
		HeaderTimeout: 100 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, ss)
	for name, hdr := range map[string][]byte{
		"version": {9, 1, 'x'},
		"empty":   {1, 0},
		"silent":  nil, // no header at all: HeaderTimeout
	} {
		st, err := cs.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		st.Write(hdr)
		st.SetReadDeadline(time.Now().Add(failAfter))
		if _, err := st.Read(make([]byte, 1)); !errors.Is(err, ErrStreamReset) {
			t.Errorf("%s: read %v, want ErrStreamReset", name, err)
		}
		st.Close()
	}
	if _, err := cs.Ping(); err != nil {
		t.Fatal(err)
	}
}

// TestProxyHalfCloseBothWays exercises Proxy directly between two TCP
// connection pairs: each side half-closes in turn and still receives.
func TestProxyHalfCloseBothWays(t *testing.T) {
	a1, a2 := tcpPair(t)
	b1, b2 := tcpPair(t)
	done := make(chan error, 1)
	go func() { done <- Proxy(context.Background(), a2, b1) }()

	a1.Write([]byte("from a"))
	a1.CloseWrite()
	got, err := io.ReadAll(b2) // EOF passed on
	if err != nil || string(got) != "from a" {
		t.Fatalf("b got %q %v", got, err)
	}
	b2.Write([]byte("from b, after a's EOF"))
	b2.CloseWrite()
	got, err = io.ReadAll(a1)
	if err != nil || string(got) != "from b, after a's EOF" {
		t.Fatalf("a got %q %v", got, err)
	}
	var perr error
	within(t, "Proxy return", func() { perr = <-done })
	if perr != nil {
		t.Fatal(perr)
	}
	a1.Close()
	b2.Close()
}

// TestProxyContextCancel: cancelling Proxy's context aborts both sides.
func TestProxyContextCancel(t *testing.T) {
	base := runtime.NumGoroutine()
	a1, a2 := tcpPair(t)
	b1, b2 := tcpPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Proxy(ctx, a2, b1) }()
	cancel()
	var err error
	within(t, "Proxy return", func() { err = <-done })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Proxy returned %v", err)
	}
	for _, c := range []net.Conn{a1, b2} {
		c.SetReadDeadline(time.Now().Add(failAfter))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("read %v, want a connection reset", err)
		}
		c.Close()
	}
	testutil.CheckGoroutines(t, base)
}
