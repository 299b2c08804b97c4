package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/secure"
)

// TestHealthCommand: health finds the server's HTTP listener where the
// server's own flags put it (--http, HYDRA_HTTP, the --config file, the
// command line of --pid), on a CURVE server too, and exits 1 when nothing
// healthy answers (Docker's "unhealthy"), 2 on a usage error.
func TestHealthCommand(t *testing.T) {
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	n := nodetest.Start(t, node.Config{Keys: &kp, Curve: true, Access: node.Access{Clients: secure.NewAllowList()},
		HTTP: node.HTTPConfig{Addr: "127.0.0.1:0"}})
	addr := n.HTTPAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	okRun := func(what string, args ...string) {
		t.Helper()
		code, out, errs := runCmd(ctx, append([]string{"health"}, args...)...)
		if code != 0 || out != "ok "+n.Server().ID()+"\n" {
			t.Errorf("%s: health %v: %d %q %q", what, args, code, out, errs)
		}
	}
	// What the Containerfile ran before: list, on the server's port, fails
	// as soon as the server runs CURVE.
	if code, _, errs := runCmd(ctx, "list", "--port", portOf(t, n.Endpoint()), "--timeout", "3s"); code != 2 {
		t.Errorf("the old HEALTHCHECK (list --timeout 3s) against a CURVE server: %d %q, want the failure it was", code, errs)
	}
	okRun("--http", "--http", addr)

	dir := t.TempDir()
	conf := filepath.Join(dir, "hydra.conf")
	key := filepath.Join(dir, "server.key")
	if err := secure.WriteKeyPair(key, kp, false); err != nil {
		t.Fatal(err)
	}
	// The server's whole config file: CURVE on, another port, and --http.
	text := fmt.Sprintf("port 9999\ncurve true\nkey-file %s\nhttp %s\nmax-entries 10\n", key, addr)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	okRun("the server's --config", "--config", conf)

	t.Setenv("HYDRA_HTTP", addr)
	okRun("HYDRA_HTTP")
	os.Unsetenv("HYDRA_HTTP")

	// The real server, CURVE on, its --http in its --config file: health
	// --config with the same file, and health --pid, find it.
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srvConf := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(srvConf, []byte(fmt.Sprintf("port 0\ncurve true\nkey-file %s\nhttp %s\n", key, httpAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, _ := startServer(t, nil, "--config", srvConf)
	okServer := func(what string, args ...string) {
		t.Helper()
		var code int
		var out, errs string
		testutil.Eventually(t, 20*time.Second, what+": health answers", func() bool { // HTTP listens right after the banner
			code, out, errs = runCmd(ctx, append([]string{"health"}, args...)...)
			return code == 0
		})
		if !strings.HasPrefix(out, "ok ") {
			t.Errorf("%s: health %v: %d %q %q", what, args, code, out, errs)
		}
	}
	okServer("the server's --config", "--config", srvConf)
	okServer("--pid", "--pid", fmt.Sprint(srv.cmd.Process.Pid))
	// An idle process with a server's command line: --pid reads it.
	idle := exec.Command(os.Args[0], "--port", "9999", "--curve", "--key-file", key, "--http", addr)
	idle.Env = append(baseEnv(), "HYDRA_SERVER_TEST_IDLE=1")
	if err := idle.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { idle.Process.Kill(); idle.Wait() }()
	// Until its exec, a child's cmdline is this test's.
	testutil.Eventually(t, 10*time.Second, "the idle process's command line", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", idle.Process.Pid))
		return bytes.Contains(b, []byte("--http\x00"+addr))
	})
	okRun("--pid of a command line", "--pid", fmt.Sprint(idle.Process.Pid), "--timeout", "5s")
	// A Containerfile's HEALTHCHECK as it is written there (--pid 1), on a
	// CURVE server with its own --http: the command line of pid 1 is the
	// server's only inside the container, so only the file's line is
	// checked here.
	cf, err := os.ReadFile("../../deploy/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cf), `CMD ["/hydra-server", "health", "--pid", "1"`) {
		t.Errorf("deploy/Containerfile's HEALTHCHECK does not run health --pid 1")
	}

	// Nothing there: unhealthy, exit 1, saying where it asked.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	if code, _, errs := runCmd(ctx, "health", "--http", dead); code != 1 || !strings.Contains(errs, "unhealthy: no answer from http://"+dead+"/healthz") {
		t.Errorf("health of nothing: %d %q", code, errs)
	}
	if code, _, errs := runCmd(ctx, "health", "--http", ""); code != 2 || !strings.Contains(errs, "HTTP listener is off") {
		t.Errorf("health with --http '': %d %q", code, errs)
	}
	if code, _, errs := runCmd(ctx, "health", "--pid", "999999999"); code != 2 || !strings.Contains(errs, "--pid 999999999") {
		t.Errorf("health --pid of no process: %d %q", code, errs)
	}
}

func TestHealthURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8500": "http://127.0.0.1:8500/healthz", "0.0.0.0:1": "http://127.0.0.1:1/healthz",
		":2": "http://127.0.0.1:2/healthz", "[::]:3": "http://[::1]:3/healthz", "[::1]:4": "http://[::1]:4/healthz",
		"localhost:5": "http://localhost:5/healthz",
	} {
		if got, err := healthURL(in); err != nil || got != want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := healthURL("nope"); err == nil {
		t.Error("healthURL(nope) worked")
	}
}
