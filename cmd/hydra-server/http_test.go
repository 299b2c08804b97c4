package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
)

// TestHTTPDefaultTaken: with the default --http taken (by this test, or
// already by another server) the server warns once, naming --http, and
// runs; the same address given explicitly is an error naming --http.
func TestHTTPDefaultTaken(t *testing.T) {
	if ln, err := net.Listen("tcp", "127.0.0.1:8500"); err == nil {
		defer ln.Close()
	}
	p, _ := startServer(t, nil)
	testutil.Eventually(t, 10*time.Second, "the warning", func() bool { return strings.Contains(p.stderr(), "http: not listening") })
	if !strings.Contains(p.stderr(), "level=WARN") || !strings.Contains(p.stderr(), "--http") || strings.Count(p.stderr(), "http: not listening") != 1 {
		t.Fatalf("stderr:\n%s", p.stderr())
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderr())
	}
	ctx := testutil.Context(t, 10*time.Second)
	code, _, errs := runCmd(ctx, "--port", "0", "--http", "127.0.0.1:8500")
	if code == 0 || !strings.Contains(errs, "--http") || !strings.Contains(errs, "8500") {
		t.Fatalf("explicit --http that is taken: exit %d, stderr %q", code, errs)
	}
}

// TestHTTPServesConsul: --http HOST:0 serves the Consul API; --http ""
// serves nothing.
func TestHTTPServesConsul(t *testing.T) {
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p, _ := startServer(t, nil, "--http", addr)
	var body string
	testutil.Eventually(t, 10*time.Second, "agent/self over --http", func() bool {
		resp, err := http.Get("http://" + addr + "/v1/agent/self")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode == 200
	})
	if !strings.Contains(body, `"Datacenter":"dc1"`) {
		t.Fatalf("agent/self: %s", body)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	p, _ = startServer(t, nil, "--http", "")
	if strings.Contains(p.stderr(), "http:") {
		t.Fatalf("--http \"\" still logs HTTP:\n%s", p.stderr())
	}
	p.signal(syscall.SIGTERM)
	p.wait()
}

// TestHTTPTokenFileSIGHUP: from this machine's own non-loopback address
// (not loopback, so the token rule applies), a write needs a token of
// --http-token-file, and SIGHUP re-reads the file.
func TestHTTPTokenFileSIGHUP(t *testing.T) {
	local := testutil.NonLoopbackIP(t)
	const tokA, tokB = "token-a-0123456789abcdef", "token-b-0123456789abcdef"
	file := filepath.Join(t.TempDir(), "http.tokens")
	if err := os.WriteFile(file, []byte(tokA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(local, strconv.Itoa(freePort(t)))
	p, _ := startServer(t, nil, "--http", addr, "--http-token-file", file)
	register := func(token string) int { // a service per token: each is one client identity
		req, _ := http.NewRequest("PUT", "http://"+addr+"/v1/agent/service/register", strings.NewReader(`{"Name":"w-`+token[6:7]+`","Port":1,"Address":"10.0.0.1"}`))
		req.Header.Set("X-Consul-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	testutil.Eventually(t, 10*time.Second, "a write with token A", func() bool { return register(tokA) == 200 })
	if code := register(tokB); code != 403 {
		t.Fatalf("a write with a token not in the file: %d, want 403", code)
	}
	if err := os.WriteFile(file, []byte(tokB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	testutil.Eventually(t, 10*time.Second, "SIGHUP reloaded", func() bool { return strings.Contains(p.stderr(), "reloaded") })
	if a, b := register(tokA), register(tokB); a != 403 || b != 200 {
		t.Fatalf("after SIGHUP: token A %d (want 403), token B %d (want 200)\n%s", a, b, p.stderr())
	}
	p.signal(syscall.SIGTERM)
	p.wait()
}
