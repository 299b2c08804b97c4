package noise

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/hydra-net/hydra/secure"
)

// The defaults of Config's fields.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultHandshakeRate    = 5.0 // handshakes per second per source
	DefaultHandshakeBurst   = 10
	DefaultMaxHandshakes    = 512
	// DefaultMaxHandshakesPerSource is node.DefaultHandshakesPerSource.
	DefaultMaxHandshakesPerSource = 32
	DefaultRecordTimeout          = 20 * time.Second
)

// MaxHandshakePayload bounds Config.Payload.
const MaxHandshakePayload = 1024

// Config configures both ends of a tunnel handshake. Its zero value is
// valid but for Static, which is required; every other field says its
// default.
type Config struct {
	// Static is this server's key pair (required): the same pair as CURVE.
	Static secure.KeyPair

	// Peers decides which static keys of the other side are accepted: the
	// initiator's at a responder, the responder's at an initiator without
	// RemoteKey. Default nil: nobody (use secure.AllowAny by name to
	// accept anybody, or a secure.AllowList).
	Peers secure.Authorizer

	// RemoteKey, at an initiator, is the responder's static public key
	// when it is known: the handshake is then Noise IK (one round trip,
	// the responder pinned to that key, Peers not consulted for it). Zero:
	// Noise XX, and the responder's key must pass Peers. Default zero.
	RemoteKey secure.PublicKey

	// Cipher is the AEAD an initiator asks for; a responder accepts
	// either. Default CipherAuto.
	Cipher Cipher

	// HandshakeTimeout bounds a whole handshake. Default 10s
	// (DefaultHandshakeTimeout).
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
	// Defaults 5 and 10 (DefaultHandshakeRate, DefaultHandshakeBurst).
	HandshakeRate  float64
	HandshakeBurst int

	// MaxHandshakes bounds the handshakes a Listener runs at once. Past
	// it, a newcomer takes the slot of the oldest handshake of the source
	// address running the most, if that source runs more than the
	// newcomer's would (internal/admission); else the newcomer is closed.
	// So stalled handshakes from a few addresses hold a slot only until a
	// fresh peer needs it. Default 512 (DefaultMaxHandshakes).
	MaxHandshakes int
	// MaxHandshakesPerSource bounds the handshakes a Listener runs at once
	// for one source address (IPv4 address, IPv6 /64); past it the source's
	// newcomers are closed. Default 32 (DefaultMaxHandshakesPerSource).
	MaxHandshakesPerSource int

	// RecordTimeout bounds how long one transport record may take to
	// arrive once its first byte has: a peer trickling a record (a full
	// one at under 3.2 KiB/s with the default) loses the link with
	// ErrRecordStalled. Reads do not extend it; the Conn's own read
	// deadline still applies. Default 20s (DefaultRecordTimeout).
	RecordTimeout time.Duration

	// Logger receives handshake failures (Info) and link failures (Warn).
	// Default: discard.
	Logger *slog.Logger

	rand io.Reader // ephemeral keys; tests make them deterministic
}

// Validate reports the first field that is not usable, by its name.
func (c Config) Validate() error {
	switch {
	case c.Static.Public.IsZero():
		return fmt.Errorf("noise: Config.Static is not set")
	case c.Cipher > CipherChaChaPoly:
		return fmt.Errorf("noise: Config.Cipher %d is not a cipher", c.Cipher)
	case c.HandshakeTimeout < 0:
		return fmt.Errorf("noise: Config.HandshakeTimeout %v is negative", c.HandshakeTimeout)
	case len(c.Payload) > MaxHandshakePayload:
		return fmt.Errorf("noise: Config.Payload of %d bytes, limit %d", len(c.Payload), MaxHandshakePayload)
	case c.HandshakeRate < 0 || math.IsNaN(c.HandshakeRate) || math.IsInf(c.HandshakeRate, 0):
		return fmt.Errorf("noise: Config.HandshakeRate %v is not a rate", c.HandshakeRate)
	case c.HandshakeBurst < 0:
		return fmt.Errorf("noise: Config.HandshakeBurst %d is negative", c.HandshakeBurst)
	case c.MaxHandshakes < 0:
		return fmt.Errorf("noise: Config.MaxHandshakes %d is negative", c.MaxHandshakes)
	case c.MaxHandshakesPerSource < 0:
		return fmt.Errorf("noise: Config.MaxHandshakesPerSource %d is negative", c.MaxHandshakesPerSource)
	case c.RecordTimeout < 0:
		return fmt.Errorf("noise: Config.RecordTimeout %v is negative", c.RecordTimeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.HandshakeRate == 0 {
		c.HandshakeRate = DefaultHandshakeRate
	}
	if c.HandshakeBurst == 0 {
		c.HandshakeBurst = DefaultHandshakeBurst
	}
	if c.MaxHandshakes == 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.MaxHandshakesPerSource == 0 {
		c.MaxHandshakesPerSource = DefaultMaxHandshakesPerSource
	}
	if c.RecordTimeout == 0 {
		c.RecordTimeout = DefaultRecordTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	return c
}
