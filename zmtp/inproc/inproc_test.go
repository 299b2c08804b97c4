package inproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
)

// dialPair returns both ends of a connection made through a listener.
func dialPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := Listen(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	client, err = Dial(context.Background(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestListenDialAccept(t *testing.T) {
	c, s := dialPair(t)
	if s.LocalAddr().String() != t.Name() || c.RemoteAddr().String() != t.Name() ||
		c.LocalAddr().Network() != "inproc" || s.RemoteAddr() != c.LocalAddr() {
		t.Fatalf("addresses: client %v→%v, server %v→%v", c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr())
	}
	// Both ends write before either reads, as ZMTP's greeting does.
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("server read %q, %v", buf[:n], err)
	}
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "world" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
}

func TestListenErrors(t *testing.T) {
	if _, err := Listen(""); err == nil {
		t.Fatal("empty name accepted")
	}
	l, err := Listen("taken")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("taken"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second Listen: %v, want EADDRINUSE", err)
	}
	l.Close()
	if _, err := Dial(context.Background(), "taken"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial after Close: %v, want ECONNREFUSED", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	// The name is free again.
	l2, err := Listen("taken")
	if err != nil {
		t.Fatal(err)
	}
	l.Close() // closing the old one again must not unregister the new one
	if _, err := Dial(context.Background(), "taken"); err != nil {
		t.Fatalf("Dial to the new listener: %v", err)
	}
	l2.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Dial(ctx, "anything"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a done context: %v", err)
	}
}

// TestCloseUnblocksAccept: Close ends a waiting Accept and closes the
// connections nobody accepted.
func TestCloseUnblocksAccept(t *testing.T) {
	synctest.Test(t, testCloseUnblocksAccept)
}

func testCloseUnblocksAccept(t *testing.T) {
	l, err := Listen(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	synctest.Wait() // Accept is blocked
	l.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept across Close: %v", err)
	}

	// A connection still waiting for Accept is closed with the listener.
	l, err = Listen(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := Dial(context.Background(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer orphan.Close()
	l.Close()
	orphan.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := orphan.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from a connection never accepted, after Close: %v, want EOF", err)
	}
}

// TestBackpressure: a writer blocks once QueueSize bytes are unread and
// goes on as the reader reads; every byte arrives in order.
func TestBackpressure(t *testing.T) {
	c, s := dialPair(t)
	data := make([]byte, 5*QueueSize+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := c.Write(data)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n != QueueSize {
		t.Fatalf("write into a full queue: %d, %v; want %d and a timeout", n, err, QueueSize)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("timeout %v is not a net.Error with Timeout()", err)
	}
	c.SetWriteDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data[n:])
		if err == nil {
			err = c.(*Conn).CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d (same content: %v)", len(got), len(data), bytes.Equal(got[:min(len(got), len(data))], data[:min(len(got), len(data))]))
	}
}

// TestHalfClose: after CloseWrite the peer reads everything, then EOF,
// and can still answer.
func TestHalfClose(t *testing.T) {
	c, s := dialPair(t)
	c.Write([]byte("request"))
	c.(*Conn).CloseWrite()
	if _, err := c.Write([]byte("more")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after CloseWrite: %v", err)
	}
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "request" {
		t.Fatalf("server read %q, %v", got, err)
	}
	s.Write([]byte("reply"))
	s.Close()
	got, err = io.ReadAll(c)
	if err != nil || string(got) != "reply" {
		t.Fatalf("client read %q, %v", got, err)
	}
}

// TestClose: a closed end fails its own calls with net.ErrClosed; its peer
// reads what was sent, then EOF, and its writes fail with EPIPE. Close
// wakes blocked calls on the closing end.
func TestClose(t *testing.T) {
	synctest.Test(t, testClose)
}

func testClose(t *testing.T) {
	c, s := dialPair(t)
	c.Write([]byte("last words"))
	blocked := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		blocked <- err
	}()
	synctest.Wait() // Read is blocked
	c.Close()
	if err := <-blocked; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read across Close: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if c.Close() != nil {
		t.Fatal("second Close failed")
	}
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "last words" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	if _, err := s.Write([]byte("anyone?")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write to a closed peer: %v, want EPIPE", err)
	}

	// A writer blocked on a full queue is woken by the reader's Close.
	c2, s2 := dialPair2(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c2.Write(make([]byte, 2*QueueSize))
		errc <- err
	}()
	synctest.Wait() // Write is blocked on the full queue
	s2.Close()
	if err := <-errc; !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("blocked write across the peer's Close: %v, want EPIPE", err)
	}
}

func dialPair2(t *testing.T) (*Conn, *Conn) {
	a, b := Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestDeadlines: a deadline ends a blocked call, a past one fails at once,
// moving it later or clearing it lets calls wait again.
func TestDeadlines(t *testing.T) {
	synctest.Test(t, testDeadlines) // time is the subject: a fake clock
}

func testDeadlines(t *testing.T) {
	c, s := dialPair2(t)
	buf := make([]byte, 8)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	start := time.Now()
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("timed out after %v", d)
	}
	c.SetReadDeadline(time.Now().Add(-time.Second))
	s.Write([]byte("x"))
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	// Re-armed many times (as heartbeats do), then cleared.
	for range 100 {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
	}
	c.SetReadDeadline(time.Time{})
	time.Sleep(5 * time.Millisecond) // the subject: a stale expiry of the re-armed timer must not end later reads
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("read after clearing the deadline: %q, %v", buf[:n], err)
	}
	// A deadline set while a Read waits ends it.
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(buf)
		errc <- err
	}()
	synctest.Wait() // Read is blocked
	c.SetDeadline(time.Now())
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read across SetDeadline: %v", err)
	}
}

// TestConcurrentUse: many writers and readers on one connection move every
// byte exactly once (run with -race).
func TestConcurrentUse(t *testing.T) {
	c, s := dialPair2(t)
	const writers, chunk, rounds = 4, 1000, 200
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := bytes.Repeat([]byte{1}, chunk)
			for range rounds {
				if _, err := c.Write(b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var total sync.Map
	var rwg sync.WaitGroup
	for i := range 3 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			n, _ := io.Copy(io.Discard, s)
			total.Store(i, n)
		}()
	}
	wg.Wait()
	c.CloseWrite()
	rwg.Wait()
	var sum int64
	total.Range(func(_, v any) bool { sum += v.(int64); return true })
	if sum != writers*chunk*rounds {
		t.Fatalf("read %d bytes, want %d", sum, writers*chunk*rounds)
	}
}

// TestNoAllocsNoGoroutines: a steady exchange allocates nothing per call
// (deadlines included), and connections own no goroutine.
func TestNoAllocsNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	c, s := dialPair2(t)
	msg, buf := make([]byte, 512), make([]byte, 512)
	allocs := testing.AllocsPerRun(1000, func() {
		s.SetReadDeadline(time.Now().Add(time.Minute))
		c.Write(msg)
		io.ReadFull(s, buf)
	})
	if allocs > 0 {
		t.Errorf("%v allocations per write+read", allocs)
	}
	for range 100 {
		a, b := Pipe()
		a.SetDeadline(time.Now().Add(time.Hour))
		a.Close()
		b.Close()
	}
	c.Close()
	s.Close()
	testutil.CheckGoroutines(t, before)
}

func BenchmarkThroughput(b *testing.B) {
	for _, size := range []int{256, 64 << 10} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			c, s := Pipe()
			defer c.Close()
			defer s.Close()
			go io.Copy(io.Discard, s)
			msg := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				c.Write(msg)
			}
		})
	}
}
