package zmtp

// Hostile load on an accepted socket (issue 13): idle connections by the
// thousand, trickled greetings and frames, silent 3.0 peers, floods of
// handshakes from a few addresses. The peers are raw TCP connections from
// 127.0.0.x (the whole 127/8 is loopback on Linux) that say just enough
// ZMTP; every wait is bounded by hostileGuard, which only turns a hang into
// a failure.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/admission"
	"github.com/hydra-net/hydra/internal/testutil"
)

const hostileGuard = 20 * time.Second

// hostileServer binds a ROUTER with cfg on loopback and returns it with
// its host:port.
func hostileServer(t *testing.T, cfg Config) (*Socket, string) {
	t.Helper()
	cfg.Linger = -1
	s, err := NewSocket(ROUTER, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return s, strings.TrimPrefix(s.Endpoint(), "tcp://")
}

// dialFrom connects to addr from the loopback address local.
func dialFrom(t testing.TB, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: hostileGuard}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// rawGreeting is a NULL greeting of ZMTP 3.minor and a READY of a
// socket of type typ: what a peer sends to complete its handshake.
func rawGreeting(minor byte, typ SocketType) []byte {
	b := AppendGreeting(nil, Greeting{Major: 3, Minor: minor, Mechanism: "NULL"})
	return AppendCommand(b, CmdReady, AppendMetadata(nil, Metadata{{Name: PropSocketType, Value: []byte(typ)}}))
}

// rawHandshake runs a NULL handshake as a typ socket of ZMTP 3.minor from
// local and reads the server's greeting and READY (or its ERROR).
func rawHandshake(t testing.TB, local, addr string, minor byte, typ SocketType) (net.Conn, Command) {
	t.Helper()
	nc := dialFrom(t, local, addr)
	nc.SetDeadline(time.Now().Add(hostileGuard))
	if _, err := nc.Write(rawGreeting(minor, typ)); err != nil {
		t.Fatal(err)
	}
	var g [GreetingSize]byte
	if _, err := io.ReadFull(nc, g[:]); err != nil {
		t.Fatalf("greeting from %s: %v", local, err)
	}
	cmd := readCommand(t, nc)
	nc.SetDeadline(time.Time{})
	return nc, cmd
}

// readCommand reads one command frame from nc without a frameReader, so
// that the peer holds no buffer.
func readCommand(t testing.TB, nc net.Conn) Command {
	t.Helper()
	var hdr [MaxFrameHeader]byte
	if _, err := io.ReadFull(nc, hdr[:2]); err != nil {
		t.Fatalf("command: %v", err)
	}
	n := 2
	if hdr[0]&FlagLong != 0 {
		if _, err := io.ReadFull(nc, hdr[2:]); err != nil {
			t.Fatal(err)
		}
		n = MaxFrameHeader
	}
	flags, size, _, err := ParseFrameHeader(hdr[:n], 1<<16)
	if err != nil || flags&FlagCommand == 0 {
		t.Fatalf("command header % x: flags %#x, %v", hdr[:n], flags, err)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(nc, body); err != nil {
		t.Fatal(err)
	}
	cmd, err := ParseCommand(body)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// readyConns counts s's connections past their handshake and attached.
func readyConns(s *Socket) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.ready.Load() {
			n++
		}
	}
	return n
}

// closedByPeer waits for nc to be closed by the server (EOF or reset) and
// reports whether it was, reading and discarding what the server sends.
func closedByPeer(nc net.Conn, within time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// 2 000 idle connections past their NULL handshake cost a few KiB of heap
// each, not the 64 KiB read buffer each was given before its first byte
// (66 KiB each before small buffers).
func TestHostileIdleConnectionsAreCheap(t *testing.T) {
	const n = 2000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 2*n+200 {
		lim.Cur = min(lim.Max, 2*n+200)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 2*n+200 {
			t.Skipf("need %d open files: %v (limit %d)", 2*n+200, err, lim.Cur)
		}
	}
	// Heartbeats on, as the registry runs: each peer also has its ticker.
	s, addr := hostileServer(t, Config{HeartbeatInterval: 10 * time.Second})
	greeting := rawGreeting(1, DEALER)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				nc, err := net.DialTimeout("tcp", addr, hostileGuard)
				if err != nil {
					errs <- err
					return
				}
				conns[i] = nc
				if _, err := nc.Write(greeting); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for _, c := range conns {
		if c != nil {
			defer c.Close()
		}
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, hostileGuard, "every connection attached", func() bool { return readyConns(s) == n })
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapInuse) - int64(before.HeapInuse)) / n
	t.Logf("%d idle connections: %d bytes of heap each (HeapInuse delta / n)", n, per)
	if per > 16<<10 {
		t.Fatalf("an idle connection costs %d bytes of heap, want under 16 KiB", per)
	}
}

// The handshake deadline runs from the connection's start: a peer that
// trickles its greeting a byte at a time (each read arriving well within
// the timeout) is still dropped at HandshakeTimeout, not held for ever.
func TestHostileTrickledGreetingDropped(t *testing.T) {
	s, addr := hostileServer(t, Config{HandshakeTimeout: 300 * time.Millisecond})
	nc := dialFrom(t, "127.0.0.2", addr)
	g := rawGreeting(1, DEALER)
	done := make(chan bool, 1)
	go func() { done <- closedByPeer(nc, hostileGuard) }()
	sent := 0
	for ; sent < len(g); sent++ {
		if _, err := nc.Write(g[sent : sent+1]); err != nil {
			break
		}
		select {
		case closed := <-done:
			if !closed {
				t.Fatal("not dropped within the guard")
			}
			if s.HandshakeFailures()[FailTimeout] != 1 {
				t.Fatalf("dropped, but failures are %v, want one timeout", s.HandshakeFailures())
			}
			t.Logf("dropped after %d of %d bytes", sent+1, len(g))
			return
		case <-time.After(50 * time.Millisecond): // 20 B/s: the whole greeting in 5s
		}
	}
	t.Fatalf("the whole handshake was trickled in (%d bytes) without a drop", sent)
}

// Once a frame's first byte arrived, the rest must come at MinRecvRate
// (after FrameTimeout): reads inside the frame do not renew the deadline,
// with heartbeats (whose liveness deadline each byte renews) and without.
// A frame sent at a fair pace is received.
func TestHostileTrickledFrameDropped(t *testing.T) {
	for _, hb := range []time.Duration{0, 200 * time.Millisecond} {
		t.Run(fmt.Sprint("heartbeat=", hb), func(t *testing.T) {
			s, addr := hostileServer(t, Config{HeartbeatInterval: hb, FrameTimeout: 300 * time.Millisecond, MinRecvRate: 1000, RecvTimeout: hostileGuard})
			// A fair sender: one 1000-byte message in four parts, 20ms apart
			// (its deadline is 1.3s away).
			fair, _ := rawHandshake(t, "127.0.0.3", addr, 1, DEALER)
			msg := AppendFrame(nil, 0, make([]byte, 1000))
			for i := 0; i < len(msg); i += 251 {
				fair.Write(msg[i:min(len(msg), i+251)])
				time.Sleep(20 * time.Millisecond)
			}
			if m, err := s.Recv(); err != nil || len(m) != 2 || len(m[1]) != 1000 {
				t.Fatalf("fair message: %d frames, %v", len(m), err)
			}

			nc, _ := rawHandshake(t, "127.0.0.2", addr, 1, DEALER)
			done := make(chan bool, 1)
			go func() { done <- closedByPeer(nc, hostileGuard) }()
			const size = 2000
			hdr := AppendFrameHeader(nil, 0, size)
			if _, err := nc.Write(hdr); err != nil {
				t.Fatal(err)
			}
			for sent := 0; sent < size; sent++ {
				if _, err := nc.Write([]byte{'x'}); err != nil {
					break
				}
				select {
				case closed := <-done:
					if !closed {
						t.Fatal("a frame trickled at 50 B/s was held for the whole guard")
					}
					t.Logf("dropped after %d of %d bytes", sent+1, size)
					return
				case <-time.After(20 * time.Millisecond): // 50 B/s: 40s for the frame
				}
			}
			t.Fatal("a frame trickled at 50 B/s was received whole")
		})
	}
}

// A message trickled as many small frames, each arriving well within the
// allowance, is dropped too: the deadline is the message's.
func TestHostileTrickledFramesDropped(t *testing.T) {
	_, addr := hostileServer(t, Config{HeartbeatInterval: 200 * time.Millisecond, FrameTimeout: 300 * time.Millisecond, MinRecvRate: 1000})
	nc, _ := rawHandshake(t, "127.0.0.2", addr, 1, DEALER)
	done := make(chan bool, 1)
	go func() { done <- closedByPeer(nc, hostileGuard) }()
	part := AppendFrame(nil, FlagMore, []byte{'x'})
	for sent := 0; sent < 1000; sent++ {
		if _, err := nc.Write(part); err != nil {
			break
		}
		select {
		case closed := <-done:
			if !closed {
				t.Fatal("a message trickled a frame at a time was held for the whole guard")
			}
			t.Logf("dropped after %d frames", sent+1)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("1000 frames of one message trickled in without a drop")
}

// With heartbeats on, an accepted ZMTP 3.0 peer, which cannot answer
// PINGs, is dropped after HeartbeatTimeout of silence; one that keeps
// sending stays.
func TestHostileSilentZMTP30PeerDropped(t *testing.T) {
	s, addr := hostileServer(t, Config{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 400 * time.Millisecond, RecvTimeout: hostileGuard})
	silent, _ := rawHandshake(t, "127.0.0.2", addr, 0, DEALER)
	talker, _ := rawHandshake(t, "127.0.0.3", addr, 0, DEALER)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := talker.Write(AppendFrame(nil, 0, []byte("hi"))); err != nil {
					return
				}
			}
		}
	}()
	if !closedByPeer(silent, hostileGuard) {
		t.Fatal("a silent 3.0 peer was not dropped")
	}
	// The talker is served well past the silent one's drop.
	for range 20 {
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	if n := readyConns(s); n != 1 {
		t.Fatalf("%d connections left, want the talker's", n)
	}
}

// A flood of silent connections from 127.0.0.2-9 holds at most the
// handshake cap; a newcomer from 127.0.0.1 still completes its handshake,
// taking the oldest slot of the heaviest source; refusals and evictions are
// counted (FailLimit) and logged once per source and cause, not once each.
func TestHostileHandshakeFloodEvicted(t *testing.T) {
	const perSource, total, sources = 8, 16, 8
	lim := admission.New(admission.Config{PerSource: perSource, Total: total, Evict: true})
	sink := testutil.NewLogSink()
	s, addr := hostileServer(t, Config{Handshakes: lim, HandshakeTimeout: time.Minute, Logger: sink.Logger(), RecvTimeout: hostileGuard})
	for src := 2; src < 2+sources; src++ {
		for range perSource {
			dialFrom(t, fmt.Sprintf("127.0.0.%d", src), addr)
		}
	}
	flood := int64(perSource * sources)
	testutil.Eventually(t, hostileGuard, "the flood admitted up to the cap", func() bool {
		held, _ := lim.Held()
		return held == total && s.HandshakeFailures()[FailLimit] == flood-total
	})
	nc, cmd := rawHandshake(t, "127.0.0.1", addr, 1, DEALER)
	if cmd.Name != CmdReady {
		t.Fatalf("newcomer got %s, want READY", cmd.Name)
	}
	nc.Write(AppendFrame(nil, 0, []byte("hello")))
	if m, err := s.Recv(); err != nil || string(m[1]) != "hello" {
		t.Fatalf("newcomer's message: %q, %v", m, err)
	}
	testutil.Eventually(t, hostileGuard, "the evicted handshake counted", func() bool {
		return s.HandshakeFailures()[FailLimit] == flood-total+1
	})
	if held, srcs := lim.Held(); held != total-1 || srcs != sources {
		t.Fatalf("holding %d handshakes of %d sources, want %d of %d", held, srcs, total-1, sources)
	}
	warns := 0
	for _, l := range sink.Lines() {
		if strings.HasPrefix(l, "WARN") && strings.Contains(l, "reason=limit") {
			warns++
		}
	}
	t.Logf("%d refusals and evictions, %d Warn lines", flood-total+1, warns)
	// At most one per source and cause: refused (source full, all full),
	// evicted.
	if warns > 3*sources {
		t.Fatalf("%d Warn lines for %d refusals from %d sources", warns, flood-total+1, sources)
	}
}

// ConnsPerSource refuses the N+1th established connection of a source
// with an ERROR that says why; other sources are served, and a slot freed
// is taken again.
func TestHostileConnsPerSourceRefused(t *testing.T) {
	lim := admission.New(admission.Config{PerSource: 3})
	s, addr := hostileServer(t, Config{Conns: lim, RecvTimeout: hostileGuard})
	var held []net.Conn
	for range 3 {
		nc, cmd := rawHandshake(t, "127.0.0.2", addr, 1, DEALER)
		if cmd.Name != CmdReady {
			t.Fatalf("got %s, want READY", cmd.Name)
		}
		held = append(held, nc)
	}
	testutil.Eventually(t, hostileGuard, "three attached", func() bool { return readyConns(s) == 3 })
	nc, _ := rawHandshake(t, "127.0.0.2", addr, 1, DEALER)
	nc.SetReadDeadline(time.Now().Add(hostileGuard))
	cmd := readCommand(t, nc)
	reason, _ := ParseError(cmd.Body)
	if cmd.Name != CmdError || reason != admission.ErrSourceFull.Error() {
		t.Fatalf("fourth connection got %s %q, want ERROR %q", cmd.Name, reason, admission.ErrSourceFull)
	}
	if !closedByPeer(nc, hostileGuard) {
		t.Fatal("refused connection left open")
	}
	if n := s.HandshakeFailures()[FailLimit]; n != 1 {
		t.Fatalf("%d refusals counted, want 1", n)
	}
	other, _ := rawHandshake(t, "127.0.0.3", addr, 1, DEALER)
	other.Write(AppendFrame(nil, 0, []byte("other")))
	if m, err := s.Recv(); err != nil || string(m[1]) != "other" {
		t.Fatalf("another source: %q, %v", m, err)
	}
	held[0].Close()
	testutil.Eventually(t, hostileGuard, "a slot freed", func() bool { n, _ := lim.Held(); return n == 3 })
	again, _ := rawHandshake(t, "127.0.0.2", addr, 1, DEALER)
	again.Write(AppendFrame(nil, 0, []byte("again")))
	if m, err := s.Recv(); err != nil || string(m[1]) != "again" {
		t.Fatalf("after a slot was freed: %q, %v", m, err)
	}
}

// n handshakes failing the same way from a few sources give a line per
// source at Warn, not one each: the key is the source and the reason, not
// the error's text (which names the port).
func TestHostileHandshakeFailuresLoggedOnce(t *testing.T) {
	sink := testutil.NewLogSink()
	s, addr := hostileServer(t, Config{HandshakeTimeout: 200 * time.Millisecond, Logger: sink.Logger()})
	const each = 30
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		for range each {
			dialFrom(t, src, addr)
		}
	}
	testutil.Eventually(t, hostileGuard, "every handshake timed out", func() bool {
		return s.HandshakeFailures()[FailTimeout] == 2*each
	})
	warns := 0
	for _, l := range sink.Lines() {
		if strings.HasPrefix(l, "WARN") && strings.Contains(l, "handshake failed") {
			warns++
		}
	}
	if warns != 2 {
		t.Fatalf("%d timeouts from 2 sources gave %d Warn lines, want 2:\n%s", 2*each, warns, strings.Join(sink.Lines(), "\n"))
	}
}
