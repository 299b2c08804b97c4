package mux

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// failAfter is how long a test waits for something that must happen
// before it fails instead of hanging. Tests never assert on timing.
const failAfter = 20 * time.Second

// tcpPair returns the two ends of a TCP loopback connection.
func tcpPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return c.(*net.TCPConn), r.c.(*net.TCPConn)
}

// sessionPair starts a client and a server session over the two given
// connections and closes both at the end of the test.
func sessionPairOver(t testing.TB, cc, sc net.Conn, ccfg, scfg *Config) (*Session, *Session) {
	t.Helper()
	cs, err := Client(cc, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := Server(sc, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.Close()
		ss.Close()
	})
	return cs, ss
}

// sessionPair starts a client and a server session over TCP loopback.
func sessionPair(t testing.TB, ccfg, scfg *Config) (*Session, *Session) {
	t.Helper()
	cc, sc := tcpPair(t)
	return sessionPairOver(t, cc, sc, ccfg, scfg)
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }

// within runs f and fails the test if it has not returned by failAfter.
func within(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(failAfter):
		t.Fatalf("%s: still blocked after %v", what, failAfter)
	}
}

// echoStream copies a stream back to itself, half-closes, and closes.
func echoStream(st net.Conn) {
	defer st.Close()
	if _, err := io.Copy(st, st); err != nil {
		return
	}
	if cw, ok := st.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// recordingConn keeps a copy of every Write made on the connection.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (r *recordingConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, bytes.Clone(b))
	r.mu.Unlock()
	return r.Conn.Write(b)
}

func (r *recordingConn) Writes() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}

// relay forwards one TCP connection to another address, optionally
// throttling the client-to-server direction, and can stop forwarding
// altogether while keeping both connections open: a peer gone silent.
type relay struct {
	ln      net.Listener
	target  string
	rate    int // bytes per second client→server; 0: unlimited
	stopped atomic.Bool
	stopCh  chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func newRelay(t testing.TB, target string, rate int) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, rate: rate, stopCh: make(chan struct{})}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(r.Close)
	return r
}

func (r *relay) Addr() string { return r.ln.Addr().String() }

func (r *relay) serve() {
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
		go r.copy(u, c, r.rate)
		go r.copy(c, u, 0)
	}
}

func (r *relay) copy(dst, src net.Conn, rate int) {
	defer r.wg.Done()
	buf := make([]byte, 16<<10)
	start := time.Now()
	total := 0
	for {
		n, err := src.Read(buf)
		if r.stopped.Load() {
			<-r.stopCh // silent: read nothing more, forward nothing
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			total += n
			if rate > 0 {
				due := start.Add(time.Duration(float64(total) / float64(rate) * float64(time.Second)))
				time.Sleep(time.Until(due)) // pacing to rate is this relay's job
			}
		}
		if err != nil {
			if cw, ok := dst.(*net.TCPConn); ok && err == io.EOF {
				cw.CloseWrite()
			}
			return
		}
	}
}

// Stop makes the relay silent in both directions.
func (r *relay) Stop() { r.stopped.Store(true) }

func (r *relay) Close() {
	r.ln.Close()
	r.stopped.Store(true)
	select {
	case <-r.stopCh:
	default:
		close(r.stopCh)
	}
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// dialSessions connects a client session to a server session through addr
// (a relay in front of the server listener ln).
func dialSessions(t testing.TB, ln net.Listener, addr string, ccfg, scfg *Config) (*Session, *Session) {
	t.Helper()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	cc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sc := <-ch
	if sc == nil {
		t.Fatal("accept failed")
	}
	return sessionPairOver(t, cc, sc, ccfg, scfg)
}
