package curve

import (
	"encoding/binary"

	"golang.org/x/crypto/nacl/box"
	//lint:ignore SA1019 CurveZMQ is defined on Salsa20/Poly1305 (crypto_box); the AEADs x/crypto recommends are a different wire format
	"golang.org/x/crypto/poly1305"
	//lint:ignore SA1019 CurveZMQ is defined on Salsa20/Poly1305 (crypto_box); the AEADs x/crypto recommends are a different wire format
	"golang.org/x/crypto/salsa20/salsa"

	"github.com/hydra-net/hydra/secure"
)

// CurveZMQ boxes are NaCl crypto_box: XSalsa20-Poly1305 under the key that
// box.Precompute derives from two Curve25519 keys. The handshake uses
// x/crypto's nacl/box as it is. MESSAGE boxes take a faster path that is
// byte-for-byte the same construction (tests compare them with
// box.SealAfterPrecomputation):
//
//   - a MESSAGE nonce is a constant 16-byte prefix per direction
//     ("CurveZMQMESSAGEC" or "...S") and an 8-byte counter. XSalsa20 feeds
//     the first 16 nonce bytes to HSalsa20 to get the Salsa20 key, so that
//     key is the same for every message of a direction: it is computed once
//     (msgBox), not per message as secretbox.Seal does;
//   - the box is sealed in place in the outgoing frame and opened straight
//     into the destination buffer, so there is no temporary plaintext copy
//     and no allocation per message.

// msgBox is XSalsa20-Poly1305 with a fixed 16-byte nonce prefix whose
// HSalsa20 subkey is precomputed.
type msgBox struct {
	sub [32]byte
}

func newMsgBox(shared *[32]byte, prefix string) msgBox {
	var p [16]byte
	copy(p[:], prefix)
	var m msgBox
	salsa.HSalsa20(&m.sub, &p, shared, &salsa.Sigma)
	return m
}

func (m *msgBox) zero() { clear(m.sub[:]) }

// firstBlock computes keystream block 0 for short nonce n: its first 32
// bytes are the Poly1305 key, the other 32 encrypt the first 32 bytes of
// the message.
func (m *msgBox) firstBlock(n uint64, counter *[16]byte, block *[64]byte) {
	binary.BigEndian.PutUint64(counter[:8], n)
	salsa.XORKeyStream(block[:], block[:], counter, &m.sub)
	counter[8] = 1
}

// sealInPlace encrypts buf[16:] in place and writes the tag to buf[:16]:
// buf becomes the box.
func (m *msgBox) sealInPlace(buf []byte, n uint64) {
	var counter [16]byte
	var block [64]byte
	m.firstBlock(n, &counter, &block)
	msg := buf[poly1305.TagSize:]
	head := min(len(msg), 32)
	for i := 0; i < head; i++ {
		msg[i] ^= block[32+i]
	}
	if len(msg) > 32 {
		xorKeyStream(msg[32:], msg[32:], &counter, &m.sub)
	}
	var key [32]byte
	copy(key[:], block[:32])
	var tag [16]byte
	poly1305.Sum(&tag, msg, &key)
	copy(buf, tag[:])
	clear(key[:])
	clear(block[:])
}

// open checks box and decrypts it into dst (len(box)-16 bytes, not
// overlapping box unless exactly at box[16:]). It reports false, leaving
// dst unspecified, when the box does not authenticate.
func (m *msgBox) open(dst, bx []byte, n uint64) bool {
	if len(bx) < poly1305.TagSize || len(dst) != len(bx)-poly1305.TagSize {
		return false
	}
	var counter [16]byte
	var block [64]byte
	m.firstBlock(n, &counter, &block)
	var key [32]byte
	copy(key[:], block[:32])
	var tag [16]byte
	copy(tag[:], bx)
	ct := bx[poly1305.TagSize:]
	ok := poly1305.Verify(&tag, ct, &key)
	clear(key[:])
	if ok {
		head := min(len(ct), 32)
		for i := 0; i < head; i++ {
			dst[i] = ct[i] ^ block[32+i]
		}
		if len(ct) > 32 {
			xorKeyStream(dst[32:], ct[32:], &counter, &m.sub)
		}
	}
	clear(block[:])
	return ok
}

// precompute returns the crypto_box_beforenm key of a secret and a public
// key.
func precompute(sec *secure.SecretKey, pub *secure.PublicKey) [32]byte {
	var k [32]byte
	box.Precompute(&k, (*[32]byte)(pub), (*[32]byte)(sec))
	return k
}

// nonce24 builds a 24-byte nonce from a prefix and a suffix.
func nonce24(prefix string, suffix []byte) *[24]byte {
	var n [24]byte
	copy(n[:], prefix)
	copy(n[len(prefix):], suffix)
	return &n
}

// shortNonce builds a 24-byte nonce from a 16-byte prefix and an 8-byte
// big-endian counter (libzmq's put_uint64).
func shortNonce(prefix string, n uint64) *[24]byte {
	var b [24]byte
	copy(b[:], prefix)
	binary.BigEndian.PutUint64(b[16:], n)
	return &b
}
