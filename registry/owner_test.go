package registry_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// restartAt starts a fresh server (a restart: nothing of the old one's
// state) that serves attackFirst on a side endpoint before it binds
// endpoint, where the owners' clients reconnect: so the attacker always
// wins the race to re-register.
func restartAt(t *testing.T, endpoint string, cfg registry.Config, attackFirst func(side string)) *registry.Server {
	side := "ipc://" + filepath.Join(t.TempDir(), "side.sock")
	srv := nodetest.StartRegistry(t, cfg, side)
	attackFirst(side)
	if err := srv.Bind(endpoint); err != nil {
		t.Fatal(err)
	}
	return srv
}

// TestSquattingAfterRestart: instance ids are public (LOOKUP shows them).
// After a restart an attacker re-registers every id it saw, with its own
// token, before the owners' heartbeats; it is refused, and every owner gets
// its id back. Today's server gave the attacker the ids and the owners got
// forbidden for ever.
func TestSquattingAfterRestart(t *testing.T) {
	ep := "ipc://" + filepath.Join(t.TempDir(), "reg.sock")
	cfg := registry.Config{MinTTL: 100 * time.Millisecond}
	first := nodetest.StartRegistry(t, cfg, ep)
	ctx := testutil.Context(t, 20*time.Second)
	const owners = 10
	want := map[string]int{} // instance → port
	var cls []*registry.Client
	for i := range owners {
		c := nodetest.RegistryClient(t, ep, registry.ClientConfig{HeartbeatInterval: 100 * time.Millisecond})
		cls = append(cls, c)
		r, err := c.Register(ctx, registry.Service{Name: "db", Host: "10.0.0.1", Port: 5000 + i, TTL: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		want[r.Instance()] = 5000 + i
	}
	seen, err := nodetest.RegistryClient(t, ep, registry.ClientConfig{}).Lookup(ctx, "db")
	if err != nil || len(seen) != owners {
		t.Fatalf("LOOKUP: %d entries, %v", len(seen), err)
	}
	start := time.Now()
	first.Close()
	t.Logf("closed after %v", time.Since(start))

	srv := restartAt(t, ep, cfg, func(side string) {
		evil := nodetest.RawSocket(t, side, zmtp.REQ)
		for i, e := range seen {
			st, m := call(t, evil, "REGISTER", map[string]any{"name": "db", "host": "192.0.2.66", "port": 6600 + i,
				"instance": e.Instance, "ttl": 86400, "token": "attacker-token-0123456789"})
			if st != "ERR" || m["code"] != registry.CodeForbidden {
				t.Errorf("attacker re-registering %s: %s %v, want forbidden", e.Instance, st, m)
			}
		}
	})
	look := nodetest.RegistryClient(t, srv.Endpoint(), registry.ClientConfig{})
	testutil.Eventually(t, 10*time.Second, "every owner's entry back under its own id", func() bool {
		es, err := look.Lookup(ctx, "db")
		if err != nil || len(es) != owners {
			return false
		}
		for _, e := range es {
			if want[e.Instance] != e.Port || e.Host != "10.0.0.1" {
				return false
			}
		}
		return true
	})
	t.Logf("owners back %v after the restart", time.Since(start))
	for _, c := range cls {
		c.Close() // while the server runs: each deregisters
	}
}

// TestClientRecoversFromForbidden: a client whose id is refused after a
// restart (an id the server did not derive from its token: here one an
// older server assigned, which an attacker then tries to take) registers
// afresh under a new id instead of retrying for ever. Today's client
// retried without end while the attacker kept the id.
func TestClientRecoversFromForbidden(t *testing.T) {
	ep := "ipc://" + filepath.Join(t.TempDir(), "reg.sock")
	// An older server that assigns ids of its own choosing.
	old, err := zmtp.NewSocket(zmtp.ROUTER, zmtp.Config{Linger: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Bind(ep); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			msg, err := old.Recv()
			if err != nil {
				return
			}
			var body struct {
				Token string `json:"token"`
				ID    any    `json:"id"`
			}
			_ = json.Unmarshal(msg[len(msg)-1], &body)
			rep, _ := json.Marshal(map[string]any{"id": body.ID, "instance": "legacy-1", "token": body.Token, "ttl": 30,
				"version": 1, "origin": "old", "created": true})
			_ = old.Send(msg[0], []byte("OK"), rep)
		}
	}()
	c := nodetest.RegistryClient(t, ep, registry.ClientConfig{HeartbeatInterval: 100 * time.Millisecond})
	ctx := testutil.Context(t, 20*time.Second)
	r, err := c.Register(ctx, registry.Service{Name: "db", Host: "10.0.0.1", Port: 5432})
	if err != nil || r.Instance() != "legacy-1" {
		t.Fatalf("register with the old server: %v %v", r, err)
	}
	old.Close()

	srv := restartAt(t, ep, registry.Config{}, func(side string) {
		evil := nodetest.RawSocket(t, side, zmtp.REQ)
		call(t, evil, "REGISTER", map[string]any{"name": "db", "host": "192.0.2.66", "port": 6666,
			"instance": "legacy-1", "ttl": 86400, "token": "attacker-token-0123456789"})
	})
	look := nodetest.RegistryClient(t, srv.Endpoint(), registry.ClientConfig{})
	testutil.Eventually(t, 10*time.Second, "the owner registered afresh", func() bool {
		es, err := look.Lookup(ctx, "db")
		for _, e := range es {
			if e.Host == "10.0.0.1" && e.Port == 5432 && e.Instance == r.Instance() && e.Instance != "legacy-1" {
				return err == nil
			}
		}
		return false
	})
}

// TestQuotaPerAddress: without CURVE the per-client limit counts what one
// source address registered, whatever tokens it uses (today 22 fresh tokens
// filled a 2 000-entry registry); others still get in.
func TestQuotaPerAddress(t *testing.T) {
	srv := startServer(t, registry.Config{MaxEntries: 100, MaxEntriesPerClient: 10})
	s := rawSocket(t, srv, zmtp.REQ)
	ok := 0
	for i := range 30 {
		st, m := call(t, s, "REGISTER", map[string]any{"name": "flood", "host": "10.0.0.1", "port": 1000 + i}) // a fresh token each
		switch {
		case st == "OK":
			ok++
		case m["code"] != registry.CodeLimit:
			t.Fatalf("REGISTER %d: %s %v", i, st, m)
		}
	}
	if ok != 10 {
		t.Fatalf("one address registered %d entries with fresh tokens, want the limit 10", ok)
	}
	ipc := "ipc://" + filepath.Join(t.TempDir(), "r.sock")
	if err := srv.Bind(ipc); err != nil {
		t.Fatal(err)
	}
	other := nodetest.RegistryClient(t, ipc, registry.ClientConfig{})
	if _, err := other.Register(testutil.Context(t, 5*time.Second), registry.Service{Name: "web", Host: "10.0.0.2", Port: 80}); err != nil {
		t.Fatalf("a client from elsewhere after the flood: %v", err)
	}
}

// TestQuotaPerKey: with CURVE the limit counts per client key: two keys on
// one address each have their own.
func TestQuotaPerKey(t *testing.T) {
	cs := newCurveSetup(t)
	srv := cs.start(t, registry.Config{MaxEntriesPerClient: 2})
	ctx := testutil.Context(t, 10*time.Second)
	a := cs.client(t, srv, cs.key(t, registry.RoleClient))
	b := cs.client(t, srv, cs.key(t, registry.RoleClient))
	for i := range 2 {
		if _, err := a.Register(ctx, registry.Service{Name: "a", Host: "h", Port: 1 + i}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Register(ctx, registry.Service{Name: "a", Host: "h", Port: 9}); !errors.Is(err, registry.ErrLimit) {
		t.Fatalf("a's third entry: %v", err)
	}
	for i := range 2 {
		if _, err := b.Register(ctx, registry.Service{Name: "b", Host: "h", Port: 1 + i}); err != nil {
			t.Fatalf("b's entry %d (same address, another key): %v", i, err)
		}
	}
}
