package curve

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand/v2"
	"testing"

	"golang.org/x/crypto/nacl/box"
	//lint:ignore SA1019 the reference the wide Salsa20 path is checked against
	"golang.org/x/crypto/salsa20/salsa"
	//lint:ignore SA1019 CurveZMQ is Poly1305
	"golang.org/x/crypto/poly1305"
)

// boxSizes are the lengths where the sealing path changes: the 32 bytes of
// the first keystream block, whole and partial 64-byte blocks, whole and
// partial 512-byte chunks of the eight-block path, and bulk sizes.
var boxSizes = []int{0, 1, 15, 16, 31, 32, 33, 63, 64, 65, 95, 96, 97, 479, 480, 481, 511, 512, 513,
	543, 544, 545, 1023, 1024, 1025, 4096, 16*1024 - 1, 16 * 1024, 16*1024 + 1, 64*1024 - 1, 64 * 1024, 64*1024 + 1, 64*1024 + 37}

// TestXORKeyStreamMatchesSalsa compares xorKeyStream (eight blocks at a
// time where AVX2 is there) with x/crypto's salsa.XORKeyStream for random
// keys, nonces and lengths, including block counters whose low word
// carries inside a chunk, in place and not.
func TestXORKeyStreamMatchesSalsa(t *testing.T) {
	t.Logf("AVX2 path: %v", useAVX2)
	rng := mrand.New(mrand.NewPCG(1, 2))
	starts := []uint64{0, 1, 0xFFFFFFFF - 3, 0xFFFFFFFF, 1<<40 + 5}
	for _, n := range boxSizes {
		for _, start := range starts {
			var key [32]byte
			var ctr [16]byte
			rand.Read(key[:])
			rand.Read(ctr[:8])
			binary.LittleEndian.PutUint64(ctr[8:], start)
			in := make([]byte, n)
			for i := range in {
				in[i] = byte(rng.Uint32())
			}
			want := make([]byte, n)
			ref := ctr
			salsa.XORKeyStream(want, in, &ref, &key)

			got := make([]byte, n)
			c := ctr
			xorKeyStream(got, in, &c, &key)
			if !bytes.Equal(got, want) {
				t.Fatalf("length %d, block counter %#x: keystream differs from x/crypto", n, start)
			}
			c = ctr
			xorKeyStream(in, in, &c, &key)
			if !bytes.Equal(in, want) {
				t.Fatalf("length %d, block counter %#x: in-place keystream differs from x/crypto", n, start)
			}
		}
	}
}

// TestMsgBoxMatchesNaClRandom seals and opens MESSAGE boxes under random
// keys and nonces at every size boundary and compares them byte for byte
// with nacl/box; a flipped bit anywhere must not open.
func TestMsgBoxMatchesNaClRandom(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	for round := 0; round < 4; round++ {
		var shared [32]byte
		rand.Read(shared[:])
		for _, prefix := range []string{prefixMsgC, prefixMsgS} {
			mb := newMsgBox(&shared, prefix)
			for _, n := range boxSizes {
				msg := make([]byte, n)
				rand.Read(msg)
				nonce := rng.Uint64()
				want := box.SealAfterPrecomputation(nil, msg, shortNonce(prefix, nonce), &shared)
				buf := append(make([]byte, 16), msg...)
				mb.sealInPlace(buf, nonce)
				if !bytes.Equal(buf, want) {
					t.Fatalf("length %d: sealed box differs from nacl/box", n)
				}
				out := make([]byte, n)
				if !mb.open(out, want, nonce) || !bytes.Equal(out, msg) {
					t.Fatalf("length %d: open of a nacl/box box failed", n)
				}
				bad := bytes.Clone(want)
				bad[rng.IntN(len(bad))] ^= 1 << rng.IntN(8)
				if mb.open(out, bad, nonce) {
					t.Fatalf("length %d: a box with a flipped bit opened", n)
				}
			}
		}
	}
}

func BenchmarkXORKeyStream64K(b *testing.B) {
	var key [32]byte
	var ctr [16]byte
	buf := make([]byte, 64*1024)
	b.Run("x-crypto", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			c := ctr
			salsa.XORKeyStream(buf, buf, &c, &key)
		}
	})
	b.Run("wide", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			c := ctr
			xorKeyStream(buf, buf, &c, &key)
		}
	})
}

func BenchmarkPoly1305_64K(b *testing.B) {
	var key [32]byte
	var tag [16]byte
	buf := make([]byte, 64*1024)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		poly1305.Sum(&tag, buf, &key)
	}
}

func BenchmarkMsgBox64K(b *testing.B) {
	var shared [32]byte
	mb := newMsgBox(&shared, prefixMsgC)
	buf := make([]byte, 16+64*1024)
	b.Run("seal", func(b *testing.B) {
		b.SetBytes(64 * 1024)
		for b.Loop() {
			mb.sealInPlace(buf, 1)
		}
	})
	bx := bytes.Clone(buf)
	b.Run("open", func(b *testing.B) {
		b.SetBytes(64 * 1024)
		for b.Loop() {
			if !mb.open(buf[16:], bx, 1) {
				b.Fatal("does not open")
			}
		}
	})
}

// TestMsgBoxNoAllocs: sealing and opening a bulk MESSAGE box allocate
// nothing (the keystream's counter and key must stay on the stack).
func TestMsgBoxNoAllocs(t *testing.T) {
	var shared [32]byte
	mb := newMsgBox(&shared, prefixMsgC)
	buf := make([]byte, 16+64*1024)
	mb.sealInPlace(buf, 1)
	bx := bytes.Clone(buf)
	seal := testing.AllocsPerRun(20, func() { mb.sealInPlace(buf, 1) })
	open := testing.AllocsPerRun(20, func() { mb.open(buf[16:], bx, 1) })
	if seal != 0 || open != 0 {
		t.Fatalf("allocations per 64 KiB box: seal %v, open %v, want 0", seal, open)
	}
}
