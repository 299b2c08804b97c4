package node_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
)

// httpFrom is one HTTP/1.1 keep-alive connection from the loopback
// address src.
type httpFrom struct {
	nc net.Conn
	br *bufio.Reader
}

func dialHTTP(t *testing.T, src, addr string) *httpFrom {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &httpFrom{nc: nc, br: bufio.NewReader(nc)}
}

// get sends GET path and returns the response's status and body.
func (c *httpFrom) get(t *testing.T, path string) (int, string, error) {
	code, body, _, err := c.getIndex(t, path)
	return code, body, err
}

// getIndex is get with the X-Consul-Index of the answer.
func (c *httpFrom) getIndex(t *testing.T, path string) (int, string, string, error) {
	t.Helper()
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.nc, "GET %s HTTP/1.1\r\nHost: hydra\r\n\r\n", path); err != nil {
		return 0, "", "", err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), resp.Header.Get("X-Consul-Index"), err
}

// TestHTTPMaxConnsPerClient: with 200 connections open from one address
// (the default, Consul's), its 201st is answered 429 Too Many Requests and
// closed; another address is served, blocking queries included, on a
// connection that is reused after them; the slots come back when the 200
// close. Before issue 13 the 201st was served like the others.
func TestHTTPMaxConnsPerClient(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() { testutil.CheckGoroutines(t, base) }) // after the node's stop
	n := nodetest.Start(t, node.Config{HTTP: node.HTTPConfig{Addr: "127.0.0.1:0"}})
	addr := n.HTTPAddr()
	var flood []*httpFrom
	for i := range node.DefaultHTTPMaxConnsPerClient {
		c := dialHTTP(t, "127.0.0.2", addr)
		if code, _, err := c.get(t, "/v1/agent/self"); err != nil || code != http.StatusOK {
			t.Fatalf("connection %d from 127.0.0.2: %d, %v", i+1, code, err)
		}
		flood = append(flood, c)
	}
	extra := dialHTTP(t, "127.0.0.2", addr)
	code, body, err := extra.get(t, "/v1/agent/self")
	if err != nil || code != http.StatusTooManyRequests {
		t.Fatalf("connection %d from 127.0.0.2: %d %q, %v; want 429", node.DefaultHTTPMaxConnsPerClient+1, code, body, err)
	}
	extra.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.br.ReadByte(); err != io.EOF {
		t.Fatalf("after the 429: %v, want the connection closed", err)
	}
	if _, refused := n.HTTPConnsForTest(); refused != 1 {
		t.Fatalf("%d refused, want 1", refused)
	}
	if v, _ := scrape(t, n).Value("hydra_handshake_failures_total", "proto", "http", "reason", "conns_per_client"); v != 1 {
		t.Fatalf("metric of refused HTTP connections: %v, want 1", v)
	}

	other := dialHTTP(t, "127.0.0.3", addr)
	if code, _, err := other.get(t, "/v1/agent/self"); err != nil || code != http.StatusOK {
		t.Fatalf("another address: %d, %v", code, err)
	}
	// Blocking queries at the current index (parked until their wait ends,
	// the connection handed back after the answer), twice on one
	// connection.
	_, _, idx, err := other.getIndex(t, "/v1/catalog/services")
	if err != nil || idx == "" {
		t.Fatalf("no X-Consul-Index: %q, %v", idx, err)
	}
	for range 2 {
		start := time.Now()
		code, _, _, err := other.getIndex(t, "/v1/catalog/services?index="+idx+"&wait=300ms")
		if err != nil || code != http.StatusOK {
			t.Fatalf("blocking query from another address: %d, %v", code, err)
		}
		t.Logf("blocking query answered after %v", time.Since(start))
	}
	if w := n.Consul().Waiting(); w != 0 {
		t.Fatalf("%d blocking queries still waiting", w)
	}

	for _, c := range flood {
		c.nc.Close()
	}
	testutil.Eventually(t, 5*time.Second, "the closed connections' slots free", func() bool {
		held, _ := n.HTTPConnsForTest()
		return held <= 2 // other's, and the scrape's kept alive
	})
	again := dialHTTP(t, "127.0.0.2", addr)
	if code, _, err := again.get(t, "/v1/agent/self"); err != nil || code != http.StatusOK {
		t.Fatalf("127.0.0.2 once its connections closed: %d, %v", code, err)
	}
}

// TestHTTPWriteStall: a client that asks for a big answer and never reads
// it loses the connection once a write makes no progress for WriteStall;
// the handler's write fails instead of blocking for ever (as it did before
// issue 13).
func TestHTTPWriteStall(t *testing.T) {
	n, err := node.New(node.Config{Endpoint: "tcp://127.0.0.1:0", HTTP: node.HTTPConfig{Addr: "127.0.0.1:0", WriteStall: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	n.HandleHTTP("GET /big", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 1<<20)
		for range 256 { // far more than the socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- n.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	c := dialHTTP(t, "127.0.0.1", n.HTTPAddr())
	fmt.Fprintf(c.nc, "GET /big HTTP/1.1\r\nHost: hydra\r\n\r\n") // and never read
	select {
	case err := <-wrote:
		if err == nil {
			t.Fatal("256 MiB written to a client that reads nothing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's write to a client that does not read still blocks after 10s")
	}
	c.nc.Close()
	if code, _, err := dialHTTP(t, "127.0.0.1", n.HTTPAddr()).get(t, "/v1/agent/self"); err != nil || code != http.StatusOK {
		t.Fatalf("after the stalled client: %d, %v", code, err)
	}
}
