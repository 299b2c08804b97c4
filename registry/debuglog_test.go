package registry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
)

// TestDebugLogsRequests: at debug level the server logs each
// registration, lookup and deregistration, one line each.
func TestDebugLogsRequests(t *testing.T) {
	sink := testutil.NewLogSink()
	srv := startServer(t, registry.Config{Logger: sink.Logger()})
	c := newClient(t, srv, registry.ClientConfig{})
	ctx := testutil.Context(t, 10*time.Second)
	reg, err := c.Register(ctx, registry.Service{Name: "web", Proto: "http", Host: "10.0.0.5", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	id := reg.Entry().Instance
	if _, err := c.Lookup(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	sink.WaitFor(t, "DEBUG registry: register ", "name=web", "address=http://10.0.0.5:8080", "instance="+id, "ttl=30s")
	sink.WaitFor(t, "DEBUG registry: lookup ", "name=web", "instances=1")
	sink.WaitFor(t, "DEBUG registry: deregister ", "name=web", "instance="+id)
	n := 0
	for _, l := range sink.Lines() {
		if strings.Contains(l, "registry: lookup") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d lookup lines for one lookup", n)
	}
}
