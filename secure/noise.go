package secure

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"time"

	"github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/cpu"
)

// Tunnels use the Noise Protocol Framework (revision 34) through
// github.com/flynn/noise: Curve25519 (the server's key pair, the same one
// CURVE uses), BLAKE2s, and AES-256-GCM or ChaCha20-Poly1305, with
// x/crypto's curve25519, blake2s and chacha20poly1305 and the standard
// library's AES-GCM (x/crypto has none). See doc.go for the wire format.

// NoiseCipher selects the AEAD of a tunnel.
type NoiseCipher uint8

const (
	// CipherAuto is AES-GCM where the CPU has AES instructions (AES-NI and
	// carry-less multiply on amd64, the AES and PMULL extensions on
	// arm64, ...), ChaCha20-Poly1305 otherwise.
	CipherAuto NoiseCipher = iota
	CipherAESGCM
	CipherChaChaPoly
)

func (c NoiseCipher) String() string {
	switch c {
	case CipherAESGCM:
		return "AESGCM"
	case CipherChaChaPoly:
		return "ChaChaPoly"
	}
	return "auto"
}

// HasAESHardware reports whether this CPU runs AES-GCM in hardware, which
// is when CipherAuto picks it.
func HasAESHardware() bool {
	switch runtime.GOARCH {
	case "amd64":
		return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ
	case "arm64":
		return cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
	case "s390x":
		return cpu.S390X.HasAES && cpu.S390X.HasAESGCM
	case "ppc64", "ppc64le":
		return cpu.PPC64.IsPOWER8
	}
	return false
}

func (c NoiseCipher) resolve() NoiseCipher {
	if c == CipherAuto {
		if HasAESHardware() {
			return CipherAESGCM
		}
		return CipherChaChaPoly
	}
	return c
}

// aeadFunc is a noise.CipherFunc over a cipher.AEAD whose Cipher keeps its
// nonce buffer in the returned value, so records cost no allocation. A
// Cipher is only ever used by the one owner of its CipherState.
type aeadFunc struct {
	name string
	le   bool // ChaChaPoly encodes the counter little-endian, AESGCM big-endian
	new  func(key []byte) (cipher.AEAD, error)
}

func (f aeadFunc) CipherName() string { return f.name }

func (f aeadFunc) Cipher(k [32]byte) noise.Cipher {
	a, err := f.new(k[:])
	clear(k[:])
	if err != nil {
		panic(err) // only for a key that is not 32 bytes, which cannot happen
	}
	return &aeadCipher{a: a, le: f.le}
}

type aeadCipher struct {
	a     cipher.AEAD
	le    bool
	nonce [12]byte
}

func (c *aeadCipher) setNonce(n uint64) []byte {
	if c.le {
		binary.LittleEndian.PutUint64(c.nonce[4:], n)
	} else {
		binary.BigEndian.PutUint64(c.nonce[4:], n)
	}
	return c.nonce[:]
}

func (c *aeadCipher) Encrypt(out []byte, n uint64, ad, plaintext []byte) []byte {
	return c.a.Seal(out, c.setNonce(n), plaintext, ad)
}

func (c *aeadCipher) Decrypt(out []byte, n uint64, ad, ciphertext []byte) ([]byte, error) {
	return c.a.Open(out, c.setNonce(n), ciphertext, ad)
}

var (
	cipherAESGCM = aeadFunc{name: "AESGCM", new: func(k []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}}
	cipherChaChaPoly = aeadFunc{name: "ChaChaPoly", le: true, new: chacha20poly1305.New}
)

func suiteFor(c NoiseCipher) noise.CipherSuite {
	if c == CipherAESGCM {
		return noise.NewCipherSuite(noise.DH25519, cipherAESGCM, noise.HashBLAKE2s)
	}
	return noise.NewCipherSuite(noise.DH25519, cipherChaChaPoly, noise.HashBLAKE2s)
}

// The preamble: what an initiator sends before its first handshake
// message, 8 bytes, also the Noise prologue (so tampering with it fails
// the handshake). Its first byte is 'H', never 0xFF, which is how one
// listening port tells a tunnel from a ZMTP peer (whose greeting starts
// with 0xFF).
const (
	// PreambleMagic starts every tunnel connection.
	PreambleMagic = "HYNZ"
	// PreambleSize is the length of the preamble.
	PreambleSize    = 8
	preambleVersion = 1
	patternIK       = 'I'
	patternXX       = 'X'
	suiteAESGCM     = 'A'
	suiteChaChaPoly = 'C'
)

// IsTunnelPreamble reports whether b, the first bytes a peer sent (at
// least 1), can start a tunnel preamble. A listener shared with ZMTP peeks
// one byte: 0xFF is ZMTP, 'H' a tunnel.
func IsTunnelPreamble(b []byte) bool {
	n := min(len(b), len(PreambleMagic))
	return n > 0 && string(b[:n]) == PreambleMagic[:n]
}

func appendPreamble(dst []byte, pattern byte, c NoiseCipher) []byte {
	s := byte(suiteChaChaPoly)
	if c == CipherAESGCM {
		s = suiteAESGCM
	}
	return append(append(dst, PreambleMagic...), preambleVersion, pattern, s, 0)
}

// parsePreamble checks a preamble and returns its pattern and cipher.
func parsePreamble(b []byte) (pattern byte, c NoiseCipher, err error) {
	if len(b) < PreambleSize {
		return 0, 0, fmt.Errorf("%w: %d bytes: %w", ErrPreamble, len(b), io.ErrUnexpectedEOF)
	}
	if string(b[:4]) != PreambleMagic {
		return 0, 0, fmt.Errorf("%w: starts % x, not a tunnel", ErrPreamble, b[:4])
	}
	if b[4] != preambleVersion || b[7] != 0 {
		return 0, 0, fmt.Errorf("%w: version %d (reserved %d), want %d", ErrPreamble, b[4], b[7], preambleVersion)
	}
	switch b[5] {
	case patternIK, patternXX:
	default:
		return 0, 0, fmt.Errorf("%w: unknown pattern %q", ErrPreamble, b[5])
	}
	switch b[6] {
	case suiteAESGCM:
		c = CipherAESGCM
	case suiteChaChaPoly:
		c = CipherChaChaPoly
	default:
		return 0, 0, fmt.Errorf("%w: unknown cipher %q", ErrPreamble, b[6])
	}
	return b[5], c, nil
}

// MaxHandshakePayload bounds NoiseConfig.Payload.
const MaxHandshakePayload = 1024

// Handshake message lengths with an empty payload; a payload adds its own
// length. XX's first message carries no payload (it would travel in
// clear).
const (
	ik1Len = 32 + 48 + 16 // e, s (encrypted), payload tag
	ik2Len = 32 + 16      // e, payload tag
	xx1Len = 32           // e
	xx2Len = 32 + 48 + 16 // e, s, payload tag
	xx3Len = 48 + 16      // s, payload tag
)

// NoiseConfig configures both ends of a tunnel handshake. Every field
// says its default.
type NoiseConfig struct {
	// Static is this server's key pair (required): the same pair as CURVE.
	Static KeyPair

	// Peers decides which static keys of the other side are accepted: the
	// initiator's at a responder, the responder's at an initiator without
	// RemoteKey. Default nil: nobody (use AllowAny by name to accept
	// anybody, or an AllowList).
	Peers Authorizer

	// RemoteKey, at an initiator, is the responder's static public key
	// when it is known: the handshake is then Noise IK (one round trip,
	// the responder pinned to that key, Peers not consulted for it). Zero:
	// Noise XX, and the responder's key must pass Peers.
	RemoteKey PublicKey

	// Cipher is the AEAD an initiator asks for; a responder accepts
	// either. Default CipherAuto.
	Cipher NoiseCipher

	// HandshakeTimeout bounds a whole handshake. Default 10s.
	HandshakeTimeout time.Duration

	// Payload travels inside the handshake (at most MaxHandshakePayload
	// bytes); the peer reads it with Conn.PeerPayload, which only exists
	// once the handshake completed. Not secret from an unauthenticated
	// peer: in XX the responder sends its payload before the initiator
	// has proved who it is. Default none.
	Payload []byte

	// HandshakeRate and HandshakeBurst rate-limit handshakes per source
	// address (IPv4 address, IPv6 /64) at a Responder: a token bucket
	// refilled at HandshakeRate per second holding HandshakeBurst tokens.
	// Defaults 5 and 10.
	HandshakeRate  float64
	HandshakeBurst int

	// MaxHandshakes bounds the handshakes a Listener runs at once; more
	// connections are closed at once. Default 64.
	MaxHandshakes int

	// Logger receives handshake failures (Info) and link failures (Warn).
	// Default: discard.
	Logger *slog.Logger

	rand io.Reader // ephemeral keys; tests make them deterministic
}

func (c *NoiseConfig) withDefaults() NoiseConfig {
	o := *c
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.HandshakeRate <= 0 {
		o.HandshakeRate = 5
	}
	if o.HandshakeBurst <= 0 {
		o.HandshakeBurst = 10
	}
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = 64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.rand == nil {
		o.rand = rand.Reader
	}
	return o
}

func (c *NoiseConfig) check() error {
	if len(c.Payload) > MaxHandshakePayload {
		return fmt.Errorf("secure: handshake payload of %d bytes, limit %d", len(c.Payload), MaxHandshakePayload)
	}
	if c.Static.Public.IsZero() {
		return errors.New("secure: NoiseConfig.Static is not set")
	}
	return nil
}

// Initiate runs the initiator side of a tunnel handshake on nc: IK when
// cfg.RemoteKey is set, XX otherwise, within cfg.HandshakeTimeout (and
// ctx). On success the returned Conn owns nc; on failure nc is closed.
func Initiate(ctx context.Context, nc net.Conn, cfg *NoiseConfig) (*Conn, error) {
	o := cfg.withDefaults()
	if err := o.check(); err != nil {
		nc.Close()
		return nil, err
	}
	var c *Conn
	err := withDeadline(ctx, nc, o.HandshakeTimeout, func() error {
		var err error
		c, err = initiate(nc, &o)
		return err
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.start()
	return c, nil
}

// withDeadline runs a handshake step under a deadline that ctx can cut
// short, mapping a timeout to ErrHandshakeTimeout.
func withDeadline(ctx context.Context, nc net.Conn, d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := nc.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	err := f()
	if !stop() {
		// Cancelled: even a handshake that just finished counts as failed,
		// since the deadline may now be in the past.
		return fmt.Errorf("secure: handshake cancelled: %w", context.Cause(ctx))
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w after %v: %w", ErrHandshakeTimeout, d, err)
		}
		return err
	}
	return nc.SetDeadline(time.Time{})
}

func initiate(nc net.Conn, o *NoiseConfig) (*Conn, error) {
	cph := o.Cipher.resolve()
	pattern, hp := byte(patternXX), noise.HandshakeXX
	if !o.RemoteKey.IsZero() {
		pattern, hp = patternIK, noise.HandshakeIK
	}
	pre := appendPreamble(nil, pattern, cph)
	static := dhKey(&o.Static)
	defer clear(static.Private)
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   suiteFor(cph),
		Random:        o.rand,
		Pattern:       hp,
		Initiator:     true,
		Prologue:      pre,
		StaticKeypair: static,
		PeerStatic:    peerStatic(o.RemoteKey),
	})
	if err != nil {
		return nil, err
	}
	defer func() { clear(hs.LocalEphemeral().Private) }()
	name := "Noise_" + hp.Name + "_25519_" + cph.String() + "_BLAKE2s"

	if pattern == patternIK {
		msg1, _, _, err := hs.WriteMessage(nil, o.Payload)
		if err != nil {
			return nil, err
		}
		if err := writeMsgs(nc, pre, msg1); err != nil {
			return nil, err
		}
		msg2, err := readMsg(nc, "IK message 2", ik2Len, ik2Len+MaxHandshakePayload)
		if err != nil {
			return nil, err
		}
		payload, cs1, cs2, err := hs.ReadMessage(nil, msg2)
		if err != nil {
			return nil, fmt.Errorf("%w: IK message 2 does not decrypt (the responder is not %s?): %v", ErrNoiseHandshake, o.RemoteKey, err)
		}
		c := newConn(nc, o, cs1, cs2, o.RemoteKey, payload, name)
		// Key confirmation: an empty record proves to the responder that
		// this is a live initiator, not a replayed first message (and, in
		// XX, the responder's tells the initiator its key was accepted).
		if err := c.writeConfirm(); err != nil {
			return nil, err
		}
		return c, nil
	}

	msg1, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, err
	}
	if err := writeMsgs(nc, pre, msg1); err != nil {
		return nil, err
	}
	msg2, err := readMsg(nc, "XX message 2", xx2Len, xx2Len+MaxHandshakePayload)
	if err != nil {
		return nil, err
	}
	payload, _, _, err := hs.ReadMessage(nil, msg2)
	if err != nil {
		return nil, fmt.Errorf("%w: XX message 2 does not decrypt: %v", ErrNoiseHandshake, err)
	}
	var rs PublicKey
	copy(rs[:], hs.PeerStatic())
	if !authorize(o.Peers, rs) {
		return nil, fmt.Errorf("%w: responder static key %s", ErrUnauthorized, rs)
	}
	msg3, cs1, cs2, err := hs.WriteMessage(nil, o.Payload)
	if err != nil {
		return nil, err
	}
	if err := writeMsgs(nc, nil, msg3); err != nil {
		return nil, err
	}
	c := newConn(nc, o, cs1, cs2, rs, payload, name)
	// The responder checks our key last; its empty record says it did.
	if err := c.readConfirm(); err != nil {
		return nil, err
	}
	return c, nil
}

// Responder answers tunnel handshakes. It holds the per-source rate
// limiter, so use one Responder for all connections of a port.
type Responder struct {
	cfg     NoiseConfig
	limiter *rateLimiter
}

// NewResponder returns a Responder for cfg (copied; see NoiseConfig for
// defaults).
func NewResponder(cfg *NoiseConfig) (*Responder, error) {
	o := cfg.withDefaults()
	if err := o.check(); err != nil {
		return nil, err
	}
	return &Responder{cfg: o, limiter: newRateLimiter(o.HandshakeRate, o.HandshakeBurst)}, nil
}

// Accept runs the responder side of a handshake on nc, whose first byte
// has not been consumed (a shared listener peeks it with a wrapper that
// replays it). It enforces the per-source rate limit, the handshake
// deadline, the preamble, and cfg.Peers for the initiator's key, and for
// IK waits for the initiator's key confirmation. On failure nc is closed
// and the reason logged (Info) and returned; nothing the initiator's
// handshake payload carried is exposed.
func (r *Responder) Accept(ctx context.Context, nc net.Conn) (*Conn, error) {
	log := r.cfg.Logger.With("remote", nc.RemoteAddr().String())
	if !r.limiter.allow(nc.RemoteAddr(), time.Now()) {
		nc.Close()
		log.Info("noise: handshake refused", "err", ErrRateLimited)
		return nil, ErrRateLimited
	}
	var c *Conn
	err := withDeadline(ctx, nc, r.cfg.HandshakeTimeout, func() error {
		var err error
		c, err = r.respond(nc)
		return err
	})
	if err != nil {
		nc.Close()
		log.Info("noise: handshake failed", "err", err)
		return nil, err
	}
	c.start()
	log.Debug("noise: handshake done", "peer", c.peer.String(), "suite", c.suite)
	return c, nil
}

func (r *Responder) respond(nc net.Conn) (*Conn, error) {
	o := &r.cfg
	var pre [PreambleSize]byte
	if _, err := io.ReadFull(nc, pre[:]); err != nil {
		return nil, fmt.Errorf("%w: reading: %w", ErrPreamble, err)
	}
	pattern, cph, err := parsePreamble(pre[:])
	if err != nil {
		return nil, err
	}
	hp := noise.HandshakeXX
	if pattern == patternIK {
		hp = noise.HandshakeIK
	}
	static := dhKey(&o.Static)
	defer clear(static.Private)
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   suiteFor(cph),
		Random:        o.rand,
		Pattern:       hp,
		Initiator:     false,
		Prologue:      pre[:],
		StaticKeypair: static,
	})
	if err != nil {
		return nil, err
	}
	defer func() { clear(hs.LocalEphemeral().Private) }()
	name := "Noise_" + hp.Name + "_25519_" + cph.String() + "_BLAKE2s"

	if pattern == patternIK {
		msg1, err := readMsg(nc, "IK message 1", ik1Len, ik1Len+MaxHandshakePayload)
		if err != nil {
			return nil, err
		}
		payload, _, _, err := hs.ReadMessage(nil, msg1)
		if err != nil {
			return nil, fmt.Errorf("%w: IK message 1 does not decrypt (the initiator has a wrong key for us?): %v", ErrNoiseHandshake, err)
		}
		var rs PublicKey
		copy(rs[:], hs.PeerStatic())
		if !authorize(o.Peers, rs) {
			return nil, fmt.Errorf("%w: unknown initiator static key %s", ErrUnauthorized, rs)
		}
		msg2, cs1, cs2, err := hs.WriteMessage(nil, o.Payload)
		if err != nil {
			return nil, err
		}
		if err := writeMsgs(nc, nil, msg2); err != nil {
			return nil, err
		}
		c := newConn(nc, o, cs2, cs1, rs, payload, name)
		if err := c.readConfirm(); err != nil {
			return nil, err
		}
		return c, nil
	}

	msg1, err := readMsg(nc, "XX message 1", xx1Len, xx1Len)
	if err != nil {
		return nil, err
	}
	if _, _, _, err := hs.ReadMessage(nil, msg1); err != nil {
		return nil, fmt.Errorf("%w: XX message 1: %v", ErrNoiseHandshake, err)
	}
	msg2, _, _, err := hs.WriteMessage(nil, o.Payload)
	if err != nil {
		return nil, err
	}
	if err := writeMsgs(nc, nil, msg2); err != nil {
		return nil, err
	}
	msg3, err := readMsg(nc, "XX message 3", xx3Len, xx3Len+MaxHandshakePayload)
	if err != nil {
		return nil, err
	}
	payload, cs1, cs2, err := hs.ReadMessage(nil, msg3)
	if err != nil {
		return nil, fmt.Errorf("%w: XX message 3 does not decrypt: %v", ErrNoiseHandshake, err)
	}
	var rs PublicKey
	copy(rs[:], hs.PeerStatic())
	if !authorize(o.Peers, rs) {
		return nil, fmt.Errorf("%w: unknown initiator static key %s", ErrUnauthorized, rs)
	}
	c := newConn(nc, o, cs2, cs1, rs, payload, name)
	if err := c.writeConfirm(); err != nil {
		return nil, err
	}
	return c, nil
}

// Listen accepts tunnel connections on l: each handshake runs in its own
// goroutine (at most MaxHandshakes at once) and Accept returns only
// connections that completed one. A failed handshake closes only its own
// connection, with its reason logged.
func (r *Responder) Listen(l net.Listener) *Listener {
	ln := &Listener{
		inner: l, r: r,
		conns: make(chan *Conn),
		sem:   make(chan struct{}, r.cfg.MaxHandshakes),
		done:  make(chan struct{}),
	}
	ln.ctx, ln.cancel = context.WithCancel(context.Background())
	ln.wg.Add(1)
	go ln.acceptLoop()
	return ln
}

func dhKey(kp *KeyPair) noise.DHKey {
	return noise.DHKey{Private: append([]byte(nil), kp.Secret[:]...), Public: append([]byte(nil), kp.Public[:]...)}
}

func peerStatic(k PublicKey) []byte {
	if k.IsZero() {
		return nil
	}
	return append([]byte(nil), k[:]...)
}

// writeMsgs writes an optional preamble and one length-prefixed handshake
// message in a single write.
func writeMsgs(nc net.Conn, pre, msg []byte) error {
	b := make([]byte, 0, len(pre)+2+len(msg))
	b = append(b, pre...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	_, err := nc.Write(b)
	return err
}

// readMsg reads one length-prefixed handshake message whose length must be
// within [lo, hi].
func readMsg(r io.Reader, what string, lo, hi int) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrNoiseHandshake, what, err)
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < lo || n > hi {
		return nil, fmt.Errorf("%w: %s of %d bytes, want %d to %d", ErrNoiseHandshake, what, n, lo, hi)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: reading %s: %w", ErrNoiseHandshake, what, err)
	}
	return b, nil
}
