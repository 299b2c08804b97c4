package secure

import (
	"bytes"
	"testing"
)

func TestSignerDerivedAndVerifies(t *testing.T) {
	kp, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	a, b := kp.Signer(), kp.Signer()
	if a.Public != b.Public {
		t.Fatal("the signing key is not derived deterministically from the secret")
	}
	other, _ := GenerateKeyPair()
	if o := other.Signer(); o.Public == a.Public {
		t.Fatal("two secrets give one signing key")
	}
	msg := []byte("origin record")
	sig := a.Sign(msg)
	if !a.Public.Verify(msg, sig) {
		t.Fatal("a signature does not verify")
	}
	if a.Public.Verify([]byte("origin recorD"), sig) || a.Public.Verify(msg, sig[:63]) {
		t.Fatal("an altered record or a short signature verifies")
	}
	pk, err := ParseSignPublicKey(a.Public.String())
	if err != nil || pk != a.Public {
		t.Fatalf("Z85 round trip: %v", err)
	}
	if got := a.AppendSign([]byte{1}, msg); !bytes.Equal(got[1:], sig) {
		t.Fatal("AppendSign differs from Sign")
	}
}
