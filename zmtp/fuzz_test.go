package zmtp

// Fuzz targets over every decoder of the package, and one over a real
// server socket:
//
//   - FuzzGreeting, FuzzFrameHeader and FuzzCommand feed the codec directly
//     and check that whatever decodes re-encodes to the same bytes (where the
//     encoding is canonical).
//   - FuzzFrameReader runs the connection's frameReader over the input split
//     into two reads, so frames straddle reads, and checks it against the
//     codec's own reading of the bytes.
//   - FuzzHandshake plays the input as the byte stream of a client of a real
//     listening socket (ROUTER, PLAIN ROUTER, XPUB or PULL, picked from the
//     input) and then checks that a well-behaved client is still served, as
//     libzmq's own fuzzers do.
//
// Seeds live in testdata/fuzz/<Target>/. HYDRA_CAPTURE=1 go test -run
// TestFuzzWriteSeeds rewrites the hand-made ones and the captures of what
// go-zeromq/zmq4 clients send (files zmq4-*); FuzzHandshake/libzmq-* are
// captures of libzmq clients made elsewhere. Every seed of FuzzHandshake is
// one []byte: the raw bytes a client sends, greeting first.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

func FuzzGreeting(f *testing.F) {
	f.Add(AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "NULL"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ParseGreeting(b)
		if len(b) < GreetingSize {
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("%d bytes: %v, want io.ErrUnexpectedEOF", len(b), err)
			}
			return
		}
		if err != nil {
			if !fuzzIsOneOf(err, ErrBadSignature, ErrBadVersion, ErrMechanism, ErrHandshake) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if g.Major < 3 || len(g.Mechanism) > 20 {
			t.Fatalf("accepted %+v", g)
		}
		// Version, mechanism and as-server re-encode identically; the
		// padding and filler are not part of what was decoded.
		re := AppendGreeting(nil, g)
		if !bytes.Equal(re[10:33], b[10:33]) {
			t.Fatalf("re-encoded % x\n        from % x", re[10:33], b[10:33])
		}
		if g2, err := ParseGreeting(re); err != nil || g2 != g {
			t.Fatalf("re-encoded greeting parses to %+v, %v; want %+v", g2, err, g)
		}
	})
}

func FuzzFrameHeader(f *testing.F) {
	f.Add([]byte{0, 5}, int64(1<<20))
	f.Fuzz(func(t *testing.T, b []byte, max int64) {
		flags, size, n, err := ParseFrameHeader(b, max)
		if err != nil {
			if !fuzzIsOneOf(err, io.ErrUnexpectedEOF, ErrBadFlags, ErrFrameTooLarge) {
				t.Fatalf("untyped error: %v", err)
			}
			if err == io.ErrUnexpectedEOF && len(b) >= MaxFrameHeader {
				t.Fatalf("io.ErrUnexpectedEOF with %d bytes", len(b))
			}
			return
		}
		switch {
		case n != 2 && n != MaxFrameHeader || n > len(b):
			t.Fatalf("header length %d of %d bytes", n, len(b))
		case (n == MaxFrameHeader) != (flags&FlagLong != 0):
			t.Fatalf("header length %d with flags %#x", n, flags)
		case flags&flagReserved != 0:
			t.Fatalf("accepted reserved flags %#x", flags)
		case size < 0 || size > max:
			t.Fatalf("size %d outside [0, %d]", size, max)
		}
		if size > math.MaxInt32 {
			return // AppendFrameHeader takes an int: not encodable everywhere
		}
		re := AppendFrameHeader(nil, flags, int(size))
		canonical := (n == MaxFrameHeader) == (size > 255)
		if canonical && !bytes.Equal(re, b[:n]) {
			t.Fatalf("re-encoded % x from % x", re, b[:n])
		}
		f2, s2, n2, err := ParseFrameHeader(re, max)
		if err != nil || f2&^FlagLong != flags&^FlagLong || s2 != size || n2 != len(re) {
			t.Fatalf("re-encoded % x parses to %#x %d %d %v", re, f2, s2, n2, err)
		}
	})
}

func FuzzCommand(f *testing.F) {
	f.Add(AppendCommandBody(nil, CmdReady, AppendMetadata(nil, Metadata{{PropSocketType, []byte("REQ")}})))
	f.Fuzz(func(t *testing.T, b []byte) {
		bodies := [][]byte{b}
		cmd, err := ParseCommand(b)
		if err == nil {
			if len(cmd.Name) == 0 || len(cmd.Name) > 255 {
				t.Fatalf("name of %d bytes", len(cmd.Name))
			}
			if re := AppendCommandBody(nil, cmd.Name, cmd.Body); !bytes.Equal(re, b) {
				t.Fatalf("command re-encoded % x from % x", head(re), head(b))
			}
			bodies = append(bodies, cmd.Body)
		} else if !errors.Is(err, ErrBadCommand) {
			t.Fatalf("ParseCommand: untyped error %v", err)
		}
		// Every body parser on the raw bytes and on the command's body.
		for _, body := range bodies {
			fuzzMetadata(t, body)
			if p, err := ParsePing(body); err == nil {
				re := append(binary.BigEndian.AppendUint16(nil, p.TTL), p.Context...)
				if !bytes.Equal(re, body) || len(p.Context) > 16 {
					t.Fatalf("PING re-encoded % x from % x", re, body)
				}
			} else if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("ParsePing: untyped error %v", err)
			}
			if r, err := ParseError(body); err == nil {
				if re := AppendErrorBody(nil, r); !bytes.Equal(re, body) {
					t.Fatalf("ERROR re-encoded % x from % x", head(re), head(body))
				}
			} else if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("ParseError: untyped error %v", err)
			}
		}
	})
}

// fuzzMetadata checks that metadata which parses re-encodes identically and
// that Get finds every property by its name in any case.
func fuzzMetadata(t *testing.T, b []byte) {
	m, err := ParseMetadata(b)
	if err != nil {
		if !errors.Is(err, ErrBadMetadata) || m != nil {
			t.Fatalf("ParseMetadata: %v, %d properties", err, len(m))
		}
		return
	}
	if re := AppendMetadata(nil, m); !bytes.Equal(re, b) {
		t.Fatalf("metadata re-encoded % x from % x", head(re), head(b))
	}
	for _, p := range m {
		if len(p.Name) == 0 || len(p.Name) > 255 {
			t.Fatalf("property name of %d bytes", len(p.Name))
		}
		// Get returns the first property of the same name, which may
		// not be p, but the same one whatever the case of the query.
		v, ok := m.Get(strings.ToLower(p.Name))
		if !ok {
			t.Fatalf("Get(%q) found nothing", strings.ToLower(p.Name))
		}
		if first, _ := m.Get(strings.ToUpper(p.Name)); !bytes.Equal(v, first) {
			t.Fatalf("Get(%q) depends on case", p.Name)
		}
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add(AppendMessage(nil, [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 300)}), uint16(3), int64(1<<20))
	f.Fuzz(func(t *testing.T, data []byte, split uint16, max int64) {
		// Limits above a few read buffers only make the fuzzer allocate
		// large bodies for frames the input cannot fill;
		// TestCodecFrameReaderHugeLimit covers huge limits.
		max = min(max, 4*readBufSize)
		// What the codec says the stream holds, frame by frame.
		type frame struct {
			flags byte
			body  []byte
		}
		var want []frame
		var wantErr error = io.EOF
		for rest := data; len(rest) > 0; {
			if rest[0]&FlagLong != 0 && len(rest) < MaxFrameHeader || len(rest) < 2 {
				wantErr = io.ErrUnexpectedEOF // the reader waits for a whole header
				break
			}
			flags, size, n, err := ParseFrameHeader(rest, max)
			if err != nil {
				for _, e := range []error{ErrBadFlags, ErrFrameTooLarge} {
					if errors.Is(err, e) {
						wantErr = e
					}
				}
				if wantErr == io.EOF {
					t.Fatalf("ParseFrameHeader: untyped error %v", err)
				}
				break
			}
			if size > int64(len(rest)-n) {
				wantErr = io.ErrUnexpectedEOF
				break
			}
			want = append(want, frame{flags, rest[n : n+int(size)]})
			rest = rest[n+int(size):]
		}

		// What the frameReader makes of it, read in two parts.
		cut := 0
		if len(data) > 0 {
			cut = int(split) % (len(data) + 1)
		}
		fr := newFrameReader(&fuzzSplitReader{parts: [][]byte{data[:cut], data[cut:]}})
		var got []frame
		var handedOut [][]byte // the bodies as returned, to check later
		var gotErr error
		for {
			flags, body, err := fr.next(max)
			if err != nil {
				gotErr = err
				break
			}
			if len(got) >= len(want) {
				t.Fatalf("frame %d: the codec sees only %d", len(got), len(want))
			}
			if w := want[len(got)]; flags != w.flags || !bytes.Equal(body, w.body) {
				t.Fatalf("frame %d: flags %#x, %d bytes; want %#x, %d bytes", len(got), flags, len(body), w.flags, len(w.body))
			}
			if cap(body) != len(body) {
				t.Fatalf("frame %d: body has spare capacity", len(got))
			}
			got = append(got, frame{flags, bytes.Clone(body)})
			handedOut = append(handedOut, body)
		}
		// The reader never overwrites a body it handed out.
		for i, body := range handedOut {
			if !bytes.Equal(body, got[i].body) {
				t.Fatalf("frame %d was overwritten after it was handed out", i)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("read %d frames, the codec sees %d", len(got), len(want))
		}
		if wantErr == io.EOF || wantErr == io.ErrUnexpectedEOF {
			if gotErr != wantErr {
				t.Fatalf("ended with %v, want %v", gotErr, wantErr)
			}
		} else if !errors.Is(gotErr, wantErr) {
			t.Fatalf("ended with %v, want %v", gotErr, wantErr)
		}
	})
}

// fuzzSplitReader returns its parts one per Read (empty ones included, as a
// (0, nil) read), then io.EOF.
type fuzzSplitReader struct{ parts [][]byte }

func (r *fuzzSplitReader) Read(p []byte) (int, error) {
	if len(r.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.parts[0])
	if r.parts[0] = r.parts[0][n:]; len(r.parts[0]) == 0 {
		r.parts = r.parts[1:]
	}
	return n, nil
}

func fuzzIsOneOf(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// FuzzHandshake writes the input to a real listening socket as the byte
// stream of one client, then, with that connection still open, checks that
// a well-behaved client of the right type gets a new connection served.
func FuzzHandshake(f *testing.F) {
	f.Add(fuzzClientStream(1, "REQ", nil, AppendMessage(nil, [][]byte{nil, []byte("hello")})))
	srv := newFuzzServers(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := srv.pick(data)
		nc, err := net.Dial("tcp", s.sock.Endpoint()[len("tcp://"):])
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { nc.Write(data) }) // may block: the server reads at its pace
		wg.Go(func() { io.Copy(io.Discard, nc) })
		s.check(t, s.sock)
		nc.Close()
		wg.Wait()
	})
}

// fuzzServer is one socket FuzzHandshake sends inputs to, and the check
// that it still serves a well-behaved client.
type fuzzServer struct {
	sock  *Socket
	check func(t *testing.T, s *Socket)
}

type fuzzServers struct {
	router, plain, xpub, pull fuzzServer
}

// Credentials of the PLAIN server; PLAIN seeds use them.
const fuzzUser, fuzzPassword = "admin", "secret"

func newFuzzServers(tb testing.TB) *fuzzServers {
	opt := Config{
		HandshakeTimeout: 500 * time.Millisecond, // inputs that stall are dropped soon
		MaxMsgSize:       1 << 20,
		Linger:           -1,
	}
	open := func(typ SocketType, sec func() Mechanism) *Socket {
		o := opt
		o.Security = sec
		s, err := NewSocket(typ, o)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		if err := s.Bind("tcp://127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
		return s
	}
	return &fuzzServers{
		router: fuzzServer{open(ROUTER, nil), fuzzCheckRouter(nil)},
		plain: fuzzServer{open(ROUTER, PlainServer(PlainCredentials(fuzzUser, fuzzPassword))),
			fuzzCheckRouter(PlainClient(fuzzUser, fuzzPassword))},
		xpub: fuzzServer{open(XPUB, nil), fuzzCheckXPub},
		pull: fuzzServer{open(PULL, nil), fuzzCheckPull},
	}
}

// pick chooses the server an input is meant for, from the mechanism in its
// greeting and the socket type in its metadata, so that real handshakes of
// every kind get past the handshake.
func (s *fuzzServers) pick(data []byte) *fuzzServer {
	switch {
	case len(data) >= 17 && string(data[12:17]) == "PLAIN":
		return &s.plain
	case bytes.Contains(data, []byte("\x00\x00\x00\x03SUB")) || bytes.Contains(data, []byte("\x00\x00\x00\x04XSUB")):
		return &s.xpub
	case bytes.Contains(data, []byte("\x00\x00\x00\x04PUSH")):
		return &s.pull
	}
	return &s.router
}

var fuzzNonce atomic.Uint64

// fuzzNextNonce returns a payload no input can have sent before the check.
func fuzzNextNonce() []byte {
	return fmt.Appendf(nil, "nonce-%d-%d", os.Getpid(), fuzzNonce.Add(1))
}

// fuzzClient opens a client socket of type typ connected to s.
func fuzzClient(t *testing.T, typ SocketType, s *Socket, sec func() Mechanism) *Socket {
	t.Helper()
	c, err := NewSocket(typ, Config{Security: sec, Linger: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(s.Endpoint()); err != nil {
		t.Fatal(err)
	}
	return c
}

// fuzzCheckTimeout only stops a broken server from hanging the fuzzer; no
// check depends on how long anything takes.
const fuzzCheckTimeout = 20 * time.Second

// fuzzCheckRouter returns a check that a REQ client gets its reply from the
// ROUTER.
func fuzzCheckRouter(sec func() Mechanism) func(t *testing.T, s *Socket) {
	return func(t *testing.T, s *Socket) {
		ctx, cancel := context.WithTimeout(context.Background(), fuzzCheckTimeout)
		defer cancel()
		req := fuzzClient(t, REQ, s, sec)
		defer req.Close()
		nonce := fuzzNextNonce()
		if err := req.SendContext(ctx, nonce); err != nil {
			t.Fatalf("good client: send: %v", err)
		}
		for {
			msg, err := s.RecvContext(ctx)
			if err != nil {
				t.Fatalf("server stopped serving: %v", err)
			}
			// Skip what the fuzzed client got through.
			if len(msg) == 3 && len(msg[1]) == 0 && bytes.Equal(msg[2], nonce) {
				if err := s.SendContext(ctx, msg[0], nil, nonce); err != nil {
					t.Fatalf("server: reply: %v", err)
				}
				break
			}
		}
		reply, err := req.RecvContext(ctx)
		if err != nil || len(reply) != 1 || !bytes.Equal(reply[0], nonce) {
			t.Fatalf("good client: reply %q, %v", reply, err)
		}
	}
}

// fuzzCheckXPub checks that a SUB client's subscription arrives and that it
// then gets what the XPUB publishes.
func fuzzCheckXPub(t *testing.T, s *Socket) {
	ctx, cancel := context.WithTimeout(context.Background(), fuzzCheckTimeout)
	defer cancel()
	sub := fuzzClient(t, SUB, s, nil)
	defer sub.Close()
	nonce := fuzzNextNonce()
	if err := sub.Subscribe(nonce); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := s.RecvContext(ctx)
		if err != nil {
			t.Fatalf("server stopped serving: %v", err)
		}
		if len(msg) == 1 && len(msg[0]) > 0 && msg[0][0] == 1 && bytes.Equal(msg[0][1:], nonce) {
			break
		}
	}
	if err := s.SendContext(ctx, nonce, []byte("payload")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.RecvContext(ctx)
	if err != nil || len(msg) != 2 || !bytes.Equal(msg[0], nonce) {
		t.Fatalf("good client: got %q, %v", msg, err)
	}
}

// fuzzCheckPull checks that a PUSH client's message arrives.
func fuzzCheckPull(t *testing.T, s *Socket) {
	ctx, cancel := context.WithTimeout(context.Background(), fuzzCheckTimeout)
	defer cancel()
	push := fuzzClient(t, PUSH, s, nil)
	defer push.Close()
	nonce := fuzzNextNonce()
	if err := push.SendContext(ctx, nonce); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := s.RecvContext(ctx)
		if err != nil {
			t.Fatalf("server stopped serving: %v", err)
		}
		if len(msg) == 1 && bytes.Equal(msg[0], nonce) {
			return
		}
	}
}

// fuzzClientStream returns what a NULL client of type sockType sends: a
// greeting of version 3.minor, READY with props, then the frames in after.
func fuzzClientStream(minor byte, sockType string, props Metadata, after ...[]byte) []byte {
	b := AppendGreeting(nil, Greeting{Major: 3, Minor: minor, Mechanism: "NULL"})
	meta := append(Metadata{{PropSocketType, []byte(sockType)}}, props...)
	b = AppendCommand(b, CmdReady, AppendMetadata(nil, meta))
	for _, a := range after {
		b = append(b, a...)
	}
	return b
}

// fuzzPlainStream returns what a PLAIN client sends: greeting, HELLO,
// INITIATE, then the frames in after.
func fuzzPlainStream(user, pass, sockType string, after ...[]byte) []byte {
	b := AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "PLAIN"})
	hello := append(append([]byte{byte(len(user))}, user...), byte(len(pass)))
	b = AppendCommand(b, "HELLO", append(hello, pass...))
	b = AppendCommand(b, "INITIATE", AppendMetadata(nil, Metadata{{PropSocketType, []byte(sockType)}}))
	for _, a := range after {
		b = append(b, a...)
	}
	return b
}

// TestFuzzWriteSeeds writes the seed corpora under testdata/fuzz: the
// hand-made seeds, and captures of what zmq4 clients send. It runs only
// with HYDRA_CAPTURE=1; the files it writes are committed.
func TestFuzzWriteSeeds(t *testing.T) {
	if os.Getenv("HYDRA_CAPTURE") != "1" {
		t.Skip("set HYDRA_CAPTURE=1 to rewrite testdata/fuzz")
	}
	long := func(flags byte, size uint64) []byte {
		return binary.BigEndian.AppendUint64([]byte{flags | FlagLong}, size)
	}
	req := func(body string) []byte { return AppendMessage(nil, [][]byte{nil, []byte(body)}) }
	readyBody := func(m Metadata) []byte { return AppendCommandBody(nil, CmdReady, AppendMetadata(nil, m)) }
	st := func(typ string) Property { return Property{PropSocketType, []byte(typ)} }

	greetings := map[string][]byte{}
	for _, mech := range []string{"NULL", "PLAIN", "CURVE"} {
		for _, minor := range []byte{0, 1} {
			greetings[fmt.Sprintf("%s-3.%d", mech, minor)] = AppendGreeting(nil, Greeting{Major: 3, Minor: minor, Mechanism: mech, AsServer: mech != "NULL"})
		}
	}
	withFiller := AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "NULL"})
	copy(withFiller[33:], "libzmq leaves bytes here")
	greetings["filler"] = withFiller
	greetings["version-2.0"] = codecGreeting(2, 0, "NULL", false, 0)
	fuzzWriteSeeds(t, "FuzzGreeting", greetings)

	headers := map[string][]any{
		"short":           {[]byte{0, 5}, int64(1 << 20)},
		"short-command":   {[]byte{FlagCommand, 0x19}, int64(1 << 20)},
		"long":            {long(FlagMore, 70000), int64(1 << 20)},
		"long-small-size": {long(0, 5), int64(1 << 20)},
		"long-2^50":       {long(0, 1<<50), int64(8 << 20)},
		"long-2^63":       {long(0, 1<<63), int64(math.MaxInt64)},
		"reserved-flags":  {[]byte{0x08, 1}, int64(1 << 20)},
		"negative-max":    {long(0, 1<<63), int64(-1)},
	}
	fuzzWriteSeeds(t, "FuzzFrameHeader", headers)

	commands := map[string][]byte{
		"ready-req":      readyBody(Metadata{st("REQ")}),
		"ready-dealer":   readyBody(Metadata{st("DEALER"), {PropIdentity, []byte("client-1")}, {"X-Hydra", []byte("v1")}}),
		"ready-zero-id":  readyBody(Metadata{st("DEALER"), {PropRoutingID, []byte("\x00\x00\x00\x00\x01")}}),
		"ready-empty":    readyBody(nil),
		"ping":           AppendCommandBody(nil, CmdPing, []byte{0, 30, 'c', 't', 'x'}),
		"ping-16":        AppendCommandBody(nil, CmdPing, append([]byte{1, 0}, "0123456789abcdef"...)),
		"pong":           AppendCommandBody(nil, CmdPong, []byte("ctx")),
		"subscribe":      AppendCommandBody(nil, CmdSubscribe, []byte("weather.")),
		"cancel":         AppendCommandBody(nil, CmdCancel, []byte("weather.")),
		"error":          AppendCommandBody(nil, CmdError, AppendErrorBody(nil, "Invalid socket type")),
		"plain-hello":    AppendCommandBody(nil, "HELLO", []byte("\x05admin\x06secret")),
		"metadata-only":  AppendMetadata(nil, codecMetadata),
		"ping-body-only": {0, 30},
	}
	fuzzWriteSeeds(t, "FuzzCommand", commands)

	streams := map[string][]any{
		"ready-and-message": {append(AppendCommand(nil, CmdReady, AppendMetadata(nil, Metadata{st("REQ")})), req("hello")...), uint16(9), int64(1 << 20)},
		"long-frames":       {AppendMessage(nil, [][]byte{bytes.Repeat([]byte("a"), 300), bytes.Repeat([]byte("b"), 256)}), uint16(5), int64(1 << 20)},
		"too-large":         {append(long(0, 1<<50), "xxxx"...), uint16(4), int64(8 << 20)},
		"ping-subscribe":    {append(AppendCommand(nil, CmdPing, []byte{0, 1}), AppendCommand(nil, CmdSubscribe, []byte("t"))...), uint16(1), int64(1 << 20)},
	}

	handshakes := map[string][]byte{
		"req-3.1":              fuzzClientStream(1, "REQ", nil, req("hello")),
		"req-3.0":              fuzzClientStream(0, "REQ", nil, req("hello")),
		"dealer-id":            fuzzClientStream(1, "DEALER", Metadata{{PropIdentity, []byte("client-1")}}, AppendMessage(nil, [][]byte{[]byte("a"), []byte("b")})),
		"dealer-zero-id":       fuzzClientStream(1, "DEALER", Metadata{{PropRoutingID, []byte("\x00\x00\x00\x00\x01")}}, req("x")),
		"sub-3.1":              fuzzClientStream(1, "SUB", nil, AppendCommand(nil, CmdSubscribe, []byte("weather.")), AppendCommand(nil, CmdCancel, []byte("weather."))),
		"sub-3.0":              fuzzClientStream(0, "SUB", nil, AppendFrame(nil, 0, []byte("\x01weather.")), AppendFrame(nil, 0, []byte("\x00weather."))),
		"push-multipart":       fuzzClientStream(1, "PUSH", nil, AppendMessage(nil, [][]byte{[]byte("k"), bytes.Repeat([]byte("v"), 300)})),
		"ping-pong":            fuzzClientStream(1, "DEALER", nil, AppendCommand(nil, CmdPing, []byte{0, 10, 'c'}), AppendCommand(nil, CmdPong, nil), req("x")),
		"plain":                fuzzPlainStream(fuzzUser, fuzzPassword, "REQ", req("hello")),
		"plain-bad-pass":       fuzzPlainStream(fuzzUser, "wrong", "REQ"),
		"server-type":          fuzzClientStream(1, "SERVER", nil),
		"truncated-ready":      append(AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "NULL"}), "\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x40REQ"...),
		"huge-frame":           fuzzClientStream(1, "DEALER", nil, long(0, 1<<50), []byte("xxxx")),
		"message-in-handshake": append(AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "NULL"}), req("early")...),
		"version-2.0":          codecGreeting(2, 0, "NULL", false, 0),
		"garbage":              []byte("GET / HTTP/1.1\r\nHost: hydra\r\n\r\n"),
		"error-command":        fuzzClientStream(1, "REQ", nil, AppendCommand(nil, CmdError, AppendErrorBody(nil, "bye"))),
	}

	// Captures of real zmq4 clients: each one's handshake and first message.
	captures := map[string][]byte{
		"zmq4-req": fuzzCaptureZMQ4(t, "REP", func(ctx context.Context, ep string) (zmq4.Socket, error) {
			s := zmq4.NewReq(ctx, zmq4.WithLogger(log.New(io.Discard, "", 0)))
			if err := s.Dial(ep); err != nil {
				return s, err
			}
			return s, s.Send(zmq4.NewMsgString("hello"))
		}),
		"zmq4-dealer": fuzzCaptureZMQ4(t, "ROUTER", func(ctx context.Context, ep string) (zmq4.Socket, error) {
			s := zmq4.NewDealer(ctx, zmq4.WithLogger(log.New(io.Discard, "", 0)), zmq4.WithID(zmq4.SocketIdentity("capture-dealer")))
			if err := s.Dial(ep); err != nil {
				return s, err
			}
			return s, s.Send(zmq4.NewMsgFrom([]byte("part1"), []byte("part2")))
		}),
		"zmq4-sub": fuzzCaptureZMQ4(t, "PUB", func(ctx context.Context, ep string) (zmq4.Socket, error) {
			s := zmq4.NewSub(ctx, zmq4.WithLogger(log.New(io.Discard, "", 0)))
			if err := s.Dial(ep); err != nil {
				return s, err
			}
			return s, s.SetOption(zmq4.OptionSubscribe, "weather.")
		}),
		"zmq4-push": fuzzCaptureZMQ4(t, "PULL", func(ctx context.Context, ep string) (zmq4.Socket, error) {
			s := zmq4.NewPush(ctx, zmq4.WithLogger(log.New(io.Discard, "", 0)))
			if err := s.Dial(ep); err != nil {
				return s, err
			}
			return s, s.Send(zmq4.NewMsgString("push me"))
		}),
	}
	for name, c := range captures {
		handshakes[name] = c
		greetings := map[string][]byte{name: c[:GreetingSize]}
		fuzzWriteSeeds(t, "FuzzGreeting", greetings)
		fr := newFrameReader(bytes.NewReader(c[GreetingSize:]))
		if _, body, err := fr.next(1 << 20); err == nil {
			fuzzWriteSeeds(t, "FuzzCommand", map[string][]byte{name + "-ready": body})
		}
		streams[name] = []any{c[GreetingSize:], uint16(20), int64(1 << 20)}
	}
	fuzzWriteSeeds(t, "FuzzFrameReader", streams)
	fuzzWriteSeeds(t, "FuzzHandshake", handshakes)
}

// fuzzCaptureZMQ4 records what a zmq4 client sends to a NULL server of type
// peerType: greeting, READY and the first whole message after it.
func fuzzCaptureZMQ4(t *testing.T, peerType string, client func(ctx context.Context, endpoint string) (zmq4.Socket, error)) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(fuzzCheckTimeout))
		var rec bytes.Buffer
		fr := newFrameReader(io.TeeReader(nc, &rec))
		nc.Write(AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "NULL"}))
		if _, err := fr.readFull(GreetingSize); err != nil {
			done <- result{nil, err}
			return
		}
		if _, _, err := fr.next(1 << 20); err != nil { // READY
			done <- result{nil, err}
			return
		}
		nc.Write(AppendCommand(nil, CmdReady, AppendMetadata(nil, Metadata{{PropSocketType, []byte(peerType)}})))
		for {
			flags, _, err := fr.next(1 << 20)
			if err != nil {
				done <- result{nil, err}
				return
			}
			if flags&(FlagMore|FlagCommand) == 0 {
				break
			}
		}
		done <- result{rec.Bytes(), nil}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), fuzzCheckTimeout)
	defer cancel()
	s, err := client(ctx, "tcp://"+ln.Addr().String())
	if err != nil {
		t.Fatalf("zmq4 client for %s: %v", peerType, err)
	}
	r := <-done
	zqClose(s)
	if r.err != nil {
		t.Fatalf("capturing a client of %s: %v", peerType, r.err)
	}
	return r.b
}

// fuzzWriteSeeds writes one corpus file per seed under testdata/fuzz/target.
// A seed is a []byte or the list of a target's arguments.
func fuzzWriteSeeds[V []byte | []any](t *testing.T, target string, seeds map[string]V) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, seed := range seeds {
		var args []any
		switch v := any(seed).(type) {
		case []byte:
			args = []any{v}
		case []any:
			args = v
		}
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch a := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", a)
			case uint16:
				fmt.Fprintf(&b, "uint16(%d)\n", a)
			case int64:
				fmt.Fprintf(&b, "int64(%d)\n", a)
			default:
				t.Fatalf("seed %s/%s: argument of type %T", target, name, a)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
