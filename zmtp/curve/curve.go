package curve

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/nacl/secretbox"

	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp"
)

// Server returns the server side of the CURVE mechanism (spec 26) for
// zmtp.Config.Security: kp is the server's long-term key pair, auth
// decides which client keys may connect (nil refuses every client; ask
// for secure.AllowAny by name to accept any). A client whose key is
// refused, or whose INITIATE does not authenticate, gets an ERROR command
// with reason "400" (the ZAP status code for an authentication failure,
// which libzmq clients report as ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) and the
// connection closes. A HELLO that does not open (the client has the wrong
// server key) gets no answer, as the spec asks: the server just closes.
//
// The session's UserID is the client's public key in Z85.
func Server(kp secure.KeyPair, auth secure.Authorizer) func() zmtp.Mechanism {
	return func() zmtp.Mechanism {
		return &serverMech{kp: kp, auth: auth, rand: rand.Reader}
	}
}

// Client returns the client side of CURVE: kp is the client's
// long-term key pair, server the server's public key. If the server
// refuses the key, Handshake fails with an error matching ErrRefused
// and zmtp.ErrPeerError. The session's UserID is the server's public key.
func Client(kp secure.KeyPair, server secure.PublicKey) func() zmtp.Mechanism {
	return func() zmtp.Mechanism {
		return &clientMech{kp: kp, server: server, rand: rand.Reader}
	}
}

// refusalReason is the reason of the ERROR a refused client gets: the ZAP
// (spec 27) status code for "authentication failure", which libzmq turns
// into ZMQ_EVENT_HANDSHAKE_FAILED_AUTH with value 400.
const refusalReason = "400"

// serverState is where a server handshake stands.
type serverState int

const (
	expectHello serverState = iota
	expectInitiate
	serverDone
	serverFailed
)

func (s serverState) String() string {
	switch s {
	case expectHello:
		return "expect-HELLO"
	case expectInitiate:
		return "expect-INITIATE"
	case serverDone:
		return "done"
	}
	return "failed"
}

// serverMech is one server handshake: an explicit state machine that
// does no I/O (onHello, onInitiate), driven by Handshake. A failed step
// moves it to serverFailed for good.
type serverMech struct {
	kp   secure.KeyPair
	auth secure.Authorizer
	rand io.Reader

	state       serverState
	clientShort secure.PublicKey // C'
	helloNonce  uint64
	shortPub    secure.PublicKey // S'
	shortSec    secure.SecretKey // s'
	cookieKey   [32]byte
	longShared  [32]byte // (s, C'): HELLO and WELCOME boxes
	shortShared [32]byte // (s', C'): INITIATE, READY and MESSAGE boxes
	client      secure.PublicKey
	peerNonce   uint64
}

func (*serverMech) Name() string   { return "CURVE" }
func (*serverMech) AsServer() bool { return true }

func (m *serverMech) Handshake(c zmtp.HandshakeConn, local zmtp.Metadata) (zmtp.Session, error) {
	defer m.wipe()
	cmd, err := c.ReadCommand()
	if err != nil {
		return zmtp.Session{}, err
	}
	if cmd.Name != cmdHello {
		return zmtp.Session{}, fmt.Errorf("%w: %q, want HELLO", ErrCommand, cmd.Name)
	}
	welcome, err := m.onHello(cmd.Body)
	if err != nil {
		return zmtp.Session{}, err // no answer: the client may not even know our key
	}
	if err := c.WriteCommand(cmdWelcome, welcome); err != nil {
		return zmtp.Session{}, err
	}
	if cmd, err = c.ReadCommand(); err != nil {
		return zmtp.Session{}, err
	}
	if cmd.Name != cmdInitiate {
		return zmtp.Session{}, fmt.Errorf("%w: %q, want INITIATE", ErrCommand, cmd.Name)
	}
	ready, peer, err := m.onInitiate(cmd.Body, local)
	if err != nil {
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			// Every authentication failure looks the same to the client.
			_ = c.WriteCommand(zmtp.CmdError, zmtp.AppendErrorBody(nil, refusalReason))
		}
		return zmtp.Session{}, err
	}
	if err := c.WriteCommand(zmtp.CmdReady, ready); err != nil {
		return zmtp.Session{}, err
	}
	return zmtp.Session{Peer: peer, UserID: m.client.String(), Cipher: m.cipher()}, nil
}

// onHello checks a HELLO and returns the WELCOME body.
func (m *serverMech) onHello(body []byte) ([]byte, error) {
	if m.state != expectHello {
		return nil, fmt.Errorf("%w: HELLO in state %s", ErrCommand, m.state)
	}
	m.state = serverFailed
	h, _, err := parseHello(body)
	if err != nil {
		return nil, err
	}
	if h.Major != 1 || h.Minor != 0 {
		return nil, fmt.Errorf("%w: CURVE version %d.%d, want 1.0", ErrCommand, h.Major, h.Minor)
	}
	m.clientShort, m.helloNonce = h.ClientShort, h.Nonce
	m.longShared = precompute(&m.kp.Secret, &m.clientShort)
	var sig [64]byte
	if _, ok := box.OpenAfterPrecomputation(sig[:0], h.Box[:], shortNonce(prefixHello, h.Nonce), &m.longShared); !ok {
		return nil, fmt.Errorf("%w: HELLO box does not open (the client has a wrong server key?)", ErrAuth)
	}

	// Short-term key pair and cookie = secretbox [C' + s'] under a key of
	// this connection's only.
	short, err := secure.GenerateKeyPairFrom(m.rand)
	if err != nil {
		return nil, err
	}
	m.shortPub, m.shortSec = short.Public, short.Secret
	short.Zero()
	if _, err := io.ReadFull(m.rand, m.cookieKey[:]); err != nil {
		return nil, err
	}
	var plain [32 + 96]byte // S' + cookie
	copy(plain[:32], m.shortPub[:])
	cookieNonce := plain[32:48]
	if _, err := io.ReadFull(m.rand, cookieNonce); err != nil {
		return nil, err
	}
	var cookiePlain [64]byte
	copy(cookiePlain[:32], m.clientShort[:])
	copy(cookiePlain[32:], m.shortSec[:])
	secretbox.Seal(plain[48:48], cookiePlain[:], nonce24(prefixCookie, cookieNonce), &m.cookieKey)
	clear(cookiePlain[:])

	var w welcomeCmd
	if _, err := io.ReadFull(m.rand, w.Nonce[:]); err != nil {
		return nil, err
	}
	box.SealAfterPrecomputation(w.Box[:0], plain[:], nonce24(prefixWelcome, w.Nonce[:]), &m.longShared)
	m.state = expectInitiate
	return w.append(make([]byte, 0, welcomeBody)), nil
}

// onInitiate checks an INITIATE (cookie, box, vouch, authorization,
// metadata) and returns the READY body and the client's metadata.
func (m *serverMech) onInitiate(body []byte, local zmtp.Metadata) ([]byte, zmtp.Metadata, error) {
	if m.state != expectInitiate {
		return nil, nil, fmt.Errorf("%w: INITIATE in state %s", ErrCommand, m.state)
	}
	m.state = serverFailed
	in, _, err := parseInitiate(body)
	if err != nil {
		return nil, nil, err
	}
	var cookiePlain [64]byte
	defer clear(cookiePlain[:])
	if _, ok := secretbox.Open(cookiePlain[:0], in.Cookie[16:], nonce24(prefixCookie, in.Cookie[:16]), &m.cookieKey); !ok {
		return nil, nil, fmt.Errorf("%w: INITIATE cookie does not open", ErrAuth)
	}
	if subtle.ConstantTimeCompare(cookiePlain[:32], m.clientShort[:])&subtle.ConstantTimeCompare(cookiePlain[32:], m.shortSec[:]) != 1 {
		return nil, nil, fmt.Errorf("%w: INITIATE cookie is not ours", ErrAuth)
	}
	if in.Nonce <= m.helloNonce {
		return nil, nil, fmt.Errorf("%w: INITIATE nonce %d after HELLO nonce %d", ErrNonce, in.Nonce, m.helloNonce)
	}
	m.shortShared = precompute(&m.shortSec, &m.clientShort)
	plain, ok := box.OpenAfterPrecomputation(make([]byte, 0, len(in.Box)-box.Overhead), in.Box, shortNonce(prefixInitiate, in.Nonce), &m.shortShared)
	if !ok {
		return nil, nil, fmt.Errorf("%w: INITIATE box does not open", ErrAuth)
	}
	copy(m.client[:], plain[:32])
	vouchNonce, vouchBox := plain[32:48], plain[48:128]
	vouchKey := precompute(&m.shortSec, &m.client)
	var vouch [64]byte
	_, ok = box.OpenAfterPrecomputation(vouch[:0], vouchBox, nonce24(prefixVouch, vouchNonce), &vouchKey)
	clear(vouchKey[:])
	if !ok {
		return nil, nil, fmt.Errorf("%w: INITIATE vouch does not open (client %s)", ErrAuth, m.client)
	}
	if subtle.ConstantTimeCompare(vouch[:32], m.clientShort[:])&subtle.ConstantTimeCompare(vouch[32:], m.kp.Public[:]) != 1 {
		return nil, nil, fmt.Errorf("%w: INITIATE vouch names other keys (client %s)", ErrAuth, m.client)
	}
	if !secure.Authorized(m.auth, m.client) {
		return nil, nil, fmt.Errorf("%w: CURVE client key %s", secure.ErrUnauthorized, m.client)
	}
	// Only now, authenticated and authorized, is the metadata looked at.
	peer, err := zmtp.ParseMetadata(plain[128:])
	if err != nil {
		return nil, nil, err
	}
	m.peerNonce = in.Nonce

	// READY with our short nonce 1; messages continue from 2.
	md := zmtp.AppendMetadata(nil, local)
	r := readyCmd{Nonce: 1}
	r.Box = box.SealAfterPrecomputation(make([]byte, 0, len(md)+box.Overhead), md, shortNonce(prefixReady, 1), &m.shortShared)
	m.state = serverDone
	return r.append(make([]byte, 0, 8+len(r.Box))), peer, nil
}

func (m *serverMech) cipher() *messageCipher {
	c := &messageCipher{
		send:      newMsgBox(&m.shortShared, prefixMsgS),
		recv:      newMsgBox(&m.shortShared, prefixMsgC),
		sendNonce: 2,
		recvNonce: m.peerNonce,
	}
	return c
}

// wipe zeroes the handshake's secrets; the cipher keeps only its derived
// per-direction keys.
func (m *serverMech) wipe() {
	m.shortSec.Zero()
	clear(m.cookieKey[:])
	clear(m.longShared[:])
	clear(m.shortShared[:])
}

// clientMech is one client handshake.
type clientMech struct {
	kp     secure.KeyPair
	server secure.PublicKey
	rand   io.Reader

	shortPub    secure.PublicKey // C'
	shortSec    secure.SecretKey // c'
	serverShort secure.PublicKey // S'
	longShared  [32]byte         // (c', S)
	shortShared [32]byte         // (c', S')
	nonce       uint64           // our next short nonce
	peerNonce   uint64
	cookie      [cookieSize]byte
}

func (*clientMech) Name() string   { return "CURVE" }
func (*clientMech) AsServer() bool { return false }

func (m *clientMech) Handshake(c zmtp.HandshakeConn, local zmtp.Metadata) (zmtp.Session, error) {
	defer m.wipe()
	hello, err := m.hello()
	if err != nil {
		return zmtp.Session{}, err
	}
	if err := c.WriteCommand(cmdHello, hello); err != nil {
		return zmtp.Session{}, err
	}
	cmd, err := c.ReadCommand()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return zmtp.Session{}, fmt.Errorf("%w: server closed after HELLO (is the server key %s right?): %w", ErrNoWelcome, m.server, err)
		}
		return zmtp.Session{}, err
	}
	if err := refused(cmd, cmdWelcome); err != nil {
		return zmtp.Session{}, err
	}
	if err := m.onWelcome(cmd.Body); err != nil {
		return zmtp.Session{}, err
	}
	initiate, err := m.initiate(local)
	if err != nil {
		return zmtp.Session{}, err
	}
	if err := c.WriteCommand(cmdInitiate, initiate); err != nil {
		return zmtp.Session{}, err
	}
	if cmd, err = c.ReadCommand(); err != nil {
		return zmtp.Session{}, err
	}
	if err := refused(cmd, zmtp.CmdReady); err != nil {
		return zmtp.Session{}, err
	}
	peer, err := m.onReady(cmd.Body)
	if err != nil {
		return zmtp.Session{}, err
	}
	return zmtp.Session{Peer: peer, UserID: m.server.String(), Cipher: m.cipher()}, nil
}

// refused turns an ERROR into ErrRefused and anything but want into
// ErrCommand.
func refused(cmd zmtp.Command, want string) error {
	switch cmd.Name {
	case want:
		return nil
	case zmtp.CmdError:
		reason, err := zmtp.ParseError(cmd.Body)
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: %w", ErrRefused, &zmtp.PeerError{Reason: reason})
	}
	return fmt.Errorf("%w: %q, want %s", ErrCommand, cmd.Name, want)
}

func (m *clientMech) hello() ([]byte, error) {
	short, err := secure.GenerateKeyPairFrom(m.rand)
	if err != nil {
		return nil, err
	}
	m.shortPub, m.shortSec = short.Public, short.Secret
	short.Zero()
	m.longShared = precompute(&m.shortSec, &m.server)
	m.nonce = 1
	h := helloCmd{Major: 1, Minor: 0, ClientShort: m.shortPub, Nonce: m.nonce}
	var zeros [64]byte
	box.SealAfterPrecomputation(h.Box[:0], zeros[:], shortNonce(prefixHello, m.nonce), &m.longShared)
	m.nonce++
	return h.append(make([]byte, 0, helloBody)), nil
}

func (m *clientMech) onWelcome(body []byte) error {
	w, _, err := parseWelcome(body)
	if err != nil {
		return err
	}
	var plain [128]byte
	if _, ok := box.OpenAfterPrecomputation(plain[:0], w.Box[:], nonce24(prefixWelcome, w.Nonce[:]), &m.longShared); !ok {
		return fmt.Errorf("%w: WELCOME box does not open", ErrAuth)
	}
	copy(m.serverShort[:], plain[:32])
	copy(m.cookie[:], plain[32:])
	m.shortShared = precompute(&m.shortSec, &m.serverShort)
	return nil
}

func (m *clientMech) initiate(local zmtp.Metadata) ([]byte, error) {
	// vouch = nonce + box [C' + S] from C to S'.
	var vouchPlain [64]byte
	copy(vouchPlain[:32], m.shortPub[:])
	copy(vouchPlain[32:], m.server[:])
	plain := make([]byte, initiatePlainMin, initiatePlainMin+64)
	copy(plain, m.kp.Public[:])
	vouchNonce := plain[32:48]
	if _, err := io.ReadFull(m.rand, vouchNonce); err != nil {
		return nil, err
	}
	vouchKey := precompute(&m.kp.Secret, &m.serverShort)
	box.SealAfterPrecomputation(plain[48:48], vouchPlain[:], nonce24(prefixVouch, vouchNonce), &vouchKey)
	clear(vouchKey[:])
	plain = zmtp.AppendMetadata(plain, local)

	in := initiateCmd{Cookie: m.cookie, Nonce: m.nonce}
	in.Box = box.SealAfterPrecomputation(make([]byte, 0, len(plain)+box.Overhead), plain, shortNonce(prefixInitiate, m.nonce), &m.shortShared)
	m.nonce++
	return in.append(make([]byte, 0, initiateMinBody+len(plain))), nil
}

func (m *clientMech) onReady(body []byte) (zmtp.Metadata, error) {
	r, _, err := parseReady(body)
	if err != nil {
		return nil, err
	}
	plain, ok := box.OpenAfterPrecomputation(make([]byte, 0, len(r.Box)), r.Box, shortNonce(prefixReady, r.Nonce), &m.shortShared)
	if !ok {
		return nil, fmt.Errorf("%w: READY box does not open", ErrAuth)
	}
	m.peerNonce = r.Nonce
	return zmtp.ParseMetadata(plain)
}

func (m *clientMech) cipher() *messageCipher {
	return &messageCipher{
		send:      newMsgBox(&m.shortShared, prefixMsgC),
		recv:      newMsgBox(&m.shortShared, prefixMsgS),
		sendNonce: m.nonce,
		recvNonce: m.peerNonce,
	}
}

func (m *clientMech) wipe() {
	m.shortSec.Zero()
	clear(m.longShared[:])
	clear(m.shortShared[:])
}

// messageCipher is the zmtp.MessageCipher of a CURVE connection: MESSAGE
// commands with strictly increasing short nonces. zmtp calls Seal from its
// writer goroutine and Open from its reader goroutine only, so each
// direction has one owner and no lock.
type messageCipher struct {
	send, recv msgBox
	sendNonce  uint64 // next nonce to send
	recvNonce  uint64 // last nonce received; the next must exceed it
}

// Wipe zeroes the keys of both directions; zmtp calls it once the
// connection has ended, after the last Seal and Open.
func (c *messageCipher) Wipe() {
	c.send.zero()
	c.recv.zero()
}

// Seal appends a MESSAGE frame carrying one frame.
func (c *messageCipher) Seal(dst []byte, flags byte, body []byte) ([]byte, error) {
	if c.sendNonce == math.MaxUint64 {
		return dst, ErrNonceLimit
	}
	n := c.sendNonce
	c.sendNonce++
	var inner byte
	if flags&zmtp.FlagMore != 0 {
		inner |= innerMore
	}
	if flags&zmtp.FlagCommand != 0 {
		inner |= innerCommand
	}
	// The outer frame is a plain data frame, as libzmq sends it (a libzmq
	// peer would take an outer COMMAND bit for a command it does not know
	// and drop the message); the inner flags say more and command.
	dst = zmtp.AppendFrameHeader(dst, 0, messageMin+len(body))
	dst = append(dst, byte(len(cmdMessage)))
	dst = append(dst, cmdMessage...)
	dst = binary.BigEndian.AppendUint64(dst, n)
	start := len(dst)
	dst = append(dst, make([]byte, 16)...) // tag, written by sealInPlace
	dst = append(dst, inner)
	dst = append(dst, body...)
	c.send.sealInPlace(dst[start:], n)
	return dst, nil
}

// Open authenticates and decrypts a MESSAGE frame body (with or without
// the COMMAND bit on the outer frame: libzmq sends it without) in place:
// the body returned is a slice of b. A box that does not open (b is then
// left as it was) and a nonce that does not exceed the last one are errors
// that end the connection.
func (c *messageCipher) Open(b []byte) (byte, []byte, error) {
	m, _, err := parseMessage(b)
	if err != nil {
		return 0, nil, err
	}
	n, bx := m.Nonce, m.Box
	out := bx[16:] // decrypted in place: zmtp gives b to Open for good
	if !c.recv.open(out, bx, n) {
		return 0, nil, fmt.Errorf("%w: MESSAGE box with nonce %d does not open", ErrAuth, n)
	}
	if n <= c.recvNonce {
		return 0, nil, fmt.Errorf("%w: MESSAGE nonce %d after %d", ErrNonce, n, c.recvNonce)
	}
	c.recvNonce = n
	var flags byte
	if out[0]&innerMore != 0 {
		flags |= zmtp.FlagMore
	}
	if out[0]&innerCommand != 0 {
		flags |= zmtp.FlagCommand
	}
	return flags, out[1:], nil
}
