package curve

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/crypto/nacl/box"

	"github.com/hydra-net/hydra/secure"
)

func sealBox(m []byte, n *[24]byte, k *[32]byte) []byte {
	return box.SealAfterPrecomputation(nil, m, n, k)
}

// TestBoxKnownAnswer is the crypto_box test vector of the NaCl
// distribution (tests/box.c, also in libsodium): x/crypto's box, which the
// handshake uses, and our in-place MESSAGE box must both produce it.
func TestBoxKnownAnswer(t *testing.T) {
	h := func(s string) []byte {
		b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var alicesk secure.SecretKey
	var bobpk secure.PublicKey
	copy(alicesk[:], h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	copy(bobpk[:], h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
	nonce := h("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
	m := h(`be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffc
		e5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb31
		0e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde
		048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f93776384864
		5e0705`)
	want := h(`f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce
		48332ea7164d96a4476fb8c531a1186ac0dfc17c98dce87b4da7f011ec48c972
		71d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab932164548e526ae
		90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b3
		7973f622a43d14a6599b1f654cb45a74e355a5`)
	shared := precompute(&alicesk, &bobpk)
	var n24 [24]byte
	copy(n24[:], nonce)
	if got := sealBox(m, &n24, &shared); !bytes.Equal(got, want) {
		t.Fatalf("box.SealAfterPrecomputation:\n got %x\nwant %x", got, want)
	}
	mb := newMsgBox(&shared, string(nonce[:16]))
	ctr := uint64(0)
	for _, b := range nonce[16:] {
		ctr = ctr<<8 | uint64(b)
	}
	buf := append(make([]byte, 16), m...)
	mb.sealInPlace(buf, ctr)
	if !bytes.Equal(buf, want) {
		t.Fatalf("msgBox.sealInPlace:\n got %x\nwant %x", buf, want)
	}
	out := make([]byte, len(m))
	if !mb.open(out, want, ctr) || !bytes.Equal(out, m) {
		t.Fatal("msgBox.open does not recover the message")
	}
	want[20] ^= 1
	if mb.open(out, want, ctr) {
		t.Fatal("msgBox.open accepted a corrupted box")
	}
}
