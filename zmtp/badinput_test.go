package zmtp

// Bad peers against our sockets over real TCP. Each bad peer is a raw
// connection that says something a ZMTP 3.x peer may not (or nothing at
// all); each test checks that the socket drops that connection, and only
// that one: a well-behaved peer on the same socket is served afterwards.
// These are the inputs go-zeromq/zmq4 crashes or stalls on (see BRIEF.md).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
)

// badHangGuard bounds every wait of these tests. It only turns a hang into
// a failure; no assertion depends on how long anything takes.
const badHangGuard = 15 * time.Second

// badServer is the socket under attack: a REP that echoes every request
// and remembers each one's payload.
type badServer struct {
	sock *Socket
	done chan struct{}

	mu  sync.Mutex
	got [][]byte // last frame of every request received
}

func newBadServer(t *testing.T, opt Config) *badServer {
	t.Helper()
	sock, err := NewSocket(REP, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := sock.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s := &badServer{sock: sock, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			msg, err := sock.Recv()
			if err != nil {
				return // closed
			}
			s.mu.Lock()
			s.got = append(s.got, bytes.Clone(msg[len(msg)-1]))
			s.mu.Unlock()
			if err := sock.Send(msg...); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		sock.Close()
		<-s.done
	})
	return s
}

// received reports whether a request whose payload starts with prefix
// reached the application.
func (s *badServer) received(prefix []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.got {
		if bytes.HasPrefix(g, prefix) {
			return true
		}
	}
	return false
}

var badNonce atomic.Int64

// badGoodPeer checks that a well-behaved REQ gets a new connection to ep
// and its request answered.
func badGoodPeer(t *testing.T, ep string) {
	t.Helper()
	req, err := NewSocket(REQ, Config{Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	if err := req.Connect(ep); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), badHangGuard)
	defer cancel()
	want := fmt.Appendf(nil, "good-%d", badNonce.Add(1))
	if err := req.SendContext(ctx, want); err != nil {
		t.Fatalf("good peer: send: %v", err)
	}
	reply, err := req.RecvContext(ctx)
	if err != nil || len(reply) != 1 || !bytes.Equal(reply[0], want) {
		t.Fatalf("good peer: reply %q, %v; want %q", reply, err, want)
	}
}

// badPeer is a raw TCP client that speaks whatever a test makes it say.
type badPeer struct {
	t       *testing.T
	nc      net.Conn
	in      []byte // everything the socket sent
	pos     int    // how much of in was parsed
	greeted bool   // the socket's greeting was parsed
}

func dialBadPeer(t *testing.T, ep string) *badPeer {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(badHangGuard))
	t.Cleanup(func() { nc.Close() })
	return &badPeer{t: t, nc: nc}
}

// write sends bs. Errors are ignored: the socket may rightly have closed
// the connection already, and what it does is what the tests check.
func (p *badPeer) write(bs ...[]byte) {
	for _, b := range bs {
		if _, err := p.nc.Write(b); err != nil {
			return
		}
	}
}

// fill reads until n unparsed bytes are there.
func (p *badPeer) fill(n int) error {
	var buf [4096]byte
	for len(p.in)-p.pos < n {
		m, err := p.nc.Read(buf[:])
		p.in = append(p.in, buf[:m]...)
		if err != nil {
			return err
		}
	}
	return nil
}

// readFrame reads one frame of the socket's.
func (p *badPeer) readFrame() (flags byte, body []byte) {
	p.t.Helper()
	if err := p.fill(2); err != nil {
		p.t.Fatalf("reading a frame: %v", err)
	}
	if p.in[p.pos]&FlagLong != 0 {
		if err := p.fill(MaxFrameHeader); err != nil {
			p.t.Fatalf("reading a frame: %v", err)
		}
	}
	flags, size, n, err := ParseFrameHeader(p.in[p.pos:], 1<<20)
	if err != nil {
		p.t.Fatalf("socket sent a bad frame: %v", err)
	}
	if err := p.fill(n + int(size)); err != nil {
		p.t.Fatalf("reading a frame: %v", err)
	}
	body = p.in[p.pos+n : p.pos+n+int(size)]
	p.pos += n + int(size)
	return flags, body
}

// handshake does a NULL handshake as a peer of type sockType.
func (p *badPeer) handshake(sockType string, props ...Property) {
	p.t.Helper()
	p.write(AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "NULL"}))
	if err := p.fill(GreetingSize); err != nil {
		p.t.Fatalf("reading the greeting: %v", err)
	}
	if _, err := ParseGreeting(p.in[p.pos:]); err != nil {
		p.t.Fatalf("socket's greeting: %v", err)
	}
	p.pos += GreetingSize
	p.greeted = true
	meta := append(Metadata{{PropSocketType, []byte(sockType)}}, props...)
	p.write(AppendCommand(nil, CmdReady, AppendMetadata(nil, meta)))
	flags, body := p.readFrame()
	cmd, err := ParseCommand(body)
	if flags&FlagCommand == 0 || err != nil || cmd.Name != CmdReady {
		p.t.Fatalf("socket's READY: flags %#x %q %v", flags, body, err)
	}
}

// expectClosed reads until the socket closes the connection, failing the
// test if it does not, and returns the commands it sent meanwhile.
func (p *badPeer) expectClosed() []Command {
	p.t.Helper()
	for {
		err := p.fill(len(p.in) - p.pos + 1)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			p.t.Fatalf("the socket did not close the connection (%d bytes received)", len(p.in))
		}
		break // EOF or reset: closed
	}
	if !p.greeted {
		if len(p.in) < GreetingSize {
			return nil
		}
		p.pos, p.greeted = GreetingSize, true
	}
	var cmds []Command
	for rest := p.in[p.pos:]; ; {
		flags, size, n, err := ParseFrameHeader(rest, 1<<20)
		if err != nil || int64(len(rest)-n) < size {
			return cmds
		}
		if flags&FlagCommand != 0 {
			if cmd, err := ParseCommand(rest[n : n+int(size)]); err == nil {
				cmds = append(cmds, cmd)
			}
		}
		rest = rest[n+int(size):]
	}
}

// badHeapAllocated returns the bytes allocated so far by the whole process.
func badHeapAllocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

func badLongHeader(flags byte, size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{flags | FlagLong}, size)
}

// TestBadPeers runs every bad peer against one REP socket, each followed
// by a good peer.
func TestBadPeers(t *testing.T) {
	const maxMsg = 64 << 10
	srv := newBadServer(t, Config{MaxMsgSize: maxMsg, HandshakeTimeout: time.Second})
	ep := srv.sock.Endpoint()
	nullGreeting := AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "NULL"})
	ready := func(m Metadata) []byte { return AppendCommand(nil, CmdReady, AppendMetadata(nil, m)) }
	reqType := Metadata{{PropSocketType, []byte("REQ")}}

	tests := []struct {
		name string
		// run makes p misbehave; it may return a payload prefix the
		// application must never receive.
		run func(p *badPeer) (neverDelivered []byte)
		// wantError: the socket sends an ERROR command before closing.
		wantError bool
		// maxAlloc, if set, bounds what the process allocates meanwhile.
		maxAlloc uint64
	}{
		{name: "frame announcing 2^50 bytes", maxAlloc: 16 << 20, run: func(p *badPeer) []byte {
			p.handshake("REQ")
			p.write(badLongHeader(FlagMore, 1<<50), []byte("some of it"))
			return nil
		}},
		{name: "frame announcing 2^63 bytes", maxAlloc: 16 << 20, run: func(p *badPeer) []byte {
			p.handshake("REQ")
			p.write(badLongHeader(0, 1<<63))
			return nil
		}},
		{name: "frame announcing 2^63-1 bytes", maxAlloc: 16 << 20, run: func(p *badPeer) []byte {
			p.handshake("REQ")
			p.write(badLongHeader(0, math.MaxInt64))
			return nil
		}},
		{name: "frame announcing 2^64-1 bytes", maxAlloc: 16 << 20, run: func(p *badPeer) []byte {
			p.handshake("REQ")
			p.write(badLongHeader(0, math.MaxUint64))
			return nil
		}},
		// Allocatable, but over the limit: refused before it is allocated.
		{name: "frame announcing 32 MiB", maxAlloc: 16 << 20, run: func(p *badPeer) []byte {
			p.handshake("REQ")
			p.write(badLongHeader(0, 32<<20), bytes.Repeat([]byte("x"), 1000))
			return nil
		}},
		{name: "command announcing 2^50 bytes in the handshake", maxAlloc: 16 << 20, run: func(p *badPeer) []byte {
			p.write(nullGreeting, badLongHeader(FlagCommand, 1<<50))
			return nil
		}},
		{name: "multipart message over MaxMsgSize", run: func(p *badPeer) []byte {
			p.handshake("REQ")
			part := bytes.Repeat([]byte("m"), 16<<10)
			p.write(AppendFrame(nil, FlagMore, nil))
			for range 5 { // 80 KiB in all, in frames each under the limit
				p.write(AppendFrame(nil, FlagMore, part))
			}
			p.write(AppendFrame(nil, 0, []byte("oversized-end")))
			return part[:8]
		}},
		{name: "truncated READY metadata", run: func(p *badPeer) []byte {
			// The value length says 64 bytes; 3 follow.
			p.write(nullGreeting, []byte("\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x40REQ"))
			return nil
		}},
		{name: "READY metadata with a name cut short", run: func(p *badPeer) []byte {
			p.write(nullGreeting, AppendCommand(nil, CmdReady, []byte("\x0bSocket")))
			return nil
		}},
		{name: "Socket-Type SERVER", wantError: true, run: func(p *badPeer) []byte {
			p.write(nullGreeting, ready(Metadata{{PropSocketType, []byte("SERVER")}}))
			return nil
		}},
		{name: "Socket-Type PUB (known, incompatible)", wantError: true, run: func(p *badPeer) []byte {
			p.write(nullGreeting, ready(Metadata{{PropSocketType, []byte("PUB")}}))
			return nil
		}},
		{name: "no Socket-Type", wantError: true, run: func(p *badPeer) []byte {
			p.write(nullGreeting, ready(Metadata{{"X-Other", []byte("REQ")}}))
			return nil
		}},
		{name: "message frame during the handshake", run: func(p *badPeer) []byte {
			p.write(nullGreeting, AppendMessage(nil, [][]byte{nil, []byte("early")}), ready(reqType))
			return []byte("early")
		}},
		{name: "PING before READY", run: func(p *badPeer) []byte {
			p.write(nullGreeting, AppendCommand(nil, CmdPing, []byte{0, 10}), ready(reqType))
			return nil
		}},
		{name: "ERROR instead of READY", run: func(p *badPeer) []byte {
			p.write(nullGreeting, AppendCommand(nil, CmdError, AppendErrorBody(nil, "go away")))
			return nil
		}},
		{name: "malformed command name", run: func(p *badPeer) []byte {
			p.write(nullGreeting, AppendFrame(nil, FlagCommand, []byte{9, 'R'}))
			return nil
		}},
		{name: "reserved flag bits", run: func(p *badPeer) []byte {
			p.handshake("REQ")
			p.write([]byte{0x40, 1, 'x'})
			return nil
		}},
		{name: "command inside a multipart message", run: func(p *badPeer) []byte {
			p.handshake("REQ")
			p.write(AppendFrame(nil, FlagMore, nil), AppendCommand(nil, CmdPing, []byte{0, 1}), AppendFrame(nil, 0, []byte("split")))
			return []byte("split")
		}},
		{name: "malformed PING", run: func(p *badPeer) []byte {
			p.handshake("REQ")
			p.write(AppendCommand(nil, CmdPing, []byte{1}))
			return nil
		}},
		{name: "HTTP request", run: func(p *badPeer) []byte {
			p.write([]byte("GET / HTTP/1.1\r\nHost: hydra\r\n\r\n"))
			return nil
		}},
		{name: "random bytes", run: func(p *badPeer) []byte {
			rng := rand.New(rand.NewPCG(7, 7))
			b := make([]byte, 4096)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			p.write(b)
			return nil
		}},
		{name: "signature then garbage", run: func(p *badPeer) []byte {
			p.write(nullGreeting[:signatureSize], bytes.Repeat([]byte{0xEE}, 200))
			return nil
		}},
		{name: "CURVE mechanism", run: func(p *badPeer) []byte {
			p.write(AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "CURVE", AsServer: false}))
			return nil
		}},
		{name: "PLAIN mechanism", run: func(p *badPeer) []byte {
			p.write(AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "PLAIN"}))
			return nil
		}},
		{name: "unknown mechanism name", run: func(p *badPeer) []byte {
			p.write(AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "GSSAPI"}))
			return nil
		}},
		{name: "mechanism field of garbage", run: func(p *badPeer) []byte {
			g := bytes.Clone(nullGreeting)
			copy(g[12:32], "\x01\x02\x03 not a name \xff")
			p.write(g)
			return nil
		}},
		{name: "version 2.0 greeting", run: func(p *badPeer) []byte {
			p.write(codecGreeting(2, 0, "NULL", false, 0))
			return nil
		}},
		{name: "version 1.0 signature", run: func(p *badPeer) []byte {
			// ZMTP 1.0: a length byte and a flags byte, no signature.
			p.write([]byte{0x06, 0x00, 'h', 'e', 'l', 'l', 'o'})
			return nil
		}},
		{name: "signature then silence", run: func(p *badPeer) []byte {
			p.write(nullGreeting[:signatureSize])
			return nil // dropped at HandshakeTimeout
		}},
		{name: "greeting then silence", run: func(p *badPeer) []byte {
			p.write(nullGreeting)
			return nil // dropped at HandshakeTimeout
		}},
		{name: "silence", run: func(p *badPeer) []byte {
			return nil // dropped at HandshakeTimeout
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := dialBadPeer(t, ep)
			before := badHeapAllocated()
			never := tt.run(p)
			cmds := p.expectClosed()
			if tt.maxAlloc > 0 {
				if n := badHeapAllocated() - before; n > tt.maxAlloc {
					t.Errorf("the process allocated %d bytes while refusing the peer", n)
				}
			}
			var reason string
			for _, c := range cmds {
				if c.Name == CmdError {
					r, err := ParseError(c.Body)
					if err != nil {
						t.Errorf("malformed ERROR from the socket: %v", err)
					}
					reason = r
				}
			}
			if tt.wantError && reason == "" {
				t.Errorf("closed without an ERROR command (commands: %v)", cmds)
			}
			if !tt.wantError && reason != "" {
				t.Logf("closed with ERROR %q", reason)
			}
			badGoodPeer(t, ep)
			if never != nil && srv.received(never) {
				t.Errorf("the application received a message from the bad peer")
			}
		})
	}
}

// TestBadPeerHugeMaxMsgSize is the frame-size attack against a socket
// whose limit is "unlimited": the announced size can no longer be refused,
// so it must cost only what the peer actually sends.
func TestBadPeerHugeMaxMsgSize(t *testing.T) {
	srv := newBadServer(t, Config{MaxMsgSize: math.MaxInt64})
	ep := srv.sock.Endpoint()
	for _, size := range []uint64{1 << 40, 1 << 50, math.MaxInt64} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			p := dialBadPeer(t, ep)
			p.handshake("REQ")
			before := badHeapAllocated()
			p.write(AppendFrame(nil, FlagMore, nil), badLongHeader(0, size), bytes.Repeat([]byte("x"), 100_000))
			p.nc.(*net.TCPConn).CloseWrite() // then the peer goes away mid-frame
			p.expectClosed()
			if n := badHeapAllocated() - before; n > 64<<20 {
				t.Errorf("the process allocated %d bytes for a frame cut after 100000", n)
			}
			badGoodPeer(t, ep)
		})
	}
	// A large message under the raised limit still gets through.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	req, err := NewSocket(REQ, Config{MaxMsgSize: math.MaxInt64, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	req.Connect(ep)
	ctx, cancel := context.WithTimeout(context.Background(), badHangGuard)
	defer cancel()
	if err := req.SendContext(ctx, big); err != nil {
		t.Fatal(err)
	}
	reply, err := req.RecvContext(ctx)
	if err != nil || len(reply) != 1 || !bytes.Equal(reply[0], big) {
		t.Fatalf("16 MiB echo: %d frames, %v", len(reply), err)
	}
}

// TestBadSilentClientDoesNotBlockOthers keeps a client that never sends its
// greeting connected, with a handshake timeout far longer than the test,
// and checks that other peers are accepted and served meanwhile.
func TestBadSilentClientDoesNotBlockOthers(t *testing.T) {
	srv := newBadServer(t, Config{HandshakeTimeout: time.Hour})
	ep := srv.sock.Endpoint()
	var silent []*badPeer
	for range 3 {
		silent = append(silent, dialBadPeer(t, ep))
	}
	half := dialBadPeer(t, ep)
	half.write(AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "NULL"})[:5])
	for range 3 {
		badGoodPeer(t, ep)
	}
	// The silent ones are still connected and waiting: nothing was sent
	// to them but our signature, and nothing closed them.
	for _, p := range silent {
		if err := p.fill(signatureSize); err != nil {
			t.Fatalf("silent client: %v", err)
		}
		p.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		var b [1]byte
		n, err := p.nc.Read(b[:])
		var ne net.Error
		if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("silent client: read %d bytes, %v; want nothing yet", n, err)
		}
	}
}

// TestBadSilentClientDropped checks that a client that never completes
// its handshake is dropped once HandshakeTimeout has passed.
func TestBadSilentClientDropped(t *testing.T) {
	srv := newBadServer(t, Config{HandshakeTimeout: 200 * time.Millisecond})
	ep := srv.sock.Endpoint()
	silent := dialBadPeer(t, ep)
	stalled := dialBadPeer(t, ep)
	stalled.write(AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "NULL"}))
	silent.expectClosed()
	stalled.expectClosed()
	badGoodPeer(t, ep)
}

// TestBadRoutingIDZeroByte checks that a ROUTER does not take a routing id
// that starts with a zero byte from a peer (that space is the ROUTER's own,
// for the ids it generates), so a peer cannot claim the id the ROUTER will
// give another peer; both stay reachable each by its own id.
func TestBadRoutingIDZeroByte(t *testing.T) {
	router, err := NewSocket(ROUTER, Config{RouterMandatory: true, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	if err := router.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ep := router.Endpoint()
	ctx, cancel := context.WithTimeout(context.Background(), badHangGuard)
	defer cancel()

	// Generated ids are a zero byte then a 4-byte counter: claim the
	// first few, and one that is not of that form.
	claims := [][]byte{{0, 0, 0, 0, 1}, {0, 0, 0, 0, 2}, []byte("\x00abc")}
	bad := make(map[string]*badPeer) // payload → peer
	for i, id := range claims {
		p := dialBadPeer(t, ep)
		prop := PropRoutingID
		if i%2 == 1 {
			prop = PropIdentity
		}
		p.handshake("DEALER", Property{prop, id})
		payload := fmt.Sprintf("bad-%d", i)
		p.write(AppendFrame(nil, 0, []byte(payload)))
		bad[payload] = p
	}
	good, err := NewSocket(DEALER, Config{Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	good.Connect(ep)
	if err := good.SendContext(ctx, []byte("good")); err != nil {
		t.Fatal(err)
	}

	ids := map[string]string{} // routing id → payload
	for range len(claims) + 1 {
		msg, err := router.RecvContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(msg) != 2 {
			t.Fatalf("ROUTER got %q", msg)
		}
		id, payload := string(msg[0]), string(msg[1])
		for _, c := range claims[2:] {
			if id == string(c) {
				t.Errorf("peer %s got the id it claimed, %q", payload, c)
			}
		}
		if other, dup := ids[id]; dup {
			t.Fatalf("%s and %s share the routing id %q", other, payload, id)
		}
		ids[id] = payload
	}
	// Every id routes to the peer that sent from it.
	for id, payload := range ids {
		if err := router.SendContext(ctx, []byte(id), []byte("to-"+payload)); err != nil {
			t.Fatalf("send to %q (%s): %v", id, payload, err)
		}
	}
	reply, err := good.RecvContext(ctx)
	if err != nil || len(reply) != 1 || string(reply[0]) != "to-good" {
		t.Fatalf("good peer got %q, %v", reply, err)
	}
	for payload, p := range bad {
		flags, body := p.readFrame()
		if flags != 0 || string(body) != "to-"+payload {
			t.Errorf("%s got %q (flags %#x)", payload, body, flags)
		}
		p.nc.Close() // now, so that the ROUTER's Close need not wait for it
	}
}

// TestBadPeersLeaveNoGoroutines opens and closes sockets with good peers
// connected, bad peers stuck mid-handshake and a connect endpoint that
// refuses, and checks that the goroutine count returns to where it was.
func TestBadPeersLeaveNoGoroutines(t *testing.T) {
	baseline := runtime.NumGoroutine()
	for round := range 3 {
		func() {
			srv, err := NewSocket(ROUTER, Config{HandshakeTimeout: time.Hour, Linger: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close() // on failure; closing twice is fine
			if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			ep := srv.Endpoint()
			// A dead endpoint the server keeps redialling.
			dead, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			deadEP := "tcp://" + dead.Addr().String()
			dead.Close()
			srv.Connect(deadEP)

			ctx, cancel := context.WithTimeout(context.Background(), badHangGuard)
			defer cancel()
			var clients []*Socket
			for i := range 3 {
				c, err := NewSocket(REQ, Config{Linger: -1})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.Connect(ep)
				if err := c.SendContext(ctx, []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
				msg, err := srv.RecvContext(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := srv.SendContext(ctx, msg...); err != nil {
					t.Fatal(err)
				}
				if _, err := c.RecvContext(ctx); err != nil {
					t.Fatal(err)
				}
				clients = append(clients, c)
			}
			// Bad peers mid-handshake: silent, half a signature, a
			// greeting and no READY, a READY and a frame cut short.
			greeting := AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "NULL"})
			var raws []net.Conn
			for _, b := range [][]byte{nil, greeting[:4], greeting, append(greeting, 0x04, 0x19, 0x05)} {
				nc, err := net.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				nc.Write(b)
				raws = append(raws, nc)
			}
			// One more bad peer that completed its handshake and is
			// halfway through a frame.
			p := dialBadPeer(t, ep)
			p.handshake("DEALER")
			p.write([]byte{0, 100, 'x'})

			// Close the server first in odd rounds, the clients first in
			// even ones.
			if round%2 == 1 {
				srv.Close()
			}
			for _, c := range clients {
				c.Close()
			}
			srv.Close()
			// The server closed every connection it had, mid-handshake
			// or not.
			for _, nc := range raws {
				nc.SetReadDeadline(time.Now().Add(badHangGuard))
				if _, err := io.Copy(io.Discard, nc); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatal("Close left a connection mid-handshake open")
					}
				}
				nc.Close()
			}
			p.expectClosed()
		}()
	}
	testutil.CheckGoroutines(t, baseline)
}
