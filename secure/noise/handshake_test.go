package noise

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/hydra-net/hydra/secure"
)

// memConfigs are the two sides' configs for the in-memory handshakes:
// the fixed fuzz keys, deterministic randomness, each side allowing the
// other, IK when pinned.
func memConfigs(t testing.TB, pinned bool, c Cipher) (ini, resp Config) {
	sk, ck := fuzzKeys(t)
	ini = Config{Static: ck, Peers: secure.NewAllowList(sk.Public), Cipher: c, Payload: []byte("from initiator"), rand: detRand(11)}
	if pinned {
		ini.RemoteKey = sk.Public
	}
	resp = Config{Static: sk, Peers: secure.NewAllowList(ck.Public), Payload: []byte("from responder"), rand: detRand(12)}
	return ini.withDefaults(), resp.withDefaults()
}

// memPair starts both sides of a handshake in memory.
func memPair(t testing.TB, pinned bool, c Cipher) (ini, resp *handshake) {
	t.Helper()
	icfg, rcfg := memConfigs(t, pinned, c)
	ini, err := newInitiator(&icfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = newResponder(&rcfg, ini.preamble.append(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ini.wipe(); resp.wipe() })
	return ini, resp
}

// turn returns the side that sends the next message and the one that
// receives it.
func turn(ini, resp *handshake) (from, to *handshake) {
	if ini.ourTurn() {
		return ini, resp
	}
	return resp, ini
}

func mustCreate(t testing.TB, h *handshake, f func() ([]byte, error), want hsState) []byte {
	t.Helper()
	msg, err := f()
	if err != nil {
		t.Fatalf("%s creating: %v", h.role(), err)
	}
	if h.state != want {
		t.Fatalf("%s after creating: state %s, want %s", h.role(), h.state, want)
	}
	return msg
}

func mustConsume(t testing.TB, h *handshake, f func([]byte) error, msg []byte, want hsState) {
	t.Helper()
	if err := f(msg); err != nil {
		t.Fatalf("%s consuming: %v", h.role(), err)
	}
	if h.state != want {
		t.Fatalf("%s after consuming: state %s, want %s", h.role(), h.state, want)
	}
}

// TestHandshakeStepsInMemory drives the I/O-free steps of IK and XX by
// hand, initiator and responder in memory, checks each state and length,
// what each side learns, that the transport keys match, and that the
// socket driver puts exactly these messages on the wire.
func TestHandshakeStepsInMemory(t *testing.T) {
	ip, rp := len("from initiator"), len("from responder")
	for _, pinned := range []bool{true, false} {
		for _, c := range []Cipher{CipherAESGCM, CipherChaChaPoly} {
			name := map[bool]string{true: "IK", false: "XX"}[pinned] + "/" + c.String()
			t.Run(name, func(t *testing.T) {
				ini, resp := memPair(t, pinned, c)
				var up, down [][]byte // messages initiator→responder and back
				if pinned {
					m1 := mustCreate(t, ini, ini.createIK1, stateIK2)
					mustConsume(t, resp, resp.consumeIK1, m1, stateIK2)
					m2 := mustCreate(t, resp, resp.createIK2, stateIKConfirm)
					mustConsume(t, ini, ini.consumeIK2, m2, stateIKConfirm)
					cf := mustCreate(t, ini, ini.createConfirm, stateDone)
					mustConsume(t, resp, resp.consumeConfirm, cf, stateDone)
					up, down = [][]byte{m1, cf}, [][]byte{m2}
					if len(m1) != ik1Len+ip || len(m2) != ik2Len+rp {
						t.Fatalf("IK messages of %d and %d bytes", len(m1), len(m2))
					}
				} else {
					m1 := mustCreate(t, ini, ini.createXX1, stateXX2)
					mustConsume(t, resp, resp.consumeXX1, m1, stateXX2)
					m2 := mustCreate(t, resp, resp.createXX2, stateXX3)
					mustConsume(t, ini, ini.consumeXX2, m2, stateXX3)
					m3 := mustCreate(t, ini, ini.createXX3, stateXXConfirm)
					mustConsume(t, resp, resp.consumeXX3, m3, stateXXConfirm)
					cf := mustCreate(t, resp, resp.createConfirm, stateDone)
					mustConsume(t, ini, ini.consumeConfirm, cf, stateDone)
					up, down = [][]byte{m1, m3}, [][]byte{m2, cf}
					if len(m1) != xx1Len || len(m2) != xx2Len+rp || len(m3) != xx3Len+ip {
						t.Fatalf("XX messages of %d, %d and %d bytes", len(m1), len(m2), len(m3))
					}
				}
				sk, ck := fuzzKeys(t)
				if !ini.peer.Equal(sk.Public) || !resp.peer.Equal(ck.Public) {
					t.Fatal("a side learned the wrong peer key")
				}
				if string(ini.peerPayload) != "from responder" || string(resp.peerPayload) != "from initiator" {
					t.Fatalf("payloads %q %q", ini.peerPayload, resp.peerPayload)
				}
				want := "Noise_" + name[:2] + "_25519_" + c.String() + "_BLAKE2s"
				if ini.suite != want || resp.suite != want {
					t.Fatalf("suites %q %q, want %q", ini.suite, resp.suite, want)
				}
				for _, d := range [][2]*handshake{{ini, resp}, {resp, ini}} {
					ct, err := d[0].send.Encrypt(nil, nil, []byte("record"))
					if err != nil {
						t.Fatal(err)
					}
					if pt, err := d[1].recv.Decrypt(nil, nil, ct); err != nil || string(pt) != "record" {
						t.Fatalf("%s→%s transport record: %q %v", d[0].role(), d[1].role(), pt, err)
					}
				}

				// The driver, over a pipe, with the same keys and randomness.
				wantUp := ini.preamble.append(nil)
				for _, m := range up {
					wantUp = append(binary.BigEndian.AppendUint16(wantUp, uint16(len(m))), m...)
				}
				var wantDown []byte
				for _, m := range down {
					wantDown = append(binary.BigEndian.AppendUint16(wantDown, uint16(len(m))), m...)
				}
				gotUp, gotDown := driveOverPipe(t, pinned, c)
				if !bytes.Equal(gotUp, wantUp) || !bytes.Equal(gotDown, wantDown) {
					t.Fatalf("the driver's wire bytes differ from the steps':\n up   %x\n want %x\n down %x\n want %x", gotUp, wantUp, gotDown, wantDown)
				}
			})
		}
	}
}

// recorder keeps a copy of what is written through it.
type recorder struct {
	net.Conn
	mu  sync.Mutex
	out []byte
}

func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.out = append(r.out, b...)
	r.mu.Unlock()
	return r.Conn.Write(b)
}

func (r *recorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.out)
}

// driveOverPipe runs initiate and respond (the socket driver, no
// deadlines) over a net.Pipe with memConfigs and returns what each side
// wrote.
func driveOverPipe(t *testing.T, pinned bool, c Cipher) (up, down []byte) {
	icfg, rcfg := memConfigs(t, pinned, c)
	a, b := net.Pipe()
	ra, rb := &recorder{Conn: a}, &recorder{Conn: b}
	r := &Responder{cfg: rcfg, limiter: newRateLimiter(rcfg.HandshakeRate, rcfg.HandshakeBurst)}
	errc := make(chan error, 1)
	go func() {
		_, err := r.respond(rb)
		errc <- err
	}()
	if _, err := initiate(ra, &icfg); err != nil {
		t.Fatalf("initiate: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("respond: %v", err)
	}
	a.Close()
	b.Close()
	return ra.bytes(), rb.bytes()
}

// advance makes a fresh pair and runs it through its first k messages;
// it returns the pair and message k, which the receiver has not consumed.
func advance(t *testing.T, pinned bool, k int) (ini, resp, to *handshake, msg []byte) {
	t.Helper()
	ini, resp = memPair(t, pinned, CipherChaChaPoly)
	for i := 0; ; i++ {
		from, rcv := turn(ini, resp)
		m, err := from.create()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if i == k {
			return ini, resp, rcv, m
		}
		if err := rcv.consume(m); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

// TestHandshakeStepTruncatedOrGarbled: at every step of IK and XX, every
// truncated prefix of the genuine message is refused with ErrHandshake
// (and io.ErrUnexpectedEOF below the minimum length), and a message with
// a bit flipped in any one byte never lets the handshake complete: its consumer
// refuses it, or (XX's first message is a bare public key) the peer's
// next message does not decrypt.
func TestHandshakeStepTruncatedOrGarbled(t *testing.T) {
	for _, pinned := range []bool{true, false} {
		steps := 3
		if !pinned {
			steps = 4
		}
		for k := 0; k < steps; k++ {
			_, _, to, genuine := advance(t, pinned, k)
			what := to.state
			t.Run(what.String(), func(t *testing.T) {
				for i := 0; i < len(genuine); i++ {
					_, _, to, _ := advance(t, pinned, k)
					err := to.consume(genuine[:i])
					if !errors.Is(err, ErrHandshake) {
						t.Fatalf("%d of %d bytes: %v, want ErrHandshake", i, len(genuine), err)
					}
					if i < messages[what].min && !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("%d of %d bytes: %v, want io.ErrUnexpectedEOF", i, len(genuine), err)
					}
					if to.state != stateFailed {
						t.Fatalf("state %s after a refused message", to.state)
					}
				}
				for j := range genuine {
					ini, resp, to, m := advance(t, pinned, k)
					m[j] ^= 1 << (j % 8)
					err := to.consume(m)
					for err == nil && (ini.state != stateDone || resp.state != stateDone) {
						from, rcv := turn(ini, resp)
						var next []byte
						if next, err = from.create(); err == nil {
							err = rcv.consume(next)
						}
					}
					if err == nil {
						t.Fatalf("byte %d flipped: the handshake completed", j)
					}
					if !errors.Is(err, ErrHandshake) {
						t.Fatalf("byte %d flipped: %v, want ErrHandshake", j, err)
					}
				}
			})
		}
	}
}

// TestHandshakeOutOfTurn: a side cannot create what the other sends nor
// consume its own messages, a handshake that failed stays failed, and a
// zero handshake does nothing.
func TestHandshakeOutOfTurn(t *testing.T) {
	ini, resp := memPair(t, true, CipherAESGCM)
	if _, err := resp.createIK1(); !errors.Is(err, ErrHandshake) {
		t.Fatalf("responder created IK message 1: %v", err)
	}
	if resp.state != stateFailed {
		t.Fatalf("state %s after an out-of-turn step", resp.state)
	}
	if err := resp.consumeIK1(make([]byte, ik1Len)); !errors.Is(err, ErrHandshake) {
		t.Fatalf("a failed handshake consumed a message: %v", err)
	}
	if err := ini.consumeIK2(make([]byte, ik2Len)); !errors.Is(err, ErrHandshake) {
		t.Fatalf("initiator consumed IK message 2 before sending message 1: %v", err)
	}
	ini, _ = memPair(t, false, CipherAESGCM)
	if _, err := ini.createConfirm(); !errors.Is(err, ErrHandshake) {
		t.Fatalf("key confirmation before the handshake: %v", err)
	}
	var zero handshake
	if _, err := zero.create(); !errors.Is(err, ErrHandshake) || zero.state.String() != "failed" {
		t.Fatalf("zero handshake: %v, state %s", err, zero.state)
	}
	for s := stateFailed; s <= stateDone; s++ {
		if s.String() == "" || s != stateFailed && s.String() == "failed" {
			t.Errorf("state %d has no name", s)
		}
	}
}

// TestHandshakeRefusesStrangers: the IK responder and the XX initiator
// and responder refuse a peer key their Authorizer does not allow, with
// secure.ErrUnauthorized, and stop there.
func TestHandshakeRefusesStrangers(t *testing.T) {
	for _, tc := range []struct {
		pinned bool
		refuse string // which side's Peers allows nobody
		at     int    // the message whose consumer refuses
	}{
		{true, "responder", 0},
		{false, "initiator", 1},
		{false, "responder", 2},
	} {
		ini, resp := memPair(t, tc.pinned, CipherAESGCM)
		map[string]*handshake{"initiator": ini, "responder": resp}[tc.refuse].peers = secure.NewAllowList()
		var err error
		for i := 0; err == nil; i++ {
			from, rcv := turn(ini, resp)
			m, cerr := from.create()
			if cerr != nil {
				t.Fatal(cerr)
			}
			if err = rcv.consume(m); err != nil && i != tc.at {
				t.Fatalf("%+v: message %d refused, want %d: %v", tc, i, tc.at, err)
			}
		}
		if !errors.Is(err, secure.ErrUnauthorized) {
			t.Fatalf("%+v: %v, want ErrUnauthorized", tc, err)
		}
	}
}
