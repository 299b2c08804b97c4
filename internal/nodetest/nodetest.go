// Package nodetest starts whole Hydra servers (package node) for tests:
// on a free loopback port unless told otherwise, stopped and checked when
// the test ends. It is separate from internal/testutil because it imports
// node, which the packages node is made of cannot import in their own
// in-package tests.
package nodetest

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/tunnel"
	"github.com/hydra-net/hydra/zmtp"
)

// Running is a node that Start runs until Stop or the end of the test.
type Running struct {
	*node.Node
	cancel context.CancelFunc
	done   chan error
	t      testing.TB
	once   sync.Once
}

// Start builds cfg (Endpoint tcp://127.0.0.1:0 when empty; without Curve,
// Access.ServerAddrs LoopbackPrefixes when nil, so that nodes of a test may
// join each other)
// and runs it; the test fails if it cannot start or if Run does not end
// cleanly.
func Start(t testing.TB, cfg node.Config) *Running {
	t.Helper()
	if cfg.Endpoint == "" {
		cfg.Endpoint = "tcp://127.0.0.1:0"
	}
	if !cfg.Curve && cfg.Access.ServerAddrs == nil {
		cfg.Access.ServerAddrs = LoopbackPrefixes
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

// LoopbackPrefixes are loopback's addresses, IPv4 and IPv6: what Start
// lets NULL join links come from (node.Access.ServerAddrs).
var LoopbackPrefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// LoopbackServers is registry.DefaultAuthorize plus the server role for
// loopback, ipc and inproc peers: what a test whose servers join each other
// (or whose raw sockets play a joined server) on one machine needs.
func LoopbackServers(p registry.Peer, r registry.Role) bool {
	if r == registry.RoleServer {
		return !p.Addr.IsValid() || p.Addr.Addr().IsLoopback()
	}
	return registry.DefaultAuthorize(p, r)
}

// StartRegistry runs a registry server with cfg (Logger: testutil.Logger
// when nil) bound to endpoint until the test ends, failing the test if
// Serve returns an error.
func StartRegistry(t testing.TB, cfg registry.Config, endpoint string) *registry.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testutil.Logger(t)
	}
	srv, err := registry.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Bind(endpoint); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// RegistryClient is a registry client of endpoint with cfg (its Endpoint
// and Logger filled in when empty), closed when the test ends.
func RegistryClient(t testing.TB, endpoint string, cfg registry.ClientConfig) *registry.Client {
	t.Helper()
	if cfg.Endpoint == "" {
		cfg.Endpoint = endpoint
	}
	if cfg.Logger == nil {
		cfg.Logger = testutil.Logger(t)
	}
	c, err := registry.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RawSocket is a zmtp socket of type typ connected to endpoint, with 5s
// send and receive timeouts, closed when the test ends.
func RawSocket(t testing.TB, endpoint string, typ zmtp.SocketType) *zmtp.Socket {
	t.Helper()
	s, err := zmtp.NewSocket(typ, zmtp.Config{RecvTimeout: 5 * time.Second, SendTimeout: 5 * time.Second, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(endpoint); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
