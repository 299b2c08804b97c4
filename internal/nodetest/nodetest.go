// Package nodetest starts whole Hydra servers (package node) for tests:
// on a free loopback port unless told otherwise, stopped and checked when
// the test ends. It is separate from internal/testutil because it imports
// node, which the packages node is made of cannot import in their own
// in-package tests.
package nodetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/tunnel"
)

// Running is a node that Start runs until Stop or the end of the test.
type Running struct {
	*node.Node
	cancel context.CancelFunc
	done   chan error
	t      testing.TB
	once   sync.Once
}

// Start builds cfg (Endpoint tcp://127.0.0.1:0 when empty) and runs it;
// the test fails if it cannot start or if Run does not end cleanly.
func Start(t testing.TB, cfg node.Config) *Running {
	t.Helper()
	if cfg.Endpoint == "" {
		cfg.Endpoint = "tcp://127.0.0.1:0"
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{Node: n, cancel: cancel, done: make(chan error, 1), t: t}
	go func() { r.done <- n.Run(ctx) }()
	t.Cleanup(r.Stop)
	return r
}

// Stop ends Run (tunnels first, then the registry) and waits for it; other
// calls wait for the first.
func (r *Running) Stop() {
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			r.t.Errorf("node.Run after its context ended: %v, want nil", err)
		}
	})
}

// Client returns a registry client of r, closed when the test ends.
func (r *Running) Client(t testing.TB) *registry.Client {
	t.Helper()
	cl, err := registry.NewClient(registry.ClientConfig{Endpoint: r.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TunnelProxy waits up to 30s until c's server holds a tunnel proxy entry
// for name, and returns it.
func TunnelProxy(t testing.TB, c *registry.Client, name string) registry.Entry {
	t.Helper()
	var got registry.Entry
	testutil.Eventually(t, 30*time.Second, "a tunnel proxy for "+name, func() bool {
		es, err := c.Lookup(testutil.Context(t, 5*time.Second), name)
		if err != nil {
			return false
		}
		for _, e := range es {
			if e.Meta[tunnel.MetaPeer] != "" {
				got = e
				return true
			}
		}
		return false
	})
	return got
}
