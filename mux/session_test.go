package mux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/hydra-net/hydra/internal/testutil"
)

func TestConfigDefaultsAndLimits(t *testing.T) {
	d := Config{}.withDefaults()
	if d.StreamWindow != 8<<20 || d.MaxStreams != 256 || d.AcceptBacklog != 64 ||
		d.KeepAliveInterval != 5*time.Second || d.LivenessTimeout != 15*time.Second ||
		d.WriteTimeout != 30*time.Second || d.OpenTimeout != 30*time.Second || d.Logger == nil {
		t.Fatalf("defaults: %+v", d)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	// Each names the field at fault.
	bad := []struct {
		field string
		cfg   Config
	}{
		{"StreamWindow", Config{StreamWindow: 128 << 10}},
		{"StreamWindow", Config{StreamWindow: 32 << 20}},
		{"MaxStreams", Config{MaxStreams: -1}},
		{"MaxStreams", Config{MaxStreams: 1<<16 + 1}},
		{"AcceptBacklog", Config{MaxStreams: 4, AcceptBacklog: 5}},
		{"KeepAliveInterval", Config{KeepAliveInterval: -time.Second}},
		{"LivenessTimeout", Config{KeepAliveInterval: time.Second, LivenessTimeout: time.Second}},
		{"WriteTimeout", Config{WriteTimeout: -1}},
		{"OpenTimeout", Config{OpenTimeout: -1}},
	}
	for _, b := range bad {
		if err := b.cfg.Validate(); err == nil || !strings.Contains(err.Error(), b.field) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", b.cfg, err, b.field)
		}
		if _, err := Client(nil, &b.cfg); err == nil {
			t.Errorf("Client with %+v accepted", b.cfg)
		}
	}
	good := []Config{
		{StreamWindow: MinStreamWindow},
		{StreamWindow: MaxStreamWindow},
		{MaxStreams: 1},
		{MaxStreams: 8},                            // backlog defaults to min(64, 8)
		{KeepAliveInterval: 10 * time.Millisecond}, // liveness defaults to 3×
		{LivenessTimeout: 6 * time.Second},         // above the 5s default interval
		{AcceptBacklog: 256, MaxStreams: 256},      // backlog may equal the cap
		{KeepAliveInterval: time.Minute, WriteTimeout: time.Hour},
	}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", c, err)
		}
	}
}

// TestConcurrentStreamsIntegrity runs 100 streams at once over one session
// on TCP loopback; the server echoes each, and each stream's data must come
// back intact (SHA-256).
func TestConcurrentStreamsIntegrity(t *testing.T) {
	cs, ss := sessionPair(t, nil, nil)
	go func() {
		for {
			st, err := ss.AcceptStream()
			if err != nil {
				return
			}
			go echoStream(st)
		}
	}()

	const streams = 100
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		data := randomBytes(t, 64<<10+i*2011) // 64 KiB to ~260 KiB, odd sizes
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- roundTrip(cs, data)
		}()
	}
	within(t, "100 streams", wg.Wait)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	testutil.Eventually(t, failAfter, "streams released", func() bool { return cs.NumStreams() == 0 && ss.NumStreams() == 0 })
}

// roundTrip sends data on a new stream, half-closes, and checks that the
// echo matches.
func roundTrip(s *Session, data []byte) error {
	st, err := s.OpenStream()
	if err != nil {
		return err
	}
	defer st.Close()
	werr := make(chan error, 1)
	go func() {
		// Odd write sizes, so frames do not line up with anything.
		for b := data; len(b) > 0; {
			n := min(len(b), 7919)
			if _, err := st.Write(b[:n]); err != nil {
				werr <- err
				return
			}
			b = b[n:]
		}
		werr <- st.CloseWrite()
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		return fmt.Errorf("stream %d: read: %w", st.StreamID(), err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("stream %d: write: %w", st.StreamID(), err)
	}
	if sum(got) != sum(data) {
		return fmt.Errorf("stream %d: echoed %d bytes with a different SHA-256 (sent %d)", st.StreamID(), len(got), len(data))
	}
	return nil
}

// TestHalfClose: the client's CloseWrite reaches the server as EOF, and the
// server can still send its reply, which the client reads before EOF.
func TestHalfClose(t *testing.T) {
	cs, ss := sessionPair(t, nil, nil)
	srvErr := make(chan error, 1)
	go func() {
		st, err := ss.AcceptStream()
		if err != nil {
			srvErr <- err
			return
		}
		defer st.Close()
		req, err := io.ReadAll(st) // returns only at the client's EOF
		if err != nil {
			srvErr <- err
			return
		}
		_, err = st.Write(append([]byte("reply to "), req...))
		srvErr <- err
	}()

	st, err := cs.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("more")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after CloseWrite: %v, want net.ErrClosed", err)
	}
	var got []byte
	within(t, "reading the reply", func() { got, err = io.ReadAll(st) })
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "reply to request" {
		t.Fatalf("got %q", got)
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
}

// frameStats walks the bytes of each recorded Write as yamux frames.
type frameStats struct {
	writes, dataFrames, lone int // lone: a Write holding only a data header
	split                    int // Writes that end inside a frame
}

func analyseWrites(writes [][]byte) frameStats {
	var fs frameStats
	for _, w := range writes {
		fs.writes++
		if len(w) == hdrSize && w[1] == typeData && binary.BigEndian.Uint32(w[8:]) > 0 {
			fs.lone++
		}
		for len(w) > 0 {
			if len(w) < hdrSize {
				fs.split++
				break
			}
			n := hdrSize
			if w[1] == typeData {
				n += int(binary.BigEndian.Uint32(w[8:]))
			}
			if n > len(w) {
				fs.split++
				break
			}
			if w[1] == typeData {
				fs.dataFrames++
			}
			w = w[n:]
		}
	}
	return fs
}

// TestWriteCoalescing records every Write a session makes on its TCP
// connection during a bulk transfer: each must hold whole frames, so a
// frame's header and body always reach the connection (and a record layer
// below) in one Write. Plain yamux over the same recorder shows the
// problem being solved: a lone 12-byte Write per data frame.
func TestWriteCoalescing(t *testing.T) {
	const total = 8 << 20
	data := randomBytes(t, total)

	transfer := func(t *testing.T, open func() (net.Conn, error), accept func() (net.Conn, error)) {
		t.Helper()
		got := make(chan []byte, 1)
		go func() {
			st, err := accept()
			if err != nil {
				got <- nil
				return
			}
			b, _ := io.ReadAll(st)
			got <- b
		}()
		st, err := open()
		if err != nil {
			t.Fatal(err)
		}
		for b := data; len(b) > 0; b = b[64<<10:] {
			if _, err := st.Write(b[:64<<10]); err != nil {
				t.Fatal(err)
			}
		}
		st.Close()
		var b []byte
		within(t, "transfer", func() { b = <-got })
		if sum(b) != sum(data) {
			t.Fatalf("received %d bytes, SHA-256 differs", len(b))
		}
	}

	t.Run("mux", func(t *testing.T) {
		cc, sc := tcpPair(t)
		rec := &recordingConn{Conn: cc}
		cs, ss := sessionPairOver(t, rec, sc, nil, nil)
		transfer(t, cs.Open, ss.Accept)
		fs := analyseWrites(rec.Writes())
		t.Logf("%+v", fs)
		if fs.split != 0 || fs.lone != 0 {
			t.Errorf("%d Writes end inside a frame, %d hold a lone data header; want none", fs.split, fs.lone)
		}
		if fs.dataFrames < total/maxFrameData {
			t.Errorf("only %d data frames for %d bytes", fs.dataFrames, total)
		}
		if fs.writes > fs.dataFrames+fs.dataFrames/4+8 {
			t.Errorf("%d Writes for %d data frames: control frames are not riding along", fs.writes, fs.dataFrames)
		}
	})

	t.Run("plain yamux", func(t *testing.T) {
		cc, sc := tcpPair(t)
		rec := &recordingConn{Conn: cc}
		cfg := yamux.DefaultConfig()
		cfg.LogOutput = io.Discard
		yc, err := yamux.Client(rec, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer yc.Close()
		ys, err := yamux.Server(sc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer ys.Close()
		transfer(t, yc.Open, ys.Accept)
		fs := analyseWrites(rec.Writes())
		t.Logf("%+v", fs)
		// Each data frame's header went alone, its body in the next Write.
		if fs.lone < total/(64<<10) {
			t.Errorf("plain yamux wrote only %d lone data headers for %d bytes; the test no longer shows the problem", fs.lone, total)
		}
	})
}

// TestLivenessBusyLink saturates a slow link (a relay throttled to 2 MiB/s
// carrying 5 MiB, so our data and anything queued behind it wait seconds in
// buffers) with a keepalive interval of 20 ms and a liveness timeout of
// 750 ms: the link must survive, because any byte read is a sign of life
// and the receiving side pings when it has nothing else to write. (With
// pings on read-idleness alone, the sender's pings wait behind its data and
// it declares the peer dead.)
func TestLivenessBusyLink(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := newRelay(t, ln.Addr().String(), 2<<20)
	cfg := &Config{KeepAliveInterval: 20 * time.Millisecond, LivenessTimeout: 750 * time.Millisecond}
	cs, ss := dialSessions(t, ln, r.Addr(), cfg, cfg)

	data := randomBytes(t, 5<<20)
	got := make(chan []byte, 1)
	go func() {
		st, err := ss.AcceptStream()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(st)
		got <- b
	}()
	st, err := cs.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(data); err != nil {
		t.Fatalf("write: %v (session: %v)", err, cs.Err())
	}
	st.Close()
	var b []byte
	within(t, "slow transfer", func() { b = <-got })
	if sum(b) != sum(data) {
		t.Fatalf("received %d of %d bytes; client session: %v; server session: %v", len(b), len(data), cs.Err(), ss.Err())
	}
	if cs.Err() != nil || ss.Err() != nil {
		t.Fatalf("a session failed on a busy link: client %v, server %v", cs.Err(), ss.Err())
	}
	if _, err := cs.Ping(); err != nil {
		t.Fatalf("ping after the transfer: %v", err)
	}
}

// TestLivenessSilentPeer: a relay that stops forwarding (the peer is gone
// but no TCP connection closes) is detected within the liveness timeout;
// the session fails with ErrPeerTimeout, and open streams' blocked Read and
// Write calls fail with it instead of hanging or returning EOF.
func TestLivenessSilentPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := newRelay(t, ln.Addr().String(), 0)
	cfg := &Config{KeepAliveInterval: 100 * time.Millisecond, LivenessTimeout: time.Second}
	cs, ss := dialSessions(t, ln, r.Addr(), cfg, cfg)

	accepted := make(chan *Stream, 1)
	go func() {
		st, err := ss.AcceptStream()
		if err == nil {
			accepted <- st
		}
	}()
	st, err := cs.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	sst := <-accepted
	buf := make([]byte, 5)
	if _, err := io.ReadFull(sst, buf); err != nil {
		t.Fatal(err)
	}

	r.Stop()
	readErr := make(chan error, 1)
	go func() {
		_, err := st.Read(buf) // nothing will come
		readErr <- err
	}()
	writeErr := make(chan error, 1)
	go func() {
		// Fills the window (nothing is forwarded) and then blocks.
		chunk := make([]byte, 1<<20)
		for {
			if _, err := st.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
	}()

	for _, s := range []*Session{cs, ss} {
		select {
		case <-s.Done():
		case <-time.After(failAfter):
			t.Fatal("silent peer not detected")
		}
		if err := s.Err(); !errors.Is(err, ErrPeerTimeout) || !errors.Is(err, ErrSessionClosed) {
			t.Errorf("session error %v, want ErrPeerTimeout and ErrSessionClosed", err)
		}
	}
	for what, ch := range map[string]chan error{"read": readErr, "write": writeErr} {
		select {
		case err := <-ch:
			if !errors.Is(err, ErrPeerTimeout) || err == io.EOF {
				t.Errorf("blocked %s returned %v, want an error wrapping ErrPeerTimeout", what, err)
			}
		case <-time.After(failAfter):
			t.Fatalf("blocked %s still blocked", what)
		}
	}
	if _, err := cs.OpenStream(); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("OpenStream on a dead session: %v", err)
	}
}

// TestSessionKilledMidTransfer: the TCP connection dies in the middle of
// bulk transfers; every stream on both sides fails with an error (never
// EOF, which would pass a truncated transfer off as complete) and nothing
// hangs.
func TestSessionKilledMidTransfer(t *testing.T) {
	cc, sc := tcpPair(t)
	cs, ss := sessionPairOver(t, cc, sc, nil, nil)
	const streams = 4
	results := make(chan error, 2*streams)
	var accepted sync.WaitGroup
	accepted.Add(streams)
	go func() {
		for {
			st, err := ss.AcceptStream()
			if err != nil {
				return
			}
			accepted.Done()
			go func() { // read until something ends the stream
				_, err := io.Copy(io.Discard, st)
				if err == nil {
					err = io.EOF // io.Copy hides EOF: report it as such
				}
				results <- err
			}()
		}
	}()
	var started sync.WaitGroup
	for range streams {
		st, err := cs.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		started.Add(1)
		go func() {
			chunk := make([]byte, 256<<10)
			first := true
			for {
				_, err := st.Write(chunk)
				if first {
					started.Done()
					first = false
				}
				if err != nil {
					results <- err
					return
				}
			}
		}()
	}
	started.Wait()
	accepted.Wait()
	sc.SetLinger(0)
	sc.Close() // the link dies under the server session

	for range 2 * streams {
		select {
		case err := <-results:
			if err == io.EOF || !errors.Is(err, ErrSessionClosed) {
				t.Errorf("stream ended with %v, want an error wrapping ErrSessionClosed", err)
			}
		case <-time.After(failAfter):
			t.Fatal("a stream is still blocked after its session died")
		}
	}
	for _, s := range []*Session{cs, ss} {
		select {
		case <-s.Done():
		case <-time.After(failAfter):
			t.Fatal("session not closed")
		}
	}
}

// TestStreamLimit: streams the peer opens beyond MaxStreams are reset at
// once, while nobody accepts, rather than queued; the admitted ones work
// once accepted, and a slot freed by closing a stream can be used again.
// OpenStream at our own cap fails.
func TestStreamLimit(t *testing.T) {
	cs, ss := sessionPair(t, &Config{MaxStreams: 20}, &Config{MaxStreams: 4, AcceptBacklog: 4})
	const opened = 10
	type result struct {
		b   byte
		err error
	}
	results := make(chan result, opened)
	var sts []*Stream
	for range opened {
		st, err := cs.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write([]byte("x")); err != nil && !errors.Is(err, ErrStreamReset) {
			t.Fatal(err)
		}
		sts = append(sts, st)
		go func() {
			b := make([]byte, 1)
			_, err := io.ReadFull(st, b)
			results <- result{b[0], err}
		}()
	}
	// Nobody accepts yet: 6 must be refused all the same.
	var got []result
	for range opened - 4 {
		select {
		case r := <-results:
			got = append(got, r)
		case <-time.After(failAfter):
			t.Fatalf("only %d streams refused while nobody accepts, want %d", len(got), opened-4)
		}
	}
	if n := ss.NumStreams(); n != 4 {
		t.Fatalf("server counts %d streams, want 4", n)
	}
	// The 4 admitted ones are served once accepted.
	for range 4 {
		st, err := ss.AcceptStream()
		if err != nil {
			t.Fatal(err)
		}
		go echoStream(st)
	}
	for range 4 {
		select {
		case r := <-results:
			got = append(got, r)
		case <-time.After(failAfter):
			t.Fatal("an accepted stream got no echo")
		}
	}
	refused, served := 0, 0
	for _, r := range got {
		switch {
		case errors.Is(r.err, ErrStreamReset):
			refused++
		case r.err == nil && r.b == 'x':
			served++
		default:
			t.Errorf("stream result %q %v", r.b, r.err)
		}
	}
	if refused != opened-4 || served != 4 {
		t.Fatalf("%d refused and %d served, want %d and 4", refused, served, opened-4)
	}
	if got[0].err == nil {
		t.Fatal("the first results came from accepted streams: refusals waited for Accept")
	}
	for _, st := range sts {
		st.Close()
	}
	testutil.Eventually(t, failAfter, "slots freed", func() bool { return ss.NumStreams() == 0 })
	if err := roundTrip2(cs, ss); err != nil {
		t.Fatal(err)
	}

	// Our own cap.
	one, _ := sessionPair(t, &Config{MaxStreams: 1}, nil)
	if _, err := one.OpenStream(); err != nil {
		t.Fatal(err)
	}
	if _, err := one.OpenStream(); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("second OpenStream with MaxStreams 1: %v", err)
	}
}

// TestOpenFlood: a peer opening streams as fast as it can while nobody
// accepts costs only its own session: the backlog stays bounded, the
// excess is reset, and the session keeps working.
func TestOpenFlood(t *testing.T) {
	cs, ss := sessionPair(t, &Config{MaxStreams: 4096, AcceptBacklog: 64}, &Config{MaxStreams: 64, AcceptBacklog: 8})
	var sts []*Stream
	for range 2000 {
		st, err := cs.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		sts = append(sts, st)
		if n := ss.NumStreams(); n > 8 {
			t.Fatalf("server holds %d streams with a backlog of 8 and no Accept", n)
		}
	}
	if _, err := cs.Ping(); err != nil {
		t.Fatalf("session broken by the flood: %v", err)
	}
	reset := 0
	for _, st := range sts {
		st.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := st.Read(make([]byte, 1)); errors.Is(err, ErrStreamReset) {
			reset++
		}
		st.Close()
	}
	if reset < 2000-8 {
		t.Fatalf("only %d of 2000 streams reset", reset)
	}
	for range 8 {
		if _, err := ss.AcceptStream(); err != nil {
			t.Fatal(err)
		}
	}
	if ss.Err() != nil || cs.Err() != nil {
		t.Fatalf("sessions: %v, %v", cs.Err(), ss.Err())
	}
}

// TestGarbageCostsOnlyThatSession: garbage, an oversized frame or a stream
// id from the wrong side closes that session with ErrProtocol; another
// session in the same process keeps working.
func TestGarbageCostsOnlyThatSession(t *testing.T) {
	good, goodSrv := sessionPair(t, nil, nil)
	go func() {
		for {
			st, err := goodSrv.AcceptStream()
			if err != nil {
				return
			}
			go echoStream(st)
		}
	}()

	hdr := func(typ uint8, flags uint16, id, length uint32) []byte {
		return appendHeader(nil, typ, flags, id, length)
	}
	cases := map[string][]byte{
		"http":           []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"bad version":    append([]byte{1}, hdr(typeData, 0, 1, 0)[1:]...),
		"bad type":       hdr(9, 0, 1, 0),
		"oversize frame": hdr(typeData, flagSYN, 1, 8<<20+1),
		"stream zero":    hdr(typeWindowUpdate, flagSYN, 0, 0),
		"server id":      hdr(typeWindowUpdate, flagSYN, 2, 0),
		"duplicate":      append(hdr(typeWindowUpdate, flagSYN, 1, 0), hdr(typeWindowUpdate, flagSYN, 1, 0)...),
	}
	for name, input := range cases {
		t.Run(name, func(t *testing.T) {
			raw, sc := tcpPair(t)
			defer raw.Close()
			s, err := Server(sc, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			go io.Copy(io.Discard, raw)
			raw.Write(input)
			select {
			case <-s.Done():
			case <-time.After(failAfter):
				t.Fatal("session survived garbage")
			}
			if !errors.Is(s.Err(), ErrProtocol) {
				t.Errorf("session error %v, want ErrProtocol", s.Err())
			}
			if err := roundTrip(good, []byte("still fine")); err != nil {
				t.Fatalf("other session: %v", err)
			}
		})
	}
}

// TestPeerPingAnswered: a ping written one byte at a time (the header
// straddles reads) is answered with a pong carrying its id, without yamux
// seeing it; yamux's own Ping works between two sessions.
func TestPeerPingAnswered(t *testing.T) {
	raw, sc := tcpPair(t)
	defer raw.Close()
	raw.SetNoDelay(true)
	s, err := Server(sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ping := appendHeader(nil, typePing, flagSYN, 0, 0x1234)
	for i := range ping {
		if _, err := raw.Write(ping[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	raw.SetReadDeadline(time.Now().Add(failAfter))
	pong := make([]byte, hdrSize)
	for {
		if _, err := io.ReadFull(raw, pong); err != nil {
			t.Fatal(err)
		}
		if pong[1] == typePing && binary.BigEndian.Uint16(pong[2:]) == flagACK {
			break // skip our own liveness pings, if any
		}
	}
	if want := appendHeader(nil, typePing, flagACK, 0, 0x1234); !bytes.Equal(pong, want) {
		t.Fatalf("pong % x, want % x", pong, want)
	}

	cs, _ := sessionPair(t, nil, nil)
	if _, err := cs.Ping(); err != nil {
		t.Fatal(err)
	}
}

// TestResetPropagates: Reset on one side makes the peer's Read fail with
// ErrStreamReset, and both sides stop counting the stream.
func TestResetPropagates(t *testing.T) {
	cs, ss := sessionPair(t, nil, nil)
	st, err := cs.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("x"))
	sst, err := ss.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	io.ReadFull(sst, b)
	readErr := make(chan error, 1)
	go func() {
		_, err := sst.Read(b)
		readErr <- err
	}()
	st.Reset()
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrStreamReset) {
			t.Fatalf("peer read after reset: %v", err)
		}
	case <-time.After(failAfter):
		t.Fatal("peer read still blocked after reset")
	}
	if _, err := st.Read(b); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after own reset: %v", err)
	}
	sst.Close()
	testutil.Eventually(t, failAfter, "streams released", func() bool { return cs.NumStreams() == 0 && ss.NumStreams() == 0 })
	if err := roundTrip2(cs, ss); err != nil {
		t.Fatal(err)
	}
}

// roundTrip2 checks that a session pair still carries a stream.
func roundTrip2(cs, ss *Session) error {
	go func() {
		st, err := ss.AcceptStream()
		if err == nil {
			echoStream(st)
		}
	}()
	return roundTrip(cs, []byte("ping"))
}

// TestCloseWithUnreadDataResets: closing a stream while the peer's data
// waits unread resets it (as TCP does), so the peer's writes fail instead
// of blocking forever on a window nobody will open.
func TestCloseWithUnreadDataResets(t *testing.T) {
	cs, ss := sessionPair(t, &Config{StreamWindow: MinStreamWindow}, &Config{StreamWindow: MinStreamWindow})
	st, err := cs.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("x"))
	sst, err := ss.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	io.ReadFull(sst, b)
	if _, err := sst.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	st.Close() // whether "unread" has arrived yet or arrives later, the stream is reset
	var werr error
	within(t, "peer write", func() {
		chunk := make([]byte, 64<<10)
		for werr == nil {
			_, werr = sst.Write(chunk)
		}
	})
	if !errors.Is(werr, ErrStreamReset) {
		t.Fatalf("peer write after close: %v, want ErrStreamReset", werr)
	}
	sst.Close()
	testutil.Eventually(t, failAfter, "streams released", func() bool { return cs.NumStreams() == 0 && ss.NumStreams() == 0 })
}

// TestOpenTimeout: a peer that never answers a stream open fails the
// session with ErrOpenTimeout.
func TestOpenTimeout(t *testing.T) {
	raw, cc := tcpPair(t)
	defer raw.Close()
	go io.Copy(io.Discard, raw) // reads everything, answers nothing
	cs, err := Client(cc, &Config{OpenTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.OpenStream(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cs.Done():
	case <-time.After(failAfter):
		t.Fatal("unanswered open not detected")
	}
	if !errors.Is(cs.Err(), ErrOpenTimeout) {
		t.Fatalf("session error %v, want ErrOpenTimeout", cs.Err())
	}
}

// TestNoGoroutineLeak: after Close, nothing of the sessions is left
// running, whatever state their streams were in.
func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		cc, sc := tcpPair(t)
		cs, err := Client(cc, nil)
		if err != nil {
			t.Fatal(err)
		}
		ss, err := Server(sc, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				st, err := ss.AcceptStream()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					echoStream(st)
				}()
			}
		}()
		for i := range 10 {
			if err := roundTrip(cs, randomBytes(t, 100<<10)); err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 { // leave some open, with a reader blocked
				st, err := cs.OpenStream()
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					io.Copy(io.Discard, st)
				}()
			}
		}
		cs.Close()
		ss.Close()
		wg.Wait()
	}()
	testutil.CheckGoroutines(t, base)
}
