package noise

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"

	flynn "github.com/flynn/noise"

	"github.com/hydra-net/hydra/secure"
)

// The handshake of one side, as wireguard-go's device/noise-protocol.go
// writes its own: an explicit state, and one function per message that
// creates it or consumes it as bytes. None of them does I/O; run (in
// driver.go) moves the bytes for both patterns and both roles.
//
// IK:  -> e, es, s, ss [payload]   <- e, ee, se [payload]   -> confirmation
// XX:  -> e   <- e, ee, s, es [payload]   -> s, se [payload]   <- confirmation
//
// The side that speaks last in the pattern is answered with an empty
// transport record, the key confirmation: an IK responder learns that the
// initiator is live and not a replayed first message, an XX initiator that
// the responder accepted its key. Only then is the handshake done.

// hsState is where a handshake stands: the message that comes next (which
// this side creates or consumes, depending on its role), or its end. The
// zero value is stateFailed, so a handshake not made by newHandshake does
// nothing.
type hsState uint8

const (
	stateFailed    hsState = iota // a step failed; the handshake is over
	stateIK1                      // IK message 1, from the initiator
	stateIK2                      // IK message 2, from the responder
	stateIKConfirm                // IK key confirmation, from the initiator
	stateXX1                      // XX message 1, from the initiator
	stateXX2                      // XX message 2, from the responder
	stateXX3                      // XX message 3, from the initiator
	stateXXConfirm                // XX key confirmation, from the responder
	stateDone                     // both sides hold the transport keys
)

func (s hsState) String() string {
	switch s {
	case stateIK1:
		return "IK message 1"
	case stateIK2:
		return "IK message 2"
	case stateIKConfirm:
		return "IK key confirmation"
	case stateXX1:
		return "XX message 1"
	case stateXX2:
		return "XX message 2"
	case stateXX3:
		return "XX message 3"
	case stateXXConfirm:
		return "XX key confirmation"
	case stateDone:
		return "done"
	}
	return "failed"
}

// Handshake message lengths with an empty payload; a payload adds its own
// length. XX's first message carries no payload (it would travel in
// clear). A key confirmation is an empty record: its tag.
const (
	ik1Len     = 32 + 48 + 16 // e, s (encrypted), payload tag
	ik2Len     = 32 + 16      // e, payload tag
	xx1Len     = 32           // e
	xx2Len     = 32 + 48 + 16 // e, s, payload tag
	xx3Len     = 48 + 16      // s, payload tag
	confirmLen = tagSize
)

// messages says, per state, who sends the message and its length bounds.
var messages = [...]struct {
	fromInitiator bool
	min, max      int
}{
	stateIK1:       {true, ik1Len, ik1Len + MaxHandshakePayload},
	stateIK2:       {false, ik2Len, ik2Len + MaxHandshakePayload},
	stateIKConfirm: {true, confirmLen, confirmLen},
	stateXX1:       {true, xx1Len, xx1Len},
	stateXX2:       {false, xx2Len, xx2Len + MaxHandshakePayload},
	stateXX3:       {true, xx3Len, xx3Len + MaxHandshakePayload},
	stateXXConfirm: {false, confirmLen, confirmLen},
	stateDone:      {},
}

// handshake is one side of one handshake.
type handshake struct {
	state     hsState
	initiator bool
	preamble  preamble
	suite     string // the Noise protocol name
	hs        *flynn.HandshakeState
	static    flynn.DHKey // our key pair, copied for flynn; wiped
	peers     secure.Authorizer
	pinned    secure.PublicKey // IK initiator: the responder's key
	payload   []byte           // ours

	// Learned; handed to the Conn only once the handshake is done.
	peer        secure.PublicKey
	peerPayload []byte
	send, recv  *flynn.CipherState
}

// newInitiator starts the initiator's side: IK when cfg.RemoteKey is set,
// XX otherwise.
func newInitiator(cfg *Config) (*handshake, error) {
	p := preamble{pattern: patternXX, cipher: cfg.Cipher.resolve()}
	if !cfg.RemoteKey.IsZero() {
		p.pattern = patternIK
	}
	return newHandshake(cfg, true, p)
}

// newResponder starts the responder's side for the preamble b the
// initiator sent.
func newResponder(cfg *Config, b []byte) (*handshake, error) {
	p, _, err := parsePreamble(b)
	if err != nil {
		return nil, err
	}
	return newHandshake(cfg, false, p)
}

// newHandshake is the setup both roles and both patterns share. The
// preamble is the Noise prologue, so a tampered one fails the handshake.
func newHandshake(cfg *Config, initiator bool, p preamble) (*handshake, error) {
	hp, first := flynn.HandshakeXX, stateXX1
	if p.pattern == patternIK {
		hp, first = flynn.HandshakeIK, stateIK1
	}
	h := &handshake{
		initiator: initiator,
		preamble:  p,
		suite:     "Noise_" + hp.Name + "_25519_" + p.cipher.String() + "_BLAKE2s",
		static:    dhKey(&cfg.Static),
		peers:     cfg.Peers,
		payload:   cfg.Payload,
	}
	var peerStatic []byte
	if initiator && p.pattern == patternIK {
		h.pinned = cfg.RemoteKey
		peerStatic = append([]byte(nil), cfg.RemoteKey[:]...)
	}
	hs, err := flynn.NewHandshakeState(flynn.Config{
		CipherSuite:   suiteFor(p.cipher),
		Random:        cfg.rand,
		Pattern:       hp,
		Initiator:     initiator,
		Prologue:      p.append(nil),
		StaticKeypair: h.static,
		PeerStatic:    peerStatic,
	})
	if err != nil {
		h.wipe()
		return nil, fmt.Errorf("noise: handshake state: %w", err)
	}
	h.hs, h.state = hs, first
	return h, nil
}

func dhKey(kp *secure.KeyPair) flynn.DHKey {
	return flynn.DHKey{Private: append([]byte(nil), kp.Secret[:]...), Public: append([]byte(nil), kp.Public[:]...)}
}

// wipe zeroes the handshake's copies of the static and ephemeral secrets.
// The transport keys go on in the Conn.
func (h *handshake) wipe() {
	clear(h.static.Private)
	if h.hs != nil {
		clear(h.hs.LocalEphemeral().Private)
	}
}

// ourTurn reports whether this side sends the next message.
func (h *handshake) ourTurn() bool {
	return h.state != stateFailed && h.state != stateDone && h.sends(h.state)
}

// sends reports whether this side is the sender of the message of state s.
func (h *handshake) sends(s hsState) bool { return messages[s].fromInitiator == h.initiator }

// begin checks that the handshake is at one of the states want and that
// this side sends (sending) or receives that message, and marks the
// handshake failed until the step succeeds.
func (h *handshake) begin(sending bool, want ...hsState) error {
	s := h.state
	h.state = stateFailed
	if slices.Contains(want, s) && h.sends(s) == sending {
		return nil
	}
	verb := "consume"
	if sending {
		verb = "create"
	}
	return fmt.Errorf("%w: the %s cannot %s %s in state %s", ErrHandshake, h.role(), verb, want[0], s)
}

func (h *handshake) role() string {
	if h.initiator {
		return "initiator"
	}
	return "responder"
}

// checkLen refuses a message of the wrong length for the state s before
// any work on it.
func checkLen(s hsState, msg []byte) error {
	m := messages[s]
	if len(msg) < m.min {
		return fmt.Errorf("%w: %s of %d bytes, want %d to %d: %w", ErrHandshake, s, len(msg), m.min, m.max, io.ErrUnexpectedEOF)
	}
	if len(msg) > m.max {
		return fmt.Errorf("%w: %s of %d bytes, want %d to %d", ErrHandshake, s, len(msg), m.min, m.max)
	}
	return nil
}

// authorize asks Peers about the peer's static key, which flynn has just
// authenticated.
func (h *handshake) authorize(who string) error {
	copy(h.peer[:], h.hs.PeerStatic())
	if !secure.Authorized(h.peers, h.peer) {
		return fmt.Errorf("%w: unknown %s static key %s", secure.ErrUnauthorized, who, h.peer)
	}
	return nil
}

// create makes the message this side sends next.
func (h *handshake) create() ([]byte, error) {
	switch h.state {
	case stateIK1:
		return h.createIK1()
	case stateIK2:
		return h.createIK2()
	case stateXX1:
		return h.createXX1()
	case stateXX2:
		return h.createXX2()
	case stateXX3:
		return h.createXX3()
	}
	return h.createConfirm()
}

// consume takes the message the peer sent next.
func (h *handshake) consume(msg []byte) error {
	switch h.state {
	case stateIK1:
		return h.consumeIK1(msg)
	case stateIK2:
		return h.consumeIK2(msg)
	case stateXX1:
		return h.consumeXX1(msg)
	case stateXX2:
		return h.consumeXX2(msg)
	case stateXX3:
		return h.consumeXX3(msg)
	}
	return h.consumeConfirm(msg)
}

// createIK1: the initiator's static key and payload, to the pinned
// responder.
func (h *handshake) createIK1() ([]byte, error) {
	if err := h.begin(true, stateIK1); err != nil {
		return nil, err
	}
	msg, _, _, err := h.hs.WriteMessage(nil, h.payload)
	if err != nil {
		return nil, fmt.Errorf("noise: %s: %w", stateIK1, err)
	}
	h.state = stateIK2
	return msg, nil
}

// consumeIK1 authenticates and authorizes the initiator.
func (h *handshake) consumeIK1(msg []byte) error {
	if err := h.begin(false, stateIK1); err != nil {
		return err
	}
	if err := checkLen(stateIK1, msg); err != nil {
		return err
	}
	payload, _, _, err := h.hs.ReadMessage(nil, msg)
	if err != nil {
		return fmt.Errorf("%w: %s does not decrypt (the initiator has a wrong key for us?): %v", ErrHandshake, stateIK1, err)
	}
	if err := h.authorize("initiator"); err != nil {
		return err
	}
	h.peerPayload = payload
	h.state = stateIK2
	return nil
}

// createIK2: the responder's payload; both sides then hold the transport
// keys.
func (h *handshake) createIK2() ([]byte, error) {
	if err := h.begin(true, stateIK2); err != nil {
		return nil, err
	}
	msg, cs1, cs2, err := h.hs.WriteMessage(nil, h.payload)
	if err != nil {
		return nil, fmt.Errorf("noise: %s: %w", stateIK2, err)
	}
	h.send, h.recv = cs2, cs1
	h.state = stateIKConfirm
	return msg, nil
}

// consumeIK2 proves the responder holds the pinned key.
func (h *handshake) consumeIK2(msg []byte) error {
	if err := h.begin(false, stateIK2); err != nil {
		return err
	}
	if err := checkLen(stateIK2, msg); err != nil {
		return err
	}
	payload, cs1, cs2, err := h.hs.ReadMessage(nil, msg)
	if err != nil {
		return fmt.Errorf("%w: %s does not decrypt (the responder is not %s?): %v", ErrHandshake, stateIK2, h.pinned, err)
	}
	h.peer, h.peerPayload = h.pinned, payload
	h.send, h.recv = cs1, cs2
	h.state = stateIKConfirm
	return nil
}

// createXX1: the initiator's ephemeral key, nothing else.
func (h *handshake) createXX1() ([]byte, error) {
	if err := h.begin(true, stateXX1); err != nil {
		return nil, err
	}
	msg, _, _, err := h.hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("noise: %s: %w", stateXX1, err)
	}
	h.state = stateXX2
	return msg, nil
}

func (h *handshake) consumeXX1(msg []byte) error {
	if err := h.begin(false, stateXX1); err != nil {
		return err
	}
	if err := checkLen(stateXX1, msg); err != nil {
		return err
	}
	if _, _, _, err := h.hs.ReadMessage(nil, msg); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrHandshake, stateXX1, err)
	}
	h.state = stateXX2
	return nil
}

// createXX2: the responder's static key and payload.
func (h *handshake) createXX2() ([]byte, error) {
	if err := h.begin(true, stateXX2); err != nil {
		return nil, err
	}
	msg, _, _, err := h.hs.WriteMessage(nil, h.payload)
	if err != nil {
		return nil, fmt.Errorf("noise: %s: %w", stateXX2, err)
	}
	h.state = stateXX3
	return msg, nil
}

// consumeXX2 authorizes the responder before the initiator reveals its
// own key.
func (h *handshake) consumeXX2(msg []byte) error {
	if err := h.begin(false, stateXX2); err != nil {
		return err
	}
	if err := checkLen(stateXX2, msg); err != nil {
		return err
	}
	payload, _, _, err := h.hs.ReadMessage(nil, msg)
	if err != nil {
		return fmt.Errorf("%w: %s does not decrypt: %v", ErrHandshake, stateXX2, err)
	}
	if err := h.authorize("responder"); err != nil {
		return err
	}
	h.peerPayload = payload
	h.state = stateXX3
	return nil
}

// createXX3: the initiator's static key and payload; both sides then hold
// the transport keys.
func (h *handshake) createXX3() ([]byte, error) {
	if err := h.begin(true, stateXX3); err != nil {
		return nil, err
	}
	msg, cs1, cs2, err := h.hs.WriteMessage(nil, h.payload)
	if err != nil {
		return nil, fmt.Errorf("noise: %s: %w", stateXX3, err)
	}
	h.send, h.recv = cs1, cs2
	h.state = stateXXConfirm
	return msg, nil
}

// consumeXX3 authenticates and authorizes the initiator.
func (h *handshake) consumeXX3(msg []byte) error {
	if err := h.begin(false, stateXX3); err != nil {
		return err
	}
	if err := checkLen(stateXX3, msg); err != nil {
		return err
	}
	payload, cs1, cs2, err := h.hs.ReadMessage(nil, msg)
	if err != nil {
		return fmt.Errorf("%w: %s does not decrypt: %v", ErrHandshake, stateXX3, err)
	}
	if err := h.authorize("initiator"); err != nil {
		return err
	}
	h.peerPayload = payload
	h.send, h.recv = cs2, cs1
	h.state = stateXXConfirm
	return nil
}

// createConfirm is the empty record that ends the handshake: transport
// record 0 of this side.
func (h *handshake) createConfirm() ([]byte, error) {
	s := h.state
	if err := h.begin(true, stateIKConfirm, stateXXConfirm); err != nil {
		return nil, err
	}
	rec, err := h.send.Encrypt(make([]byte, 0, confirmLen), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("noise: %s: %w", s, err)
	}
	h.state = stateDone
	return rec, nil
}

// consumeConfirm checks the peer's key confirmation, its transport record
// 0.
func (h *handshake) consumeConfirm(rec []byte) error {
	s := h.state
	if err := h.begin(false, stateIKConfirm, stateXXConfirm); err != nil {
		return err
	}
	if err := checkLen(s, rec); err != nil {
		return err
	}
	if _, err := h.recv.Decrypt(nil, nil, rec); err != nil {
		return fmt.Errorf("%w: %s does not decrypt", ErrHandshake, s)
	}
	h.state = stateDone
	return nil
}

// conn hands a done handshake's keys and what it learned to a Conn over
// nc.
func (h *handshake) conn(nc net.Conn, log *slog.Logger) *Conn {
	return newConn(nc, log, h.send, h.recv, h.peer, h.peerPayload, h.suite)
}
