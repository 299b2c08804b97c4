package tunnel_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
)

func ctxT(t testing.TB) context.Context { return testutil.Context(t, 10*time.Second) }

func newKey(t testing.TB) secure.KeyPair {
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// testNode is a whole server with tunnels (package node) in this process,
// and a registry client of it.
type testNode struct {
	srv  *registry.Server
	tun  *tunnel.Tunnels
	kp   secure.KeyPair
	addr string // HOST:PORT of the shared port
	cl   *registry.Client
	run  *nodetest.Running
}

// startNode runs a node with key pair kp and tunnels cfg (cfg.Allow becomes
// the node's Access.Tunnels; short redials unless cfg sets them; every
// service exported, loopback ones included, unless cfg.Export says
// otherwise: the tests' services listen on 127.0.0.1).
func startNode(t testing.TB, kp secure.KeyPair, cfg tunnel.Config) *testNode {
	t.Helper()
	if cfg.Export == nil {
		cfg.Export = []string{"*"}
	}
	return startNodeAsIs(t, kp, cfg)
}

// startNodeAsIs is startNode with cfg.Export as given (nil: the default).
func startNodeAsIs(t testing.TB, kp secure.KeyPair, cfg tunnel.Config) *testNode {
	t.Helper()
	log := testutil.Logger(t)
	if cfg.RedialMax == 0 {
		cfg.RedialMax = 500 * time.Millisecond
	}
	if cfg.RedialMin == 0 {
		cfg.RedialMin = 50 * time.Millisecond
	}
	n := nodetest.Start(t, node.Config{Logger: log, Keys: &kp, Access: node.Access{Tunnels: cfg.Allow}, Tunnel: cfg})
	cl := n.Client(t)
	return &testNode{srv: n.Server(), tun: n.Tunnels(), kp: kp, addr: n.Addr(), cl: cl, run: n}
}

func register(t testing.TB, c *registry.Client, name string, a *net.TCPAddr) *registry.Registration {
	t.Helper()
	r, err := c.Register(ctxT(t), registry.Service{Name: name, Host: a.IP.String(), Port: a.Port, Meta: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
