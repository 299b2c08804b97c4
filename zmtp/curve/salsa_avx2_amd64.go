//go:build amd64 && !purego && gc

package curve

import (
	"encoding/binary"

	//lint:ignore SA1019 CurveZMQ is defined on Salsa20/Poly1305 (crypto_box)
	"golang.org/x/crypto/salsa20/salsa"
	"golang.org/x/sys/cpu"
)

//go:generate go run gen_salsa_avx2.go

//go:noescape
func salsa20x8AVX2(out, in *byte, state *[16][8]uint32)

// useAVX2 selects the eight-block Salsa20 of salsa_avx2_amd64.s; x/crypto's
// amd64 assembly does four blocks with SSE2.
var useAVX2 = cpu.X86.HasAVX2

// xorKeyStreamWide XORs the keystream of counter (nonce and block counter)
// under key into out for as many whole 512-byte chunks of in as it can, and
// returns how many bytes it did, leaving the counter past them.
func xorKeyStreamWide(out, in []byte, counter *[16]byte, key *[32]byte) int {
	if !useAVX2 || len(in) < 8*64 {
		return 0
	}
	var st [16][8]uint32
	words := salsaInput(counter, key)
	for i, w := range words {
		for lane := range st[i] {
			st[i][lane] = w
		}
	}
	block := uint64(words[8]) | uint64(words[9])<<32
	done := 0
	for ; len(in)-done >= 8*64; done += 8 * 64 {
		for lane := range 8 {
			b := block + uint64(lane)
			st[8][lane], st[9][lane] = uint32(b), uint32(b>>32)
		}
		salsa20x8AVX2(&out[done], &in[done], &st)
		block += 8
	}
	putBlockCounter(counter, block)
	clear(st[:])
	return done
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
