package secure

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"
)

// SignPublicKey is a server's Ed25519 public key: it verifies the records
// of the origin that server is (join). It is not secret; String gives its
// Z85 form (40 characters, like a Curve25519 key).
type SignPublicKey [ed25519.PublicKeySize]byte

// String is the key in Z85.
func (k SignPublicKey) String() string {
	s, _ := Z85Encode(k[:])
	return s
}

// ParseSignPublicKey decodes a 40-character Z85 signing public key.
func ParseSignPublicKey(z string) (SignPublicKey, error) {
	var k SignPublicKey
	err := parseKey(k[:], z)
	return k, err
}

// Verify reports whether sig is k's signature of msg.
func (k SignPublicKey) Verify(msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(k[:], msg, sig)
}

// Signer signs the records of this server's origin. It is derived from
// the Curve25519 secret key, so a key file made before signing existed
// has one too and nothing new needs keeping secret.
type Signer struct {
	Public SignPublicKey
	priv   ed25519.PrivateKey
}

// signInfo separates the signing seed from any other use of the secret.
const signInfo = "hydra origin signing key v1"

// Signer derives kp's signing key: HKDF-SHA256 of the Curve25519 secret
// gives the Ed25519 seed.
func (kp *KeyPair) Signer() Signer {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(hkdf.New(sha256.New, kp.Secret[:], nil, []byte(signInfo)), seed); err != nil {
		panic(fmt.Sprintf("secure: hkdf: %v", err)) // cannot happen: 32 bytes of a 8160-byte stream
	}
	priv := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	var s Signer
	s.priv = priv
	copy(s.Public[:], priv.Public().(ed25519.PublicKey))
	return s
}

// Sign signs msg. The zero Signer panics.
func (s Signer) Sign(msg []byte) []byte { return ed25519.Sign(s.priv, msg) }

// AppendSign appends the signature of msg to dst.
func (s Signer) AppendSign(dst, msg []byte) []byte { return append(dst, s.Sign(msg)...) }

// Zero overwrites the private key.
func (s *Signer) Zero() { clear(s.priv) }
