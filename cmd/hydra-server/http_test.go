package main

import (
	"io"
	"net"
	"net/http"
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
