package node_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
)

const (
	tokenA = "aaaaaaaaaaaaaaaaaaaaaaaa"
	tokenB = "bbbbbbbbbbbbbbbbbbbbbbbb"
)

func tokenFile(t *testing.T, tokens ...string) string {
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte("# tokens\n"+strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// call runs one request through the node's HTTP handler as if it came
// from remote.
func call(t *testing.T, n *nodetest.Running, remote, method, target, token, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	rec := httptest.NewRecorder()
	n.HTTPHandler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestHTTPTokenRule: beyond loopback, writes need a token of the file and
// reads are off (without a token) unless RemoteReads; a token is one
// client identity; Reload re-reads the file.
func TestHTTPTokenRule(t *testing.T) {
	file := tokenFile(t, tokenA, tokenB)
	n := nodetest.Start(t, node.Config{HTTP: node.HTTPConfig{Addr: "127.0.0.1:0", TokenFile: file}})
	const far, near = "192.0.2.10:4000", "127.0.0.2:4000"
	reg := `{"Name": "web", "ID": "w1", "Address": "10.0.0.1", "Port": 80}`
	for _, tc := range []struct {
		remote, method, path, token, body string
		code                              int
	}{
		{far, "GET", "/v1/agent/services", "", "", 403}, // reads are off beyond loopback
		{far, "GET", "/v1/agent/services", "not-a-token-at-all", "", 403},
		{far, "PUT", "/v1/agent/service/register", "", reg, 403},     // a write without a token
		{far, "PUT", "/v1/agent/service/register", tokenA, reg, 200}, // with one
		{far, "GET", "/v1/agent/services", tokenA, "", 200},
		{far, "PUT", "/v1/agent/service/deregister/w1", tokenB, "", 403}, // another identity
		{far, "GET", "/v1/agent/service/deregister/w1?token=" + tokenB, "", "", 403},
		{near, "GET", "/v1/agent/services", "", "", 200}, // 127.0.0.2 is loopback
		{far, "PUT", "/v1/agent/service/deregister/w1", tokenA, "", 200},
	} {
		if code, body := call(t, n, tc.remote, tc.method, tc.path, tc.token, tc.body); code != tc.code {
			t.Errorf("%s %s from %s token %q: %d %s, want %d", tc.method, tc.path, tc.remote, tc.token, code, body, tc.code)
		}
	}
	// Loopback may change what a token holder registered.
	call(t, n, far, "PUT", "/v1/agent/service/register", tokenA, reg)
	if code, body := call(t, n, near, "GET", "/v1/agent/service/deregister/w1", "", ""); code != 200 {
		t.Errorf("loopback deregister of a token holder's service: %d %s", code, body)
	}

	if err := os.WriteFile(file, []byte(tokenB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if reloaded, err := n.Reload(); !reloaded || err != nil {
		t.Fatalf("Reload: %v %v", reloaded, err)
	}
	if code, _ := call(t, n, far, "PUT", "/v1/agent/service/register", tokenA, reg); code != 403 {
		t.Errorf("a token removed from the file still writes: %d", code)
	}
	if code, _ := call(t, n, far, "PUT", "/v1/agent/service/register", tokenB, reg); code != 200 {
		t.Errorf("a token added to the file does not write: %d", code)
	}
	os.WriteFile(file, []byte("short\n"), 0o600)
	if _, err := n.Reload(); err == nil {
		t.Error("Reload of a file with a short token: no error")
	}
	if code, _ := call(t, n, far, "GET", "/v1/agent/services", tokenB, ""); code != 200 {
		t.Errorf("after a bad reload the old tokens are gone: %d", code)
	}
}

// TestHTTPRemoteReads: with RemoteReads an anonymous client beyond
// loopback reads but still does not write (not even python-consul's GET
// writes).
func TestHTTPRemoteReads(t *testing.T) {
	n := nodetest.Start(t, node.Config{HTTP: node.HTTPConfig{Addr: "127.0.0.1:0", RemoteReads: true}})
	const far = "[2001:db8::1]:4000"
	if code, body := call(t, n, far, "GET", "/v1/catalog/services", "", ""); code != 200 {
		t.Errorf("remote read with RemoteReads: %d %s", code, body)
	}
	if code, _ := call(t, n, far, "GET", "/v1/agent/check/pass/service:x", "", ""); code != 403 {
		t.Errorf("remote anonymous GET write: %d, want 403", code)
	}
}

// TestHTTPTokenRuleOverSockets: the same rule over a real connection from
// this machine's own non-loopback address (the kernel gives it as the
// peer's), so the access check sees a real RemoteAddr.
func TestHTTPTokenRuleOverSockets(t *testing.T) {
	local := testutil.NonLoopbackIP(t)
	n := nodetest.Start(t, node.Config{HTTP: node.HTTPConfig{Addr: net.JoinHostPort(local, "0"), TokenFile: tokenFile(t, tokenA)}})
	u := "http://" + n.HTTPAddr()
	do := func(token string) int {
		req, _ := http.NewRequest("PUT", u+"/v1/agent/service/register", strings.NewReader(`{"Name": "s", "Port": 1, "Address": "10.0.0.1"}`))
		if token != "" {
			req.Header.Set("X-Consul-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do(""); code != 403 {
		t.Errorf("write from %s without a token: %d, want 403", local, code)
	}
	if code := do(tokenA); code != 200 {
		t.Errorf("write from %s with a token: %d, want 200", local, code)
	}
	testutil.Eventually(t, 5*time.Second, "s in the catalog", func() bool { return len(n.Catalog().Instances("s")) == 1 })
}

// TestHTTPTokenFileErrors: a missing or bad token file is New's error on
// HTTP.TokenFile.
func TestHTTPTokenFileErrors(t *testing.T) {
	for _, f := range []string{filepath.Join(t.TempDir(), "missing"), tokenFile(t, "short")} {
		_, err := node.New(node.Config{Endpoint: "tcp://127.0.0.1:0", HTTP: node.HTTPConfig{Addr: "127.0.0.1:0", TokenFile: f}})
		if err == nil || !strings.Contains(err.Error(), "HTTP.TokenFile") {
			t.Errorf("token file %s: %v, want an error on HTTP.TokenFile", f, err)
		}
	}
}
