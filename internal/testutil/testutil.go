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
// connections stay open: the link looks dead, not closed) until Resume;
// Kill resets every connection (the link dies). It counts connections and
// bytes, and records the first bytes each dialler sent (for replay tests).
type Relay struct {
	ln     net.Listener
	target string
	delay  time.Duration

	mu       sync.Mutex
	conns    []net.Conn
	cut      bool
	resume   chan struct{}
	accepted int
	fwd      int64    // bytes forwarded, both ways
	rec      [][]byte // per connection, up to recordBytes from the dialler
	wg       sync.WaitGroup
}

// recordBytes is how much of each connection's dialler side Recorded keeps.
const recordBytes = 4096

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

// Kill resets every relayed connection now (new ones are still accepted).
func (r *Relay) Kill() {
	r.mu.Lock()
	for _, c := range r.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
}

// Accepted is the number of connections the relay took.
func (r *Relay) Accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted
}

// Forwarded is the number of bytes relayed, both ways.
func (r *Relay) Forwarded() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fwd
}

// Recorded returns the first bytes (up to 4 KiB) the dialler of the i-th
// connection sent.
func (r *Relay) Recorded(i int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i >= len(r.rec) {
		return nil
	}
	return append([]byte(nil), r.rec[i]...)
}

// Close stops accepting, closes every relayed connection and waits for the
// relay's goroutines.
func (r *Relay) Close() {
	r.ln.Close()
	r.Resume()
	r.Kill()
	r.wg.Wait()
}

// count adds n forwarded bytes, recording them when they come from the
// dialler of connection i (i < 0: from the target).
func (r *Relay) count(i int, b []byte) {
	r.mu.Lock()
	r.fwd += int64(len(b))
	if i >= 0 && len(r.rec[i]) < recordBytes {
		r.rec[i] = append(r.rec[i], b[:min(len(b), recordBytes-len(r.rec[i]))]...)
	}
	r.mu.Unlock()
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
		i := r.accepted
		r.accepted++
		r.rec = append(r.rec, nil)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(u, c, i)
		go r.pipe(c, u, -1)
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
func (r *Relay) pipe(dst, src net.Conn, rec int) {
	defer r.wg.Done()
	defer halfClose(dst)
	if r.delay <= 0 {
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				r.wait()
				r.count(rec, buf[:n])
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
		r.count(rec, c.b)
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

// NonLoopbackIP is an IPv4 address of this machine that is not loopback
// (nor link-local), for a peer that is not local; the test skips without
// one.
func NonLoopbackIP(t testing.TB) string {
	t.Helper()
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	t.Skip("no non-loopback IPv4 address on this machine")
	return ""
}
