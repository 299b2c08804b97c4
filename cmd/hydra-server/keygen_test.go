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
