package curve

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/hydra-net/hydra/zmtp"

	"github.com/hydra-net/hydra/secure"
)

// Fuzz targets for the CURVE parsers and a whole-handshake fuzz of the
// server side. Seeds: testdata/fuzz/<Target>/ (hand-made and captured from
// real handshakes, ours and pyzmq's) plus the f.Add calls below.

// detRand is a deterministic randomness source, so a fuzz input always
// replays the same handshake.
func detRand(seed uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// fuzzKeys are the fixed identities of the fuzz targets: the libzmq manual
// key pairs, so captured pyzmq handshakes made with them are valid seeds.
func fuzzKeys(t testing.TB) (server, client secure.KeyPair) {
	return mustKeyPair(t, docServerSecret), mustKeyPair(t, docClientSecret)
}

// genuineCommands runs a real client against a real server and returns
// the client's commands (HELLO, INITIATE) and the server's (WELCOME,
// READY), with deterministic randomness.
func genuineCommands(t testing.TB, seed uint64) (client, server []zmtp.Command) {
	sk, ck := fuzzKeys(t)
	a, b := handshakePipe()
	ca, cb := &recordingConn{}, &recordingConn{}
	a.tap, b.tap = ca, cb
	srv := &serverMech{kp: sk, auth: secure.AllowAny(), rand: detRand(seed)}
	cli := &clientMech{kp: ck, server: sk.Public, rand: detRand(seed + 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Handshake(b, zmtp.Metadata{{Name: "Socket-Type", Value: []byte("PULL")}})
	}()
	cli.Handshake(a, zmtp.Metadata{{Name: "Socket-Type", Value: []byte("PUSH")}})
	<-done
	return ca.cmds, cb.cmds
}

func FuzzCurveHello(f *testing.F) {
	c, _ := genuineCommands(f, 1)
	f.Add(c[0].Body)
	f.Add(make([]byte, helloBody))
	sk, _ := fuzzKeys(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, _, err := parseHello(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.append(nil), b) {
			t.Fatal("HELLO does not re-encode identically")
		}
		m := &serverMech{kp: sk, auth: secure.AllowAny(), rand: detRand(7)}
		if w, err := m.onHello(b); err == nil && len(w) != welcomeBody {
			t.Fatalf("WELCOME body of %d bytes", len(w))
		}
	})
}

func FuzzCurveWelcome(f *testing.F) {
	_, s := genuineCommands(f, 1)
	f.Add(s[0].Body)
	f.Add(make([]byte, welcomeBody))
	sk, ck := fuzzKeys(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		w, _, err := parseWelcome(b)
		if err != nil {
			return
		}
		if !bytes.Equal(w.append(nil), b) {
			t.Fatal("WELCOME does not re-encode identically")
		}
		m := &clientMech{kp: ck, server: sk.Public, rand: detRand(1 + 1)}
		if _, err := m.hello(); err != nil {
			t.Fatal(err)
		}
		if err := m.onWelcome(b); err == nil {
			// Only the genuine WELCOME of this exchange may open.
			if !bytes.Equal(b, s[0].Body) {
				t.Fatal("a forged WELCOME opened")
			}
			if _, err := m.initiate(nil); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzCurveInitiate feeds INITIATE bodies to a server that has answered a
// genuine HELLO, so the fuzzer's mutations of the genuine INITIATE reach
// the cookie, box, vouch and metadata checks.
func FuzzCurveInitiate(f *testing.F) {
	c, _ := genuineCommands(f, 1)
	f.Add(c[1].Body)
	f.Add(make([]byte, initiateMinBody))
	sk, _ := fuzzKeys(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		in, _, err := parseInitiate(b)
		if err == nil && !bytes.Equal(in.append(nil), b) {
			t.Fatal("INITIATE does not re-encode identically")
		}
		m := &serverMech{kp: sk, auth: secure.AllowAny(), rand: detRand(1)}
		if _, err := m.onHello(c[0].Body); err != nil {
			t.Fatal(err)
		}
		ready, peer, err := m.onInitiate(b, nil)
		if err == nil {
			if len(ready) < readyMinBody {
				t.Fatalf("READY body of %d bytes", len(ready))
			}
			_ = peer
			m.cipher()
		} else if !errors.Is(err, ErrCommand) && !errors.Is(err, ErrAuth) && !errors.Is(err, ErrNonce) && !errors.Is(err, zmtp.ErrBadMetadata) && !errors.Is(err, secure.ErrUnauthorized) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}

func FuzzCurveReady(f *testing.F) {
	_, s := genuineCommands(f, 1)
	f.Add(s[1].Body)
	f.Add(make([]byte, readyMinBody))
	sk, ck := fuzzKeys(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, _, err := parseReady(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.append(nil), b) {
			t.Fatal("READY does not re-encode identically")
		}
		m := &clientMech{kp: ck, server: sk.Public, rand: detRand(2)}
		m.hello()
		if err := m.onWelcome(s[0].Body); err != nil {
			t.Fatal(err)
		}
		m.initiate(zmtp.Metadata{{Name: "Socket-Type", Value: []byte("PUSH")}})
		if _, err := m.onReady(b); err == nil && !bytes.Equal(b, s[1].Body) {
			t.Fatal("a forged READY opened")
		}
	})
}

// FuzzCurveMessage feeds MESSAGE bodies to an established cipher; the
// first seed is a genuine message, so mutations test the box and nonce
// checks. Nothing but the genuine message may open.
func FuzzCurveMessage(f *testing.F) {
	var shared [32]byte
	copy(shared[:], "fuzzing the CURVE MESSAGE layer.")
	send := &messageCipher{send: newMsgBox(&shared, prefixMsgC), sendNonce: 3}
	genuine, _ := send.Seal(nil, zmtp.FlagMore, []byte("hello, world"))
	genuine = genuine[2:]
	f.Add(genuine)
	f.Add([]byte("\x07MESSAGE"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := parseMessage(b)
		if err != nil {
			return
		}
		if n != len(b) || !bytes.Equal(m.append(nil), b) {
			t.Fatal("MESSAGE does not re-encode identically")
		}
		recv := &messageCipher{recv: newMsgBox(&shared, prefixMsgC), recvNonce: 2}
		in := bytes.Clone(b) // Open decrypts in place
		flags, body, err := recv.Open(in)
		if err != nil {
			if !bytes.Equal(in, b) {
				t.Fatal("a failed Open modified its input")
			}
			return
		}
		if !bytes.Equal(b, genuine) || flags != zmtp.FlagMore || string(body) != "hello, world" {
			t.Fatalf("forged MESSAGE opened: flags %d body %q", flags, body)
		}
		if _, _, err := recv.Open(bytes.Clone(b)); !errors.Is(err, ErrNonce) {
			t.Fatalf("replay: %v", err)
		}
	})
}

// frameConn is a zmtp.HandshakeConn reading ZMTP frames out of a byte
// stream, as zmtp's handshake reader does (64 KiB command limit, command
// frames only), and discarding what is written.
type frameConn struct {
	b       []byte
	written []zmtp.Command
}

func (c *frameConn) ReadCommand() (zmtp.Command, error) {
	flags, size, n, err := zmtp.ParseFrameHeader(c.b, 64<<10)
	if err != nil {
		return zmtp.Command{}, err
	}
	if int64(len(c.b)-n) < size {
		return zmtp.Command{}, io.ErrUnexpectedEOF
	}
	body := c.b[n : n+int(size)]
	c.b = c.b[n+int(size):]
	if flags&zmtp.FlagCommand == 0 {
		return zmtp.Command{}, zmtp.ErrUnexpected
	}
	return zmtp.ParseCommand(body)
}

func (c *frameConn) WriteCommand(name string, body []byte) error {
	c.written = append(c.written, zmtp.Command{Name: name, Body: body})
	return nil
}

func (c *frameConn) Peer() zmtp.Greeting {
	return zmtp.Greeting{Major: 3, Minor: 1, Mechanism: "CURVE"}
}

// mutConn is a zmtp.HandshakeConn in front of a genuine client: every
// command the client writes is XORed with the next bytes of a mutation
// stream before the server reads it.
type mutConn struct {
	inner *memConn
	mut   []byte
}

func (m *mutConn) ReadCommand() (zmtp.Command, error) { return m.inner.ReadCommand() }
func (m *mutConn) Peer() zmtp.Greeting                { return m.inner.Peer() }
func (m *mutConn) WriteCommand(name string, body []byte) error {
	b := bytes.Clone(body)
	for i := range b {
		if len(m.mut) == 0 {
			break
		}
		b[i] ^= m.mut[0]
		m.mut = m.mut[1:]
	}
	return m.inner.WriteCommand(name, b)
}

// FuzzCurveServerHandshake feeds arbitrary bytes to the server side of
// the handshake: mode 0 parses the input as the client's stream of ZMTP
// frames; mode 1 runs a genuine client whose commands are XORed with the
// input, so the fuzzer reaches every check of a well-formed exchange. The
// server must never panic, and a session it accepts must work.
func FuzzCurveServerHandshake(f *testing.F) {
	c, _ := genuineCommands(f, 1)
	var stream []byte
	for _, cmd := range c {
		stream = zmtp.AppendCommand(stream, cmd.Name, cmd.Body)
	}
	f.Add(append([]byte{0}, stream...))
	f.Add([]byte{1})
	f.Add(append([]byte{1}, make([]byte, 300)...))
	f.Add(append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0x80))
	f.Fuzz(runServerHandshakeFuzz)
}

func runServerHandshakeFuzz(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	sk, ck := fuzzKeys(t)
	srv := &serverMech{kp: sk, auth: secure.NewAllowList(ck.Public), rand: detRand(1)}
	if data[0]%2 == 0 {
		// The server's randomness is deterministic here, so the recorded
		// genuine stream (the first seed) replays into a complete
		// handshake, and its mutations reach every check.
		sess, err := srv.Handshake(&frameConn{b: data[1:]}, nil)
		if err == nil && sess.UserID != ck.Public.String() {
			t.Fatalf("handshake completed for %s", sess.UserID)
		}
		return
	}
	a, b := handshakePipe()
	cli := &clientMech{kp: ck, server: sk.Public, rand: detRand(2)}
	done := make(chan struct{})
	var cs zmtp.Session
	var cerr error
	go func() {
		defer close(done)
		cs, cerr = cli.Handshake(&mutConn{inner: a, mut: data[1:]}, zmtp.Metadata{{Name: "Socket-Type", Value: []byte("PUSH")}})
		if cerr != nil {
			close(a.out) // a client that gave up sends nothing more: the server's pending read ends
		}
	}()
	ss, serr := srv.Handshake(b, nil)
	if serr != nil {
		close(b.out) // the client's pending read ends
	}
	<-done
	if serr == nil && cerr == nil {
		w, _ := cs.Cipher.Seal(nil, 0, []byte("ping"))
		_, size, n, _ := zmtp.ParseFrameHeader(w, 1<<20)
		if _, body, err := ss.Cipher.Open(w[n : n+int(size)]); err != nil || string(body) != "ping" {
			t.Fatalf("accepted session does not work: %v", err)
		}
	}
}
