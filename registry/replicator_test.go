package registry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// fakeRepl is a Replicator that records what the loop tells it.
type fakeRepl struct {
	h       *registry.Host
	started chan struct{}
	ticks   atomic.Int64
	stopped atomic.Bool
	mu      sync.Mutex
	changes []string
}

func newFakeRepl() *fakeRepl { return &fakeRepl{started: make(chan struct{})} }

func (r *fakeRepl) Start(h *registry.Host, _ time.Time) { r.h = h; close(r.started) }
func (r *fakeRepl) Interval() time.Duration             { return 10 * time.Millisecond }
func (r *fakeRepl) Tick(time.Time)                      { r.ticks.Add(1) }
func (r *fakeRepl) Flush()                              {}
func (r *fakeRepl) Info(time.Time) any                  { return map[string]int{"links": 7} }
func (r *fakeRepl) Stop()                               { r.stopped.Store(true) }

func (r *fakeRepl) Changed(typ registry.EventType, instance string, entry []byte, _ time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, fmt.Sprintf("%s %s %v", typ, instance, len(entry) > 0))
}

func (r *fakeRepl) Sync(env [][]byte, frames [][]byte, _ time.Time) *registry.Error {
	if len(frames) != 1 || string(frames[0]) == "bad" {
		return &registry.Error{Code: registry.CodeBadRequest, Message: "not link traffic"}
	}
	r.h.Send(env, []byte(registry.VerbSync), append([]byte("echo "), frames[0]...))
	return nil
}

func (r *fakeRepl) Join(body []byte) (any, *registry.Error) {
	return map[string]string{"got": string(body)}, nil
}

// onLoop runs fn on the server's loop and waits for it.
func (r *fakeRepl) onLoop(t *testing.T, fn func(h *registry.Host)) {
	t.Helper()
	done := make(chan struct{})
	if !r.h.Post(nil, func() { defer close(done); fn(r.h) }) {
		t.Fatal("loop not running")
	}
	<-done
}

func remoteJSON(origin, inst string, port int, version uint64) []byte {
	b, _ := json.Marshal(registry.Entry{Service: registry.Service{Name: "web", Host: "10.0.0.9", Port: port, Proto: "tcp"},
		Instance: inst, Origin: origin, Version: version})
	return b
}

// TestReplicatorPlug: the loop tells a Replicator of local changes, SYNC,
// JOIN, ticks and INFO, and the Host it gets sets, shows and removes other
// origins' copies.
func TestReplicatorPlug(t *testing.T) {
	r := newFakeRepl()
	srv := startServer(t, registry.Config{ServerID: "self", MaxEntries: 4, MaxEntriesPerClient: 4, Replicator: r,
		Authorize: nodetest.LoopbackServers})
	c := newClient(t, srv, registry.ClientConfig{})
	ctx := testutil.Context(t, 10*time.Second)
	<-r.started

	reg, err := c.Register(ctx, registry.Service{Name: "web", Host: "h", Port: 1})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the change told", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return slices.Contains(r.changes, "register "+reg.Instance()+" true")
	})
	show := func() map[string]string {
		es, err := c.Lookup(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, e := range es {
			m[e.Instance] = fmt.Sprintf("%s@%d", e.Origin, e.Version)
		}
		return m
	}
	set := func(origin, inst string, version uint64) error {
		var err error
		r.onLoop(t, func(h *registry.Host) {
			var e registry.RemoteEntry
			if e, err = h.ParseEntry(remoteJSON(origin, inst, 80, version), origin); err == nil {
				err = h.SetRemote(e)
			}
		})
		return err
	}
	if err := set("O", "x1", 3); err != nil {
		t.Fatal(err)
	}
	if v := show(); v["x1"] != "O@3" || len(v) != 2 {
		t.Fatalf("after O's copy: %v", v)
	}
	// A newer copy from another origin wins; when it goes, the older shows.
	if err := set("P", "x1", 5); err != nil {
		t.Fatal(err)
	}
	if v := show(); v["x1"] != "P@5" || len(v) != 2 {
		t.Fatalf("after P's copy: %v", v)
	}
	r.onLoop(t, func(h *registry.Host) {
		if h.Entries("O") != 1 || h.Entries("P") != 1 || h.RemoteEntries() != 2 || h.Entries("self") != 1 {
			t.Errorf("counts: O %d, P %d, remote %d, self %d", h.Entries("O"), h.Entries("P"), h.RemoteEntries(), h.Entries("self"))
		}
		var own []string
		h.EachEntry("self", func(inst string, _ []byte) { own = append(own, inst) })
		if len(own) != 1 || own[0] != reg.Instance() {
			t.Errorf("own entries: %v", own)
		}
		h.DeleteRemote("P", "x1", registry.EventDeregister)
	})
	if v := show(); v["x1"] != "O@3" {
		t.Fatalf("after P's copy went: %v", v)
	}
	// A local registration of the same instance hides the copy until it
	// goes.
	if _, err := c.Request(ctx, registry.VerbRegister, map[string]any{"name": "web", "host": "h", "port": 2,
		"instance": "x1", "token": c.Token()}); err != nil {
		t.Fatal(err)
	}
	if v := show(); v["x1"] != "self@1" {
		t.Fatalf("local over remote: %v", v)
	}
	if _, err := c.Request(ctx, registry.VerbDeregister, map[string]any{"token": c.Token(), "instance": "x1"}); err != nil {
		t.Fatal(err)
	}
	if v := show(); v["x1"] != "O@3" {
		t.Fatalf("remote after the local went: %v", v)
	}
	// Bad copies are refused; the store is bounded.
	r.onLoop(t, func(h *registry.Host) {
		if _, err := h.ParseEntry(remoteJSON("O", "x2", 80, 1), "P"); err == nil {
			t.Error("an entry of O accepted as P's")
		}
		if _, err := h.ParseEntry(remoteJSON("self", "x2", 80, 1), "self"); err == nil {
			t.Error("an entry of this server accepted as a copy")
		}
		if _, err := h.ParseEntry(remoteJSON("O", "x2", 0, 1), "O"); !errors.Is(err, registry.ErrBadRequest) {
			t.Errorf("port 0: %v", err)
		}
	})
	for i := range 3 {
		if err := set("O", fmt.Sprintf("y%d", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := set("O", "y9", 1); !errors.Is(err, registry.ErrLimit) {
		t.Fatalf("a copy beyond MaxEntries: %v", err)
	}
	r.onLoop(t, func(h *registry.Host) {
		if n := h.DeleteOrigin("O", registry.EventExpire); n != 4 {
			t.Errorf("DeleteOrigin: %d", n)
		}
	})
	if v := show(); len(v) != 1 {
		t.Fatalf("after O expired: %v", v)
	}

	// SYNC goes to the replicator; its error is the ERR reply.
	s := rawSocket(t, srv, zmtp.REQ)
	if rep := roundTrip(t, s, []byte("SYNC"), []byte("hi")); string(rep[0]) != "SYNC" || string(rep[1]) != "echo hi" {
		t.Fatalf("SYNC: %q", rep)
	}
	if rep := roundTrip(t, s, []byte("sync"), []byte("bad")); string(rep[0]) != "ERR" || !strings.Contains(string(rep[1]), "not link traffic") {
		t.Fatalf("bad SYNC: %q", rep)
	}
	// JOIN and INFO too.
	b, err := c.Request(ctx, registry.VerbJoin, map[string]string{"peer": "p"})
	if err != nil || !strings.Contains(string(b), `\"peer\":\"p\"`) {
		t.Fatalf("JOIN: %s %v", b, err)
	}
	info, err := c.Info(ctx)
	if err != nil || string(info.Join) != `{"links":7}` {
		t.Fatalf("INFO join: %s %v", info.Join, err)
	}
	testutil.Eventually(t, 5*time.Second, "ticks", func() bool { return r.ticks.Load() > 2 })
	srv.Close()
	if !r.stopped.Load() {
		t.Fatal("not stopped")
	}
}
