package secure

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestZ85SpecVector is the test vector of rfc.zeromq.org spec 32.
func TestZ85SpecVector(t *testing.T) {
	raw := []byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B}
	enc, err := Z85Encode(raw)
	if err != nil || enc != "HelloWorld" {
		t.Fatalf("Z85Encode = %q, %v; want HelloWorld", enc, err)
	}
	dec, err := Z85Decode("HelloWorld")
	if err != nil || !bytes.Equal(dec, raw) {
		t.Fatalf("Z85Decode = % x, %v; want % x", dec, err, raw)
	}
}

func TestZ85Errors(t *testing.T) {
	for _, s := range []string{"Hello", "HelloWorl", "Hello\"orld", "Hell~World", "#####", "%nSc0"} {
		_, err := Z85Decode(s)
		if s == "Hello" || s == "%nSc0" {
			// Valid lengths and characters: "Hello" decodes; "%nSc0" is
			// 0xFFFFFFFF, the largest value a group may hold.
			if err != nil {
				t.Errorf("Z85Decode(%q) = %v, want success", s, err)
			}
			continue
		}
		if !errors.Is(err, ErrZ85) {
			t.Errorf("Z85Decode(%q) error = %v, want ErrZ85", s, err)
		}
	}
	if b, _ := Z85Decode("%nSc0"); !bytes.Equal(b, []byte{0xFF, 0xFF, 0xFF, 0xFF}) {
		t.Errorf("Z85Decode(%%nSc0) = % x", b)
	}
	// One more than 2^32-1 overflows.
	if _, err := Z85Decode("%nSc1"); !errors.Is(err, ErrZ85) {
		t.Errorf("Z85Decode(%%nSc1) = %v, want overflow error", err)
	}
	if _, err := Z85Encode([]byte{1, 2, 3}); !errors.Is(err, ErrZ85) {
		t.Errorf("Z85Encode of 3 bytes = %v, want ErrZ85", err)
	}
}

func TestZ85RoundTrip(t *testing.T) {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i * 7)
	}
	s, err := Z85Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Z85Decode(s)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("round trip: %v", err)
	}
}

// TestCurveKeypairKnownAnswer derives the public keys of the example key
// pairs in libzmq's zmq_curve(7) manual from their secret keys: X25519
// and Z85 exactly as libzmq does them.
func TestCurveKeypairKnownAnswer(t *testing.T) {
	for _, c := range []struct{ sec, pub string }{
		{docClientSecret, docClientPublic},
		{docServerSecret, docServerPublic},
	} {
		kp := mustKeyPair(t, c.sec)
		if got := kp.Public.String(); got != c.pub {
			t.Errorf("public key of %s = %s, want %s", c.sec, got, c.pub)
		}
		if got := kp.Secret.Z85(); got != c.sec {
			t.Errorf("secret key re-encodes as %s, want %s", got, c.sec)
		}
		if s := kp.Secret.String(); strings.Contains(s, c.sec[:8]) {
			t.Errorf("SecretKey.String reveals the key: %s", s)
		}
	}
}

func TestGenerateKeyPair(t *testing.T) {
	a, b := newKeyPair(t), newKeyPair(t)
	if a.Public.Equal(b.Public) {
		t.Fatal("two generated key pairs share a public key")
	}
	again, _ := KeyPairFromSecret(a.Secret)
	if !again.Public.Equal(a.Public) {
		t.Fatal("public key does not derive from the secret key")
	}
	if len(a.Public.String()) != Z85KeyLen || len(a.Secret.Z85()) != Z85KeyLen {
		t.Fatal("keys are not 40 Z85 characters")
	}
	a.Zero()
	if a.Secret != (SecretKey{}) {
		t.Fatal("Zero left key material")
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.key")
	kp, err := Keygen(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("secret key file mode %04o, want 0600", fi.Mode().Perm())
		}
		fi, _ = os.Stat(PublicKeyPath(path))
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("public key file mode %04o, want 0644", fi.Mode().Perm())
		}
	}
	got, err := LoadKeyPair(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Public.Equal(kp.Public) || !got.Secret.Equal(&kp.Secret) {
		t.Fatal("loaded key pair differs from the written one")
	}
	pub, err := LoadPublicKey(PublicKeyPath(path))
	if err != nil || !pub.Equal(kp.Public) {
		t.Fatalf("LoadPublicKey = %v, %v", pub, err)
	}
	pubText, _ := os.ReadFile(PublicKeyPath(path))
	if bytes.Contains(pubText, []byte("secret-key")) {
		t.Fatal("public certificate contains the secret key")
	}

	// No overwrite without force, for either file.
	if _, err := Keygen(path, false); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("Keygen over an existing key: %v, want ErrKeyExists", err)
	}
	os.Remove(path)
	if _, err := Keygen(path, false); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("Keygen over an existing public key: %v, want ErrKeyExists", err)
	}
	kp2, err := Keygen(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if kp2.Public.Equal(kp.Public) {
		t.Fatal("force did not write a new key")
	}

	// Missing file.
	if _, err := LoadKeyPair(filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKeyPair(missing) = %v, want fs.ErrNotExist", err)
	}
	// World-readable secret key.
	if runtime.GOOS != "windows" {
		os.Chmod(path, 0o644)
		_, err := LoadKeyPair(path)
		if !errors.Is(err, ErrKeyPermissions) || !strings.Contains(err.Error(), "0644") {
			t.Fatalf("LoadKeyPair(0644) = %v, want ErrKeyPermissions naming the mode", err)
		}
		os.Chmod(path, 0o640) // group-readable is allowed (e.g. a hydra group)
		if _, err := LoadKeyPair(path); err != nil {
			t.Fatalf("LoadKeyPair(0640) = %v", err)
		}
	}
	// The public certificate is not a secret key file.
	os.Chmod(PublicKeyPath(path), 0o600)
	if _, err := LoadKeyPair(PublicKeyPath(path)); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("LoadKeyPair(public cert) = %v, want ErrKeyFile", err)
	}
}

func TestParseKeyPairMismatch(t *testing.T) {
	text := "curve\n    public-key = \"" + docClientPublic + "\"\n    secret-key = \"" + docServerSecret + "\"\n"
	if _, err := ParseKeyPair([]byte(text)); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("mismatched pair: %v, want ErrKeyFile", err)
	}
	// pyzmq's and czmq's format, with metadata, parses.
	text = "#   ****  Generated on 2024-01-01 by pyzmq  ****\nmetadata\n    name = \"x\"\ncurve\n    public-key = \"" +
		docServerPublic + "\"\n    secret-key = \"" + docServerSecret + "\"\n"
	kp, err := ParseKeyPair([]byte(text))
	if err != nil || kp.Public.String() != docServerPublic {
		t.Fatalf("pyzmq certificate: %v", err)
	}
}

// TestKeyFilesReadByPyzmq checks that pyzmq's zmq.auth.load_certificate
// reads the files we write, and that we read the ones pyzmq writes.
func TestKeyFilesReadByPyzmq(t *testing.T) {
	py := findPython(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "hydra.key")
	kp, err := Keygen(path, false)
	if err != nil {
		t.Fatal(err)
	}
	script := `
import sys, zmq.auth
pub, sec = zmq.auth.load_certificate(sys.argv[1])
pub2, none = zmq.auth.load_certificate(sys.argv[1] + ".pub")
assert none is None, none
print(pub.decode(), sec.decode(), pub2.decode())
p, s = zmq.auth.create_certificates(sys.argv[2], "py")
print(s)
`
	out, err := exec.Command(py, "-c", script, path, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("pyzmq: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(lines[0])
	if len(f) != 3 || f[0] != kp.Public.String() || f[1] != kp.Secret.Z85() || f[2] != kp.Public.String() {
		t.Fatalf("pyzmq read %q", lines[0])
	}
	os.Chmod(lines[1], 0o600)
	pykp, err := LoadKeyPair(lines[1])
	if err != nil {
		t.Fatalf("reading pyzmq's secret certificate: %v", err)
	}
	pypub, err := LoadPublicKey(strings.TrimSuffix(lines[1], "_secret"))
	if err != nil || !pypub.Equal(pykp.Public) {
		t.Fatalf("reading pyzmq's public certificate: %v", err)
	}
}

func TestAllowListFile(t *testing.T) {
	a, b := newKeyPair(t), newKeyPair(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "allow")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# peers\n\n" + a.Public.String() + "   # alice\n  \t\n")
	al, err := LoadAllowList(path)
	if err != nil {
		t.Fatal(err)
	}
	if !al.Authorize(a.Public) || al.Authorize(b.Public) || al.Len() != 1 {
		t.Fatal("allow-list does not hold exactly alice")
	}
	// Reload picks up changes.
	write(a.Public.String() + "\n" + b.Public.String() + "\n")
	if err := al.Reload(); err != nil {
		t.Fatal(err)
	}
	if !al.Authorize(b.Public) || al.Len() != 2 {
		t.Fatal("reload did not add bob")
	}
	// A bad file leaves the old list in force and names the line.
	write(a.Public.String() + "\nnot-a-key\n")
	err = al.Reload()
	if !errors.Is(err, ErrKeyFile) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("Reload(bad) = %v, want ErrKeyFile naming line 2", err)
	}
	if !al.Authorize(b.Public) {
		t.Fatal("a failed reload dropped the old keys")
	}
	write(a.Public.String() + " trailing words\n")
	if err := al.Reload(); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("text after a key: %v", err)
	}
	// A commented-out key is a comment ('#' can never start a key: the
	// largest 32-bit group is "%nSc0").
	write("#" + a.Public.String() + "\n# " + b.Public.String() + "\n")
	if err := al.Reload(); err != nil {
		t.Fatal(err)
	}
	if al.Authorize(a.Public) || al.Authorize(b.Public) || al.Len() != 0 {
		t.Fatal("a commented-out key was allowed")
	}
	if _, err := Z85Decode("#0000"); err == nil {
		t.Fatal("a Z85 group starting with '#' decoded")
	}
	if _, err := LoadAllowList(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing allow-list: %v", err)
	}
}

func TestAuthorizers(t *testing.T) {
	k := newKeyPair(t).Public
	if Authorized(nil, k) {
		t.Fatal("nil Authorizer allowed a key")
	}
	if !Authorized(AllowAny(), k) {
		t.Fatal("AllowAny refused a key")
	}
	if Authorized(NewAllowList(), k) {
		t.Fatal("empty allow-list allowed a key")
	}
	if err := NewAllowList().Reload(); err == nil {
		t.Fatal("Reload without a file succeeded")
	}
}
