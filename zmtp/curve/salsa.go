package curve

import (
	//lint:ignore SA1019 CurveZMQ is defined on Salsa20/Poly1305 (crypto_box); the AEADs x/crypto recommends are a different wire format
	"golang.org/x/crypto/salsa20/salsa"
)

// xorKeyStream is salsa.XORKeyStream (Salsa20/20, counter = 8-byte nonce
// and 8-byte little-endian block counter) with the eight-block AVX2 path
// for the whole 512-byte chunks where the CPU has it. It advances counter
// past the blocks it uses only as far as the wide path goes; callers pass
// a counter they do not reuse.
func xorKeyStream(out, in []byte, counter *[16]byte, key *[32]byte) {
	n := xorKeyStreamWide(out, in, counter, key)
	if n < len(in) {
		salsa.XORKeyStream(out[n:len(in)], in[n:], counter, key)
	}
}
