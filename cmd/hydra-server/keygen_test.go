package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hydra-net/hydra/secure"
)

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.key")
	var out bytes.Buffer
	io := stdio{out: &out, err: &out}
	if err := keygenCmd(context.Background(), io, []string{"--out", path}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key file: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
	kp, err := secure.LoadKeyPair(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := secure.LoadPublicKey(secure.PublicKeyPath(path))
	if err != nil || pub != kp.Public {
		t.Fatalf("public key file: %v, %v != %v", err, pub, kp.Public)
	}
	if z := kp.Public.String(); len(z) != 40 || !strings.Contains(out.String(), z) {
		t.Fatalf("printed %q, want the 40-character Z85 public key %q", out.String(), z)
	}

	// KEY.pub carries the signing key; --public writes KEY.pub again
	// (an old one lacks sign-key) and keeps the pair.
	if _, sign, ok, err := secure.LoadPublicIdentity(secure.PublicKeyPath(path)); err != nil || !ok || !strings.Contains(out.String(), "sign key "+sign.String()) {
		t.Fatalf("sign-key: %v %v, printed %q", ok, err, out.String())
	}
	if err := os.WriteFile(secure.PublicKeyPath(path), []byte(kp.Public.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := keygenCmd(context.Background(), io, []string{"--out", path, "--public"}); err != nil {
		t.Fatal(err)
	}
	if pub, _, ok, err := secure.LoadPublicIdentity(secure.PublicKeyPath(path)); err != nil || !ok || pub != kp.Public {
		t.Fatalf("after --public: %v %v %v", pub, ok, err)
	}
	if again, _ := secure.LoadKeyPair(path); again.Public != kp.Public {
		t.Fatal("keygen --public changed the key")
	}

	// No silent overwrite; --force replaces the pair.
	if err := keygenCmd(context.Background(), io, []string{"--out", path}); err == nil {
		t.Fatal("keygen overwrote an existing key without --force")
	}
	if again, _ := secure.LoadKeyPair(path); again.Public != kp.Public {
		t.Fatal("refused keygen still changed the key")
	}
	if err := keygenCmd(context.Background(), io, []string{"--out", path, "--force"}); err != nil {
		t.Fatal(err)
	}
	if again, _ := secure.LoadKeyPair(path); again.Public == kp.Public {
		t.Fatal("keygen --force kept the old key")
	}
}
