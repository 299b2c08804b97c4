package curve

import (
	"encoding/binary"

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

// salsaInput returns the sixteen input words of Salsa20 for key and
// counter, as the reference lays them out.
func salsaInput(counter *[16]byte, key *[32]byte) [16]uint32 {
	return [16]uint32{
		le(salsa.Sigma[0:]), le(key[0:]), le(key[4:]), le(key[8:]),
		le(key[12:]), le(salsa.Sigma[4:]), le(counter[0:]), le(counter[4:]),
		le(counter[8:]), le(counter[12:]), le(salsa.Sigma[8:]), le(key[16:]),
		le(key[20:]), le(key[24:]), le(key[28:]), le(salsa.Sigma[12:]),
	}
}

// le is a function, not the method value binary.LittleEndian.Uint32, which
// would make counter and key escape (an allocation per message).
func le(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func putBlockCounter(counter *[16]byte, block uint64) {
	binary.LittleEndian.PutUint64(counter[8:], block)
}
