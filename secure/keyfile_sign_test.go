package secure

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyFileSignKey: keygen's KEY.pub carries the signing key as
// `    sign-key = "<Z85>"` next to public-key, LoadPublicIdentity reads it,
// an old KEY.pub without it reads ok=false, and RewritePublicKey adds it.
func TestKeyFileSignKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	kp, err := Keygen(path, false)
	if err != nil {
		t.Fatal(err)
	}
	sg := kp.Signer()
	pubText, err := os.ReadFile(PublicKeyPath(path))
	if err != nil {
		t.Fatal(err)
	}
	want := "    sign-key = \"" + sg.Public.String() + "\"\n"
	if !strings.Contains(string(pubText), "curve\n    public-key = \""+kp.Public.String()+"\"\n"+want) {
		t.Fatalf("KEY.pub lacks the sign-key line %q after public-key:\n%s", want, pubText)
	}
	for _, p := range []string{path, PublicKeyPath(path)} {
		pub, sign, ok, err := LoadPublicIdentity(p)
		if err != nil || !ok || pub != kp.Public || sign != sg.Public {
			t.Fatalf("%s: %v %v %v %v", p, pub, sign, ok, err)
		}
	}
	if _, err := LoadKeyPair(path); err != nil {
		t.Fatal(err)
	}
	// An old KEY.pub (no sign-key): ok=false; RewritePublicKey mends it.
	old := strings.Replace(string(pubText), want, "", 1)
	if err := os.WriteFile(PublicKeyPath(path), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if pub, _, ok, err := LoadPublicIdentity(PublicKeyPath(path)); err != nil || ok || pub != kp.Public {
		t.Fatalf("old KEY.pub: %v %v %v", pub, ok, err)
	}
	if _, s, err := RewritePublicKey(path); err != nil || s != sg.Public {
		t.Fatalf("rewrite: %v %v", s, err)
	}
	if _, sign, ok, err := LoadPublicIdentity(PublicKeyPath(path)); err != nil || !ok || sign != sg.Public {
		t.Fatalf("after rewrite: %v %v %v", sign, ok, err)
	}
	// A secret file whose sign-key is not its own is refused.
	other, _ := GenerateKeyPair()
	os2 := other.Signer()
	sec, _ := os.ReadFile(path)
	bad := strings.Replace(string(sec), "curve\n", "curve\n    sign-key = \""+os2.Public.String()+"\"\n", 1)
	if _, err := ParseKeyPair([]byte(bad)); err == nil || !strings.Contains(err.Error(), "sign-key does not belong") {
		t.Fatalf("mismatched sign-key: %v", err)
	}
	// A bad sign-key in a public file is an error naming it.
	badPub := strings.Replace(old, "curve\n", "curve\n    sign-key = \"short\"\n", 1)
	bp := filepath.Join(t.TempDir(), "bad.pub")
	os.WriteFile(bp, []byte(badPub), 0o644)
	if _, _, _, err := LoadPublicIdentity(bp); err == nil || !strings.Contains(err.Error(), "sign-key") {
		t.Fatalf("bad sign-key: %v", err)
	}
}
