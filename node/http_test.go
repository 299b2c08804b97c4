package node_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
)

func busyPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// TestHTTPTakenAddr: an explicit address that is taken is New's error
// (naming HTTP.Addr); an Optional (default) one is a warning and the node
// runs without HTTP.
func TestHTTPTakenAddr(t *testing.T) {
	addr := busyPort(t)
	_, err := node.New(node.Config{Endpoint: "tcp://127.0.0.1:0", HTTP: node.HTTPConfig{Addr: addr}})
	var ce *node.ConfigError
	if !errors.As(err, &ce) || ce.Field != "HTTP.Addr" {
		t.Fatalf("New with a taken HTTP address: %v, want a ConfigError on HTTP.Addr", err)
	}
	sink := testutil.NewLogSink()
	n := nodetest.Start(t, node.Config{Logger: sink.Logger(), HTTP: node.HTTPConfig{Addr: addr, Optional: true}})
	sink.WaitFor(t, "WARN", "http: not listening", "--http")
	if n.HTTPAddr() != "" {
		t.Fatalf("HTTPAddr %q, want \"\" when not listening", n.HTTPAddr())
	}
	if got := strings.Count(strings.Join(sink.Lines(), "\n"), "http: not listening"); got != 1 {
		t.Fatalf("%d warnings, want 1", got)
	}
}

// TestHTTPServesAndStops: handlers mounted before Run are served; Run's
// stop ends a request that waits on its context; no goroutine is left.
func TestHTTPServesAndStops(t *testing.T) {
	base := runtime.NumGoroutine()
	n, err := node.New(node.Config{Endpoint: "tcp://127.0.0.1:0", HTTP: node.HTTPConfig{Addr: "127.0.0.1:0", MaxBodyBytes: 16}})
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	n.HandleHTTP("GET /hello", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }))
	n.HandleHTTP("POST /body", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		}
	}))
	n.HandleHTTP("GET /block", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	}))
	runDone := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { runDone <- n.Run(ctx) }()
	url := "http://" + n.HTTPAddr()
	resp, err := http.Get(url + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hi" {
		t.Fatalf("GET /hello: %q", b)
	}
	resp, err = http.Post(url+"/body", "text/plain", strings.NewReader(strings.Repeat("x", 100)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over MaxBodyBytes: %d, want 413", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", url+"/hello", nil)
	req.Header.Set("X-Big", strings.Repeat("y", 128<<10))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("headers over MaxHeaderBytes: %d, want 431", resp.StatusCode)
	}

	blockDone := make(chan error, 1)
	go func() {
		resp, err := http.Get(url + "/block")
		if err == nil {
			resp.Body.Close()
		}
		blockDone <- err
	}()
	<-entered
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case <-blockDone:
	case <-time.After(10 * time.Second):
		t.Fatal("a request waiting on its context outlived Run")
	}
	http.DefaultClient.CloseIdleConnections()
	testutil.CheckGoroutines(t, base)
}
