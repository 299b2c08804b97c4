package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/secure"
)

// TestCurveServer: with --curve the registry port speaks CURVE only; a
// client whose key is on --allow-clients gets in, others do not, and SIGHUP
// re-reads the allow-list.
func TestCurveServer(t *testing.T) {
	dir := t.TempDir()
	keygen := func(name string) (string, secure.KeyPair) { return tunnelKeys(t, dir, name) }
	serverKey, server := keygen("server.key")
	aliceKey, alice := keygen("alice.key")
	bobKey, bob := keygen("bob.key")
	allow := filepath.Join(dir, "allowed.keys")
	if err := os.WriteFile(allow, []byte("# who may talk to this server\n"+alice.Public.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, ep := startServer(t, nil, "--key-file", serverKey, "--curve", "--allow-clients", allow, "--service", "ssh=tcp://127.0.0.1:22")
	port := portOf(t, ep)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lookup := func(extra ...string) (int, string, string) {
		return runCmd(ctx, append([]string{"lookup", "ssh", "--port", port, "--timeout", "2s"}, extra...)...)
	}

	if code, out, errs := lookup("--server-key", server.Public.String(), "--client-key", aliceKey); code != 0 || !strings.Contains(out, "127.0.0.1:22") {
		t.Fatalf("allowed client: %d %q %q", code, out, errs)
	}
	// Each refusal says why, not only that no reply came; one the server
	// states (a mechanism mismatch, an ERROR) ends the command at once,
	// not when --timeout runs out, and is logged once, not at every retry
	// (nor followed by a warning about the request it could not send).
	refusal := func(errs string) bool {
		return !strings.Contains(errs, "deadline exceeded") && strings.Count(errs, "handshake") <= 1 &&
			!strings.Contains(errs, "zmtp: handshake failed") && !strings.Contains(errs, "unsent")
	}
	if code, out, errs := lookup(); code != 2 || errs != "hydra-server: the server at "+ep+" runs CURVE: pass --server-key with its public key (its KEY.pub file, or the Z85 text in single quotes) and --client-key with a key on its --allow-clients file\n" {
		t.Fatalf("a NULL client against a CURVE server: %d %q %q", code, out, errs)
	}
	// What to fix, in one line each, with exit status 2.
	if code, out, errs := lookup("--server-key", server.Public.String(), "--client-key", bobKey); code != 2 || !refusal(errs) ||
		!strings.Contains(errs, "hydra-server: the server at "+ep+" refused this client's key: add its public key ("+bob.Public.String()+") to the server's --allow-clients file") {
		t.Fatalf("a client whose key is not allowed: %d %q %q", code, out, errs)
	}
	// A wrong server key fails fast, not at --timeout; the server logs
	// its Warn once for that source however often the client retries.
	for range 3 {
		start := time.Now()
		if code, out, errs := runCmd(ctx, "lookup", "ssh", "--port", port, "--timeout", "20s", "--server-key", alice.Public.String(), "--client-key", aliceKey); code != 2 ||
			!strings.Contains(errs, "hydra-server: no CURVE answer from "+ep+": is --server-key the server's public key?") || time.Since(start) > 5*time.Second {
			t.Fatalf("a client pinning the wrong server key: %d after %v: %q %q", code, time.Since(start), out, errs)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the server logs the wrong-key HELLO", func() bool {
		return strings.Contains(srv.stderr(), "HELLO box does not open")
	})
	if n := strings.Count(srv.stderr(), "HELLO box does not open"); n != 1 {
		t.Errorf("the server logged the same wrong-key failure %d times, want once:\n%s", n, srv.stderr())
	}

	// Bob is added; SIGHUP makes the server re-read the file.
	if err := os.WriteFile(allow, []byte(alice.Public.String()+"\n"+bob.Public.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.signal(syscall.SIGHUP)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, out, errs := lookup("--server-key", server.Public.String(), "--client-key", bobKey)
		if code == 0 && strings.Contains(out, "127.0.0.1:22") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob still refused after SIGHUP: %d %q %q\nserver: %s", code, out, errs, srv.stderr())
		}
	}
	srv.signal(syscall.SIGTERM)
	if code := srv.wait(); code != 0 {
		t.Fatalf("server exit %d: %s", code, srv.stderr())
	}
}

func TestCurveFlagErrors(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{"--curve"},            // no key
		{"--allow-any-client"}, // no key
		{"--join", "127.0.0.1:1", "--join-key", "x"}, // key without --curve
		{"lookup", "x", "--client-key", "k"},         // client key without a server key
		{"lookup", "x", "--server-key", "not-z85"},
	} {
		if code, _, errs := runCmd(ctx, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%q)", args, code, errs)
		}
	}
}
