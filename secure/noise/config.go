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
	DefaultMaxHandshakes    = 64
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

	// MaxHandshakes bounds the handshakes a Listener runs at once; more
	// connections are closed at once. Default 64 (DefaultMaxHandshakes).
	MaxHandshakes int

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
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	return c
}
