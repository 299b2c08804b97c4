package consulapi_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
)

func currentIndex(t *testing.T, n *nodetest.Running, path string) uint64 {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTPAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	idx, err := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	if err != nil || idx == 0 {
		t.Fatalf("X-Consul-Index %q", resp.Header.Get("X-Consul-Index"))
	}
	return idx
}

func readResponse(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestParkedQueryKeepsConnection: a blocking query parked off its
// handler is answered on its connection when the name changes, and the
// connection then serves the request pipelined behind it and the next one
// (keep-alive survives parking).
func TestParkedQueryKeepsConnection(t *testing.T) {
	n := start(t, node.Config{})
	idx := currentIndex(t, n, "/v1/health/service/web")
	c, err := net.Dial("tcp", n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	// The blocking query and, pipelined behind it, another request.
	io.WriteString(c, "GET /v1/health/service/web?index="+strconv.FormatUint(idx, 10)+"&wait=1m HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
	testutil.Eventually(t, 10*time.Second, "the query parked", func() bool { return n.Consul().Waiting() == 1 })
	ctx := testutil.Context(t, 10*time.Second)
	if _, err := n.Client(t).Register(ctx, registry.Service{Name: "web", Host: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, body := readResponse(t, br)
	if got, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64); resp.StatusCode != 200 || got <= idx || len(body) < 10 {
		t.Fatalf("parked answer: %d index %d (was %d): %s", resp.StatusCode, got, idx, body)
	}
	if resp, body := readResponse(t, br); resp.StatusCode != 200 || body == "" {
		t.Fatalf("the pipelined request: %d %q", resp.StatusCode, body)
	}
	io.WriteString(c, "GET /v1/agent/self HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := readResponse(t, br); resp.StatusCode != 200 {
		t.Fatalf("the next request on the resumed connection: %d", resp.StatusCode)
	}
	if w := n.Consul().Waiting(); w != 0 {
		t.Fatalf("Waiting %d after the answer", w)
	}
}

// TestParkedQueriesEndOnStop: a node that stops answers its parked
// queries at once (Connection: close), and leaves no goroutine.
func TestParkedQueriesEndOnStop(t *testing.T) {
	base := runtime.NumGoroutine()
	n := nodetest.Start(t, node.Config{HTTP: node.HTTPConfig{Addr: "127.0.0.1:0"}})
	idx := currentIndex(t, n, "/v1/catalog/services")
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, "GET /v1/catalog/services?index="+strconv.FormatUint(idx, 10)+"&wait=10m HTTP/1.1\r\nHost: x\r\n\r\n")
		conns = append(conns, c)
	}
	testutil.Eventually(t, 10*time.Second, "5 parked queries", func() bool { return n.Consul().Waiting() == 5 })
	stopped := make(chan struct{})
	go func() { n.Stop(); close(stopped) }()
	for _, c := range conns {
		resp, _ := readResponse(t, bufio.NewReader(c))
		if resp.StatusCode != 200 || !resp.Close {
			t.Fatalf("answer at stop: %d close %v", resp.StatusCode, resp.Close)
		}
	}
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not stop with parked queries")
	}
	http.DefaultClient.CloseIdleConnections()
	testutil.CheckGoroutines(t, base)
}

// TestUnparkedBlockingQuery: an HTTP/1.0 query (no keep-alive) is not
// parked: it waits in its handler and returns after the change all the
// same.
func TestUnparkedBlockingQuery(t *testing.T) {
	n := start(t, node.Config{})
	idx := currentIndex(t, n, "/v1/health/service/api")
	c, err := net.Dial("tcp", n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "GET /v1/health/service/api?index="+strconv.FormatUint(idx, 10)+"&wait=1m HTTP/1.0\r\n\r\n")
	testutil.Eventually(t, 10*time.Second, "the query waiting", func() bool { return n.Consul().Waiting() == 1 })
	ctx := testutil.Context(t, 10*time.Second)
	if _, err := n.Client(t).Register(ctx, registry.Service{Name: "api", Host: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	resp, body := readResponse(t, bufio.NewReader(c))
	if got, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64); resp.StatusCode != 200 || got <= idx || len(body) < 10 {
		t.Fatalf("answer: %d index %d: %s", resp.StatusCode, got, body)
	}
}
