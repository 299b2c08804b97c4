package portshare

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/secure/noise"
)

func listen(t *testing.T, cfg Config) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(ln, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// accept returns what half accepts next, or nil after d.
func accept(half net.Listener, d time.Duration) net.Conn {
	got := make(chan net.Conn, 1)
	go func() {
		c, err := half.Accept()
		if err != nil {
			c = nil
		}
		got <- c
	}()
	select {
	case c := <-got:
		return c
	case <-time.After(d):
		return nil
	}
}

func TestSplitsByFirstByte(t *testing.T) {
	base := runtime.NumGoroutine()
	l := listen(t, Config{})
	for _, c := range []struct {
		hello string
		half  net.Listener
	}{
		{"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f", l.ZMTP()},
		{noise.PreambleMagic + "\x01I", l.Tunnels()},
	} {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write([]byte(c.hello)); err != nil {
			t.Fatal(err)
		}
		sc := accept(c.half, 5*time.Second)
		if sc == nil {
			t.Fatalf("%q: not handed to its half", c.hello)
		}
		buf := make([]byte, len(c.hello))
		if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != c.hello {
			t.Fatalf("%q: the half read %q, %v", c.hello, buf, err)
		}
		// The replaying conn still half-closes the TCP connection.
		if err := sc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if n, err := nc.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("after CloseWrite: %d, %v", n, err)
		}
		sc.Close()
		nc.Close()
	}
	l.Close()
	if c, err := l.ZMTP().Accept(); err == nil {
		c.Close()
		t.Fatal("Accept after Close")
	}
	testutil.CheckGoroutines(t, base)
}

// Neither ZMTP nor a tunnel, silence, and a half nobody accepts from: each
// connection is closed within the first-byte timeout.
func TestClosesWhatNoHalfTakes(t *testing.T) {
	l := listen(t, Config{FirstByteTimeout: 200 * time.Millisecond})
	for _, first := range []string{"G", "", noise.PreambleMagic} {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte(first))
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := nc.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
			t.Fatalf("first byte %q: read %d, %v; want the connection closed", first, n, err)
		}
		nc.Close()
	}
}

// Past MaxPending silent connections from one source, new ones are shed
// (nobody lighter to evict for), and the slots come back once the silent
// ones time out.
func TestBoundsPending(t *testing.T) {
	l := listen(t, Config{FirstByteTimeout: 300 * time.Millisecond, MaxPending: 2})
	for range 2 {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	testutil.Eventually(t, 5*time.Second, "both slots taken", func() bool { n, _ := l.pending.Held(); return n == 2 })
	extra, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a connection past MaxPending: %v, want it closed", err)
	}
	extra.Close()
	testutil.Eventually(t, 5*time.Second, "slots free after the timeout", func() bool { n, _ := l.pending.Held(); return n == 0 })
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte{0xFF})
	if c := accept(l.ZMTP(), 5*time.Second); c == nil {
		t.Fatal("no ZMTP connection once slots freed")
	} else {
		c.Close()
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{{FirstByteTimeout: -1}, {MaxPending: -1}, {MaxPendingPerSource: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid", c)
		}
		if _, err := New(nil, c); err == nil {
			t.Errorf("%+v: New accepted it", c)
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// dialFrom connects to addr from the loopback address src (127.0.0.2...).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// flood opens n silent connections from 127.0.0.2..9 in turn and waits
// until the listener has taken or refused each (held slots settle).
func flood(t *testing.T, l *Listener, n, wantHeld int) {
	t.Helper()
	for i := range n {
		dialFrom(t, fmt.Sprintf("127.0.0.%d", 2+i%8), l.Addr().String())
	}
	testutil.Eventually(t, 5*time.Second, fmt.Sprintf("%d slots held", wantHeld), func() bool {
		held, _ := l.pending.Held()
		st := l.Stats()
		return held == wantHeld && int64(held)+st.SourceFull+st.Full+st.Evicted == int64(n)
	})
}

// handedOver says whether a connection from 127.0.0.1 sending hello
// reaches half (within a bound far below FirstByteTimeout).
func handedOver(t *testing.T, l *Listener, half net.Listener, hello string) bool {
	t.Helper()
	start := time.Now()
	nc := dialFrom(t, "127.0.0.1", l.Addr().String())
	if _, err := nc.Write([]byte(hello)); err != nil {
		t.Fatal(err)
	}
	sc := accept(half, 5*time.Second)
	if sc == nil {
		return false
	}
	t.Logf("%q handed over %v after the dial", hello[:1], time.Since(start))
	sc.Close()
	return true
}

// TestFloodFromFewSources: 300 silent connections from 8 addresses hold
// at most MaxPendingPerSource each, so with the defaults a ZMTP client and
// a tunnel from another address are still handed over at once (before
// issue 13, the flood took all 256 slots and both were shed).
func TestFloodFromFewSources(t *testing.T) {
	sink := testutil.NewLogSink()
	l := listen(t, Config{FirstByteTimeout: 30 * time.Second, Logger: sink.Logger()})
	flood(t, l, 300, 8*DefaultMaxPendingPerSource)
	if st := l.Stats(); st.SourceFull != 300-8*DefaultMaxPendingPerSource {
		t.Errorf("stats %+v: want %d refused per source", st, 300-8*DefaultMaxPendingPerSource)
	}
	if n := strings.Count(strings.Join(sink.Lines(), "\n"), msgRefused); n != 1 {
		t.Errorf("%d lines for %d refusals, want 1 (the rest counted)", n, 300-8*DefaultMaxPendingPerSource)
	}
	if !handedOver(t, l, l.ZMTP(), "\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f") {
		t.Fatal("a ZMTP greeting from 127.0.0.1 was not handed over during the flood")
	}
	if !handedOver(t, l, l.Tunnels(), noise.PreambleMagic+"\x01I") {
		t.Fatal("a tunnel preamble from 127.0.0.1 was not handed over during the flood")
	}
}

// TestFloodEvictsTheHeaviest: with every slot held by the flood, a
// newcomer from a source holding none takes the oldest slot of a source
// holding the most, whose connection is closed.
func TestFloodEvictsTheHeaviest(t *testing.T) {
	l := listen(t, Config{FirstByteTimeout: 30 * time.Second, MaxPending: 16})
	flood(t, l, 300, 16)
	if st := l.Stats(); st.Full != 300-16 || st.Evicted != 0 {
		t.Fatalf("stats %+v: want %d refused in all, none evicted (the sources are even)", st, 300-16)
	}
	if !handedOver(t, l, l.ZMTP(), "\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f") {
		t.Fatal("a ZMTP greeting from 127.0.0.1 was not handed over with every slot flooded")
	}
	if !handedOver(t, l, l.Tunnels(), noise.PreambleMagic+"\x01I") {
		t.Fatal("a tunnel preamble from 127.0.0.1 was not handed over with every slot flooded")
	}
	// The ZMTP client evicted one; its slot was free again for the tunnel.
	if st := l.Stats(); st.Evicted != 1 {
		t.Fatalf("stats %+v: want 1 evicted", st)
	}
}
