package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// TestRemovedKeyFlags: --allow-file and --allow-any-key, on the command
// line, in $HYDRA_* or in the config file, name what replaced them; a
// client's --key-file names --client-key.
func TestRemovedKeyFlags(t *testing.T) {
	cleanEnv(t)
	ctx := context.Background()
	conf := filepath.Join(t.TempDir(), "hydra.conf")
	if err := os.WriteFile(conf, []byte("allow-file /etc/hydra/allowed.keys\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--allow-file", "x"}, []string{"--allow-tunnels FILE", "--allow-clients FILE", "--allow-servers", "--allow-admins"}},
		{[]string{"--allow-any-key"}, []string{"--allow-any-client"}},
		{[]string{"--config", conf}, []string{"hydra.conf:1: ", "--allow-tunnels FILE"}},
		{[]string{"lookup", "x", "--key-file", "k"}, []string{"--client-key FILE"}},
	} {
		code, _, errs := runCmd(ctx, c.args...)
		for _, w := range c.want {
			if code != 2 || !strings.Contains(errs, w) {
				t.Errorf("%v: exit %d %q, want %q", c.args, code, errs, w)
			}
		}
	}
	t.Setenv("HYDRA_ALLOW_FILE", "/etc/hydra/allowed.keys")
	if code, _, errs := runCmd(ctx); code != 2 || !strings.Contains(errs, "$HYDRA_ALLOW_FILE: --allow-file was one list") {
		t.Errorf("$HYDRA_ALLOW_FILE: exit %d %q", code, errs)
	}
}

// TestClientIgnoresServerKeyFile: a client command reading the server's
// config file does not take the server's key-file as its own CURVE key
// (nor fail on it): its own key is --client-key.
func TestClientIgnoresServerKeyFile(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	serverKey := filepath.Join(dir, "server.key")
	if _, err := secure.Keygen(serverKey, false); err != nil {
		t.Fatal(err)
	}
	_, ep := startServer(t, nil, "--key-file", serverKey, "--service", "ssh=tcp://127.0.0.1:22")
	conf := filepath.Join(dir, "hydra.conf")
	if err := os.WriteFile(conf, []byte("port "+portOf(t, ep)+"\nkey-file "+serverKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HYDRA_KEY_FILE", serverKey)
	ctx := testutil.Context(t, 20*time.Second)
	if code, out, errs := runCmd(ctx, "lookup", "ssh", "--config", conf, "--timeout", "5s"); code != 0 || !strings.Contains(out, "127.0.0.1:22") {
		t.Errorf("lookup with the server's config: %d %q %q", code, out, errs)
	}
}

// TestCurveDefaultBeyondLoopback: with --key-file and a --host beyond
// loopback the ZMTP port runs CURVE unless --plaintext, whose warning
// names the flag to drop.
func TestCurveDefaultBeyondLoopback(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	serverKey := filepath.Join(dir, "server.key")
	kp, err := secure.Keygen(serverKey, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Context(t, 30*time.Second)
	p, ep := startServer(t, nil, "--host", "0.0.0.0", "--key-file", serverKey, "--service", "ssh=tcp://127.0.0.1:22")
	port := portOf(t, ep)
	if code, out, errs := runCmd(ctx, "lookup", "ssh", "--port", port, "--timeout", "5s"); code != 2 || !strings.Contains(errs, "runs CURVE") {
		t.Errorf("a NULL client of --key-file --host 0.0.0.0: %d %q %q", code, out, errs)
	}
	if strings.Contains(p.stderr(), "plaintext") {
		t.Errorf("a CURVE server warns of plaintext:\n%s", p.stderr())
	}
	// The server's key is on no list: CURVE refuses it as a client too.
	if code, _, errs := runCmd(ctx, "lookup", "ssh", "--port", port, "--timeout", "5s", "--server-key", kp.Public.String(), "--client-key", serverKey); code != 2 || !strings.Contains(errs, "refused this client's key") {
		t.Errorf("an unlisted key: %d %q", code, errs)
	}

	p2, ep2 := startServer(t, nil, "--host", "0.0.0.0", "--key-file", serverKey, "--plaintext", "--service", "ssh=tcp://127.0.0.1:22")
	if code, out, errs := runCmd(ctx, "lookup", "ssh", "--port", portOf(t, ep2), "--timeout", "5s"); code != 0 || !strings.Contains(out, "127.0.0.1:22") {
		t.Errorf("--plaintext: %d %q %q", code, out, errs)
	}
	testutil.Eventually(t, 5*time.Second, "the plaintext warning", func() bool { return strings.Contains(p2.stderr(), "plaintext (NULL)") })
	if s := p2.stderr(); !strings.Contains(s, "drop --plaintext") || strings.Contains(s, "configure keys") {
		t.Errorf("the warning does not name the flag:\n%s", s)
	}
	if code, _, errs := runCmd(ctx, "--key-file", serverKey, "--curve", "--plaintext"); code != 2 || !strings.Contains(errs, "exclude each other") {
		t.Errorf("--curve --plaintext: %d %q", code, errs)
	}
	// Join links follow the port: beyond loopback with a key file they are
	// CURVE, so each --join needs its --join-key (or --plaintext).
	if code, _, errs := runCmd(ctx, "--host", "0.0.0.0", "--port", "0", "--key-file", serverKey, "--join", "127.0.0.1:1"); code != 2 ||
		!strings.Contains(errs, "1 --join and 0 --join-key") || !strings.Contains(errs, "--plaintext") {
		t.Errorf("--join without --join-key on a CURVE port: %d %q", code, errs)
	}
}

// TestSighupDropsRevokedClient: SIGHUP after a client's key left
// --allow-clients closes that client's established connection (its redial
// is refused); other clients keep theirs.
func TestSighupDropsRevokedClient(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	serverKey := filepath.Join(dir, "server.key")
	server, err := secure.Keygen(serverKey, false)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := secure.GenerateKeyPair()
	bob, _ := secure.GenerateKeyPair()
	allow := allowFile(t, dir, alice.Public, bob.Public)
	p, ep := startServer(t, nil, "--key-file", serverKey, "--curve", "--allow-clients", allow)
	relay := testutil.NewRelay(t, strings.TrimPrefix(ep, "tcp://"), 0)
	cl := nodetest.RegistryClient(t, "tcp://"+relay.Addr(), registry.ClientConfig{Security: curve.Client(alice, server.Public)})
	ctx := testutil.Context(t, 20*time.Second)
	if _, err := cl.Lookup(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(allow, []byte(bob.Public.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.signal(syscall.SIGHUP)
	testutil.Eventually(t, 10*time.Second, "alice's connection closed and redialled", func() bool { return relay.Accepted() >= 2 })
	t.Logf("closed %v after SIGHUP", time.Since(start))
	if _, err := cl.Lookup(testutil.Context(t, 2*time.Second), "x"); err == nil {
		t.Error("alice still served")
	}
	testutil.Eventually(t, 5*time.Second, "the reload's log line", func() bool { return strings.Contains(p.stderr(), "SIGHUP: key lists reloaded") })
}
