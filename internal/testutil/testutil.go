// Package testutil holds the helpers Hydra's tests share: waiting for a
// condition instead of sleeping, a TCP relay that can delay or cut a link,
// and a goroutine-leak check. Only tests (and the bench harness) import it.
package testutil

import (
	"context"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond every few milliseconds until it holds, failing the
// test with what after d.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Context returns a context that ends after d or when the test ends.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// CheckGoroutines fails t when, within 5s, the number of goroutines does not
// fall back to base (taken with runtime.NumGoroutine before the test's
// work); the failure lists the goroutines left.
func CheckGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines left, want %d:\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Relay is a TCP relay on loopback to a target: each chunk read on one side
// is written to the other after Delay. Cut stalls both directions (the
// connections stay open: the link looks dead, not closed) until Resume.
type Relay struct {
	ln     net.Listener
	target string
	delay  time.Duration

	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
	resume chan struct{}
	wg     sync.WaitGroup
}

// NewRelay starts a relay to target that adds oneWay to each direction (0:
// none). Close stops it; tests get it closed by t.Cleanup when t is not nil.
func NewRelay(t testing.TB, target string, oneWay time.Duration) *Relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if t == nil {
			panic(err)
		}
		t.Fatal(err)
	}
	r := &Relay{ln: ln, target: target, delay: oneWay, resume: make(chan struct{})}
	if t != nil {
		t.Cleanup(r.Close)
	}
	r.wg.Add(1)
	go r.accept()
	return r
}

// Addr is the relay's HOST:PORT.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Cut stalls the link until Resume.
func (r *Relay) Cut() { r.setCut(true) }

// Resume lets a cut link flow again.
func (r *Relay) Resume() { r.setCut(false) }

// Drop closes every relayed connection now (new ones are still accepted).
func (r *Relay) Drop() {
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
}

// Close stops accepting, closes every relayed connection and waits for the
// relay's goroutines.
func (r *Relay) Close() {
	r.ln.Close()
	r.Resume()
	r.Drop()
	r.wg.Wait()
}

func (r *Relay) setCut(cut bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cut == r.cut {
		return
	}
	r.cut = cut
	if !cut {
		close(r.resume)
		r.resume = make(chan struct{})
	}
}

func (r *Relay) wait() {
	r.mu.Lock()
	cut, ch := r.cut, r.resume
	r.mu.Unlock()
	if cut {
		<-ch
	}
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, u)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(u, c)
		go r.pipe(c, u)
	}
}

type chunk struct {
	at time.Time
	b  []byte
}

// pipe copies src to dst. With a delay, a reader goroutine timestamps
// chunks into a queue and this one writes each when its time comes, so the
// delay adds latency without limiting throughput (the queue is unbounded:
// the endpoints' windows limit what is in flight).
func (r *Relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	defer halfClose(dst)
	if r.delay <= 0 {
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				r.wait()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					src.Close()
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	ch := make(chan chunk, 1<<16)
	go func() {
		defer close(ch)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				ch <- chunk{time.Now().Add(r.delay), b[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		if w := time.Until(c.at); w > 0 {
			time.Sleep(w)
		}
		r.wait()
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			for range ch {
			}
			return
		}
	}
}

func halfClose(c net.Conn) {
	if tc, ok := c.(interface{ CloseWrite() error }); ok && !strings.Contains(c.LocalAddr().Network(), "unix") {
		tc.CloseWrite()
		return
	}
	c.Close()
}
