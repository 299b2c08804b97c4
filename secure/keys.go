package secure

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
)

// KeySize is the size of a Curve25519 key in bytes.
const KeySize = 32

// Z85KeyLen is the length of a Z85-encoded key: 40 characters, as libzmq's
// zmq_curve_keypair writes them.
const Z85KeyLen = 40

// PublicKey is a Curve25519 public key. It is not secret: String gives its
// Z85 form, and it may be logged.
type PublicKey [KeySize]byte

// SecretKey is a Curve25519 secret key. Its String method does not reveal
// it; use Z85 to encode it deliberately. Zero it when done.
type SecretKey [KeySize]byte

// KeyPair is a server's identity: the same pair serves CURVE on ZMTP links
// and Noise on tunnels.
type KeyPair struct {
	Public PublicKey
	Secret SecretKey
}

// GenerateKeyPair makes a new key pair from crypto/rand, as
// zmq_curve_keypair does: 32 random bytes are the secret key (clamped by
// X25519 when used, stored as drawn), the public key is their product with
// the base point.
func GenerateKeyPair() (KeyPair, error) { return GenerateKeyPairFrom(rand.Reader) }

// GenerateKeyPairFrom is GenerateKeyPair drawing the secret from r: the
// CURVE mechanism makes its short-term keys with it, from a source tests
// can make deterministic.
func GenerateKeyPairFrom(r io.Reader) (KeyPair, error) {
	var s SecretKey
	if _, err := io.ReadFull(r, s[:]); err != nil {
		return KeyPair{}, fmt.Errorf("secure: generate key: %w", err)
	}
	kp, err := KeyPairFromSecret(s)
	s.Zero()
	return kp, err
}

// KeyPairFromSecret derives the public key of s.
func KeyPairFromSecret(s SecretKey) (KeyPair, error) {
	pub, err := curve25519.X25519(s[:], curve25519.Basepoint)
	if err != nil {
		return KeyPair{}, fmt.Errorf("secure: derive public key: %w", err)
	}
	kp := KeyPair{Secret: s}
	copy(kp.Public[:], pub)
	clear(pub)
	return kp, nil
}

// Zero overwrites the secret key.
func (kp *KeyPair) Zero() { kp.Secret.Zero() }

// ParsePublicKey decodes a 40-character Z85 public key.
func ParsePublicKey(z string) (PublicKey, error) {
	var k PublicKey
	err := parseKey(k[:], z)
	return k, err
}

// ParseSecretKey decodes a 40-character Z85 secret key.
func ParseSecretKey(z string) (SecretKey, error) {
	var k SecretKey
	err := parseKey(k[:], z)
	return k, err
}

func parseKey(dst []byte, z string) error {
	if len(z) != Z85KeyLen {
		return fmt.Errorf("%w: a key is %d Z85 characters, got %d", ErrZ85, Z85KeyLen, len(z))
	}
	b, err := Z85Decode(z)
	if err != nil {
		return err
	}
	copy(dst, b)
	clear(b)
	return nil
}

// String returns the Z85 encoding of k.
func (k PublicKey) String() string { return string(AppendZ85(make([]byte, 0, Z85KeyLen), k[:])) }

// Equal compares two public keys in constant time.
func (k PublicKey) Equal(o PublicKey) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// IsZero reports whether k is all zeros (no key).
func (k PublicKey) IsZero() bool { return k.Equal(PublicKey{}) }

// Z85 returns the Z85 encoding of the secret key, for writing key files.
func (s *SecretKey) Z85() string { return string(AppendZ85(make([]byte, 0, Z85KeyLen), s[:])) }

// String does not reveal the key.
func (s SecretKey) String() string { return "SecretKey(redacted)" }

// GoString does not reveal the key either (%#v).
func (s SecretKey) GoString() string { return "SecretKey(redacted)" }

// Equal compares two secret keys in constant time.
func (s *SecretKey) Equal(o *SecretKey) bool { return subtle.ConstantTimeCompare(s[:], o[:]) == 1 }

// Zero overwrites the key.
func (s *SecretKey) Zero() { clear(s[:]) }
