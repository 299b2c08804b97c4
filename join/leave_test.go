package join_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
)

// TestLeaveVerb: LEAVE drops a dialled link and stops dialling; a peer not
// joined is not_found; a bad address bad_request; INFO shows a refused
// self-join in "refused" and a dial's failure in the link's "error".
func TestLeaveVerb(t *testing.T) {
	a := startServer(t, joinCfg("L1"))
	b := startServer(t, joinCfg("L2"))
	ca := newClient(t, a, registry.ClientConfig{})
	ctx := ctxT(t)
	if _, _, err := ca.Join(ctx, addr(b)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the link up", func() bool {
		ji := joinInfo(t, ca)
		return ji != nil && len(ji.Links) == 1 && ji.Links[0].State == "synced" && ji.Links[0].Peer == "L2"
	})
	if got, err := ca.Leave(ctx, "tcp://"+addr(b)); err != nil || got != addr(b) {
		t.Fatalf("LEAVE: %q %v", got, err)
	}
	testutil.Eventually(t, 5*time.Second, "no link", func() bool {
		ji := joinInfo(t, ca)
		return ji == nil || len(ji.Links) == 0
	})
	if _, err := ca.Leave(ctx, addr(b)); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("LEAVE again: %v, want not_found", err)
	}
	if _, err := ca.Leave(ctx, "host:99999"); !errors.Is(err, registry.ErrBadRequest) {
		t.Fatalf("LEAVE of a bad address: %v, want bad_request", err)
	}

	// Itself: refused, and INFO says why.
	if _, _, err := ca.Join(ctx, addr(a)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the self-join refused", func() bool {
		ji := joinInfo(t, ca)
		return ji != nil && strings.Contains(ji.Refused[addr(a)], "this server itself")
	})

	// A port where nothing listens: the link's error says so.
	dead := nodeAddrDead(t)
	if _, _, err := ca.Join(ctx, dead); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the dial's error in INFO", func() bool {
		ji := joinInfo(t, ca)
		if ji == nil {
			return false
		}
		for _, l := range ji.Links {
			if l.Addr == dead && strings.Contains(l.Error, "connection refused") {
				return true
			}
		}
		return false
	})
}

// TestLeaveWithoutJoin: a server without a replicator answers LEAVE with
// bad_request.
func TestLeaveWithoutJoin(t *testing.T) {
	c := newClient(t, &node{Server: startPlain(t)}, registry.ClientConfig{})
	if _, err := c.Leave(ctxT(t), "10.0.0.1"); !errors.Is(err, registry.ErrBadRequest) {
		t.Fatalf("LEAVE: %v, want bad_request", err)
	}
}

// nodeAddrDead is a loopback HOST:PORT where nothing listens.
func nodeAddrDead(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func startPlain(t *testing.T) *registry.Server {
	return nodetest.StartRegistry(t, registry.Config{}, "tcp://127.0.0.1:0")
}
