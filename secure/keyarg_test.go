package secure

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadPublicKey: a key flag's value is the Z85 text, or a key file:
// the public certificate, the secret one (its public half), a bare key.
func TestReadPublicKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.key")
	kp := mustKeyPair(t, docServerSecret)
	if err := WriteKeyPair(path, kp, false); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(dir, "bare")
	if err := os.WriteFile(bare, []byte(docServerPublic+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A path of exactly 40 Z85 characters is still read as a file.
	n := 40 - len(dir) - 1
	if n < 1 {
		t.Skipf("temporary directory %s too long for a 40-character path", dir)
	}
	long := filepath.Join(dir, strings.Repeat("k", n))
	if err := os.WriteFile(long, []byte(docServerPublic+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{docServerPublic, PublicKeyPath(path), path, bare, long} {
		k, err := ReadPublicKey(s)
		if err != nil || k.String() != docServerPublic {
			t.Errorf("ReadPublicKey(%q) = %v, %v", s, k, err)
		}
	}
	for s, want := range map[string]string{
		filepath.Join(dir, "nope.pub"):                "no such key file, and not a Z85 public key",
		strings.Replace(docServerPublic, "r", "~", 1): "neither a key file (no such file) nor a Z85 public key",
	} {
		if _, err := ReadPublicKey(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadPublicKey(%q): %v, want %q", s, err, want)
		}
	}
}

// TestAllowListTakesPublicCertificates: keygen's KEY.pub content may be
// pasted into an allow-list, beside bare Z85 lines; a secret key's may not.
func TestAllowListTakesPublicCertificates(t *testing.T) {
	dir := t.TempDir()
	a, b := mustKeyPair(t, docServerSecret), mustKeyPair(t, docClientSecret)
	var text []byte
	for i, kp := range []KeyPair{a, b} {
		path := filepath.Join(dir, string(rune('a'+i))+".key")
		if err := WriteKeyPair(path, kp, false); err != nil {
			t.Fatal(err)
		}
		pub, err := os.ReadFile(PublicKeyPath(path))
		if err != nil {
			t.Fatal(err)
		}
		text = append(text, pub...)
	}
	extra := newKeyPair(t)
	text = append(text, "\n# and one bare\n"+extra.Public.String()+"  # carol\n"...)
	text = append(text, "metadata\n    name = \"dave\"\ncurve\n    public-key = \""+b.Public.String()+"\"\n"...)
	keys, err := ParseAllowList(strings.NewReader(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	al := NewAllowList(keys...)
	if al.Len() != 3 || !al.Authorize(a.Public) || !al.Authorize(b.Public) || !al.Authorize(extra.Public) {
		t.Errorf("allow-list of %d keys: %v", al.Len(), al.Keys())
	}
	secret := appendCert(nil, &a, true)
	if _, err := ParseAllowList(strings.NewReader(string(secret))); err == nil || !strings.Contains(err.Error(), "line 8: a secret-key") {
		t.Errorf("a secret certificate: %v", err)
	}
	// Outside a certificate a name = value line is still an error.
	if _, err := ParseAllowList(strings.NewReader("public-key = \"" + a.Public.String() + "\"\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a stray public-key line: %v", err)
	}
}
