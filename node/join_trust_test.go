package node_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
)

// TestSignedJoinedNodesLeave: with Keys and a TrustOrigin, a node signs
// its origin's records and its server id is its signing key's origin id;
// when it stops (SIGTERM's path, Run's end), its peer drops its entries at
// once, long before the grace.
func TestSignedJoinedNodesLeave(t *testing.T) {
	kA, kB := key(t), key(t)
	sA, sB := kA.Signer(), kB.Signer()
	trust := func(k secure.SignPublicKey) bool { return k == sA.Public || k == sB.Public }
	jc := func(peers ...string) join.Config {
		return join.Config{Interval: 100 * time.Millisecond, Grace: time.Minute, Peers: peers, TrustOrigin: trust}
	}
	a := nodetest.Start(t, node.Config{Keys: &kA, Join: jc()})
	b := nodetest.Start(t, node.Config{Keys: &kB, Join: jc(a.Addr())})
	if a.Server().ID() != join.OriginID(sA.Public) {
		t.Fatalf("A's server id %q, want its origin id %q", a.Server().ID(), join.OriginID(sA.Public))
	}
	ca, cb := a.Client(t), b.Client(t)
	ctx := testutil.Context(t, 10*time.Second)
	if _, err := ca.Register(ctx, registry.Service{Name: "on-a", Host: "10.0.0.1", Port: 1, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	lookupN(t, cb, "on-a", 1)
	a.Stop()
	lookupN(t, cb, "on-a", 0) // within 10s; the grace is a minute

	// A ServerID other than the key's is a mistake, named.
	_, err := node.New(node.Config{Endpoint: "tcp://127.0.0.1:0", Keys: &kA, Join: jc(),
		Registry: registry.Config{ServerID: "mine"}})
	var ce *node.ConfigError
	if !errors.As(err, &ce) || ce.Field != "Registry.ServerID" {
		t.Fatalf("ServerID with a signer: %v", err)
	}
}
