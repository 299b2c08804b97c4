package join_test

import (
	"context"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// config is a server's registry and join configuration.
type config struct {
	reg  registry.Config
	join join.Config
}

// joinCfg is a server that joins peers, with short intervals for tests.
func joinCfg(id string, peers ...string) config {
	return config{
		reg: registry.Config{ServerID: id, MinTTL: 100 * time.Millisecond, Authorize: nodetest.LoopbackServers},
		join: join.Config{Peers: peers, Interval: 100 * time.Millisecond, Timeout: time.Second,
			Grace: 2 * time.Second, RedialMax: 500 * time.Millisecond},
	}
}

// node is a running server and its join.
type node struct {
	*registry.Server
	j *join.Join
}

// startServer runs a server with join on a free loopback port until the
// test ends.
func startServer(t testing.TB, cfg config) *node {
	t.Helper()
	return startServerAt(t, cfg, "tcp://127.0.0.1:0")
}

func startServerAt(t testing.TB, cfg config, endpoint string) *node {
	t.Helper()
	j, err := join.New(cfg.join)
	if err != nil {
		t.Fatal(err)
	}
	cfg.reg.Replicator = j
	if cfg.reg.Authorize == nil {
		cfg.reg.Authorize = nodetest.LoopbackServers // peers and raw sockets here are on loopback
	}
	return &node{nodetest.StartRegistry(t, cfg.reg, endpoint), j}
}

func newClient(t testing.TB, srv *node, cfg registry.ClientConfig) *registry.Client {
	t.Helper()
	return nodetest.RegistryClient(t, srv.Endpoint(), cfg)
}

func rawSocket(t testing.TB, srv *node, typ zmtp.SocketType) *zmtp.Socket {
	t.Helper()
	return nodetest.RawSocket(t, srv.Endpoint(), typ)
}

// joinInfo is INFO's join object of c's server; nil if none or on error.
func joinInfo(t testing.TB, c *registry.Client) *join.Info {
	t.Helper()
	info, err := c.Info(ctxT(t))
	if err != nil {
		return nil
	}
	ji, err := join.ParseInfo(info.Join)
	if err != nil {
		t.Fatal(err)
	}
	return ji
}

func ctxT(t testing.TB) context.Context { return testutil.Context(t, 10*time.Second) }
