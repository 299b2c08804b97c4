package registry_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
)

func nextEvent(t *testing.T, ch <-chan registry.Event) registry.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return registry.Event{}
}

func TestLocalRegisterLookupUpdateDeregister(t *testing.T) {
	srv := startServer(t, registry.Config{})
	c := newClient(t, srv, registry.ClientConfig{})
	ctx := testutil.Context(t, 10*time.Second)
	loc := srv.Local()

	events, err := loc.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Type != registry.EventSync || len(ev.Entries) != 0 {
		t.Fatalf("first event: %+v", ev)
	}
	inst, err := loc.Register(ctx, registry.Service{Name: "proxy", Host: "127.0.0.1", Port: 4000, Meta: map[string]string{"k": "v"}})
	if err != nil || inst == "" {
		t.Fatalf("Register: %q %v", inst, err)
	}
	if ev := nextEvent(t, events); ev.Type != registry.EventRegister || ev.Entry.Instance != inst || ev.Entry.Meta["k"] != "v" || ev.Seq != 1 {
		t.Fatalf("register event: %+v", ev)
	}
	es, err := c.Lookup(ctx, "proxy")
	if err != nil || len(es) != 1 || es[0].Instance != inst || es[0].Port != 4000 || es[0].Origin != srv.ID() || es[0].Version != 1 {
		t.Fatalf("lookup over ZMTP: %+v %v", es, err)
	}
	// A client cannot touch it.
	if _, err := c.Request(ctx, registry.VerbDeregister, map[string]any{"token": c.Token(), "instance": inst}); !errors.Is(err, registry.ErrForbidden) {
		t.Fatalf("client deregister: %v", err)
	}
	// It never expires (the server's sweep runs every few ms here).
	if err := loc.Update(ctx, inst, registry.Service{Name: "proxy", Host: "127.0.0.1", Port: 4001}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Type != registry.EventUpdate || ev.Entry.Port != 4001 || ev.Entry.Version != 2 {
		t.Fatalf("update event: %+v", ev)
	}
	es, _ = c.Lookup(ctx, "proxy")
	if len(es) != 1 || es[0].Port != 4001 {
		t.Fatalf("lookup after update: %+v", es)
	}
	// Bad input and unknown instances: the usual errors.
	if _, err := loc.Register(ctx, registry.Service{Name: "x", Host: "h", Port: 0}); !errors.Is(err, registry.ErrBadRequest) {
		t.Fatalf("port 0: %v", err)
	}
	if err := loc.Update(ctx, "nope", registry.Service{Name: "x", Host: "h", Port: 1}); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("update of nothing: %v", err)
	}
	if err := loc.Update(ctx, inst, registry.Service{Name: "bad name", Host: "h", Port: 1}); !errors.Is(err, registry.ErrBadRequest) {
		t.Fatalf("update with a bad name: %v", err)
	}
	if err := loc.Deregister(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Type != registry.EventDeregister || ev.Entry.Instance != inst {
		t.Fatalf("deregister event: %+v", ev)
	}
	if err := loc.Deregister(ctx, inst); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("deregister again: %v", err)
	}
	if es, _ := c.Lookup(ctx, "proxy"); len(es) != 0 {
		t.Fatalf("lookup after deregister: %+v", es)
	}
	// Client registrations show too, and a second watcher starts with them.
	if _, err := c.Register(ctx, registry.Service{Name: "web", Host: "h", Port: 80}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Type != registry.EventRegister || ev.Entry.Name != "web" {
		t.Fatalf("client's register: %+v", ev)
	}
	w2, err := loc.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w2); ev.Type != registry.EventSync || len(ev.Entries) != 1 || ev.Entries[0].Name != "web" {
		t.Fatalf("second watcher's sync: %+v", ev)
	}
}

func TestLocalWatchEndsWithContext(t *testing.T) {
	base := runtime.NumGoroutine()
	srv := startServer(t, registry.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	events, err := srv.Local().Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, events)
	cancel()
	testutil.Eventually(t, 5*time.Second, "the channel closes", func() bool {
		select {
		case _, ok := <-events:
			return !ok
		default:
			return false
		}
	})
	srv.Close()
	testutil.CheckGoroutines(t, base)
}

func TestLocalCloseWhileWatching(t *testing.T) {
	srv := startServer(t, registry.Config{})
	ctx := testutil.Context(t, 10*time.Second)
	loc := srv.Local()
	events, err := loc.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, events)
	if _, err := loc.Register(ctx, registry.Service{Name: "a", Host: "h", Port: 1}); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	// What was queued may still come; then the channel closes.
	testutil.Eventually(t, 5*time.Second, "the channel closes", func() bool {
		select {
		case _, ok := <-events:
			return !ok
		default:
			return false
		}
	})
	if _, err := loc.Register(ctx, registry.Service{Name: "a", Host: "h", Port: 2}); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("Register after Close: %v", err)
	}
	if _, err := loc.Watch(ctx); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("Watch after Close: %v", err)
	}
}

func TestLocalNotServing(t *testing.T) {
	srv, err := registry.NewServer(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	// Before Serve: a call waits for it, or for its ctx.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := srv.Local().Register(short, registry.Service{Name: "a", Host: "h", Port: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Register before Serve, ctx ending: %v", err)
	}
	ctx := testutil.Context(t, 5*time.Second)
	got := make(chan error, 1)
	go func() {
		_, err := srv.Local().Register(ctx, registry.Service{Name: "b", Host: "h", Port: 1})
		got <- err
	}()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	if err := <-got; err != nil {
		t.Fatalf("Register waiting for Serve: %v", err)
	}
	c := newClient(t, srv, registry.ClientConfig{})
	if es, err := c.Lookup(ctx, "a"); err != nil || len(es) != 0 {
		t.Fatalf("the call whose ctx ended ran: %+v %v", es, err)
	}
	srv.Close()
	<-served
	if err := srv.Local().Deregister(ctx, "x"); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("Deregister after Close: %v", err)
	}
	// Closed before Serve ever ran: ErrClosed too.
	srv2, err := registry.NewServer(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv2.Close()
	if _, err := srv2.Local().Watch(ctx); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("Watch on a server closed before Serve: %v", err)
	}
}

// TestLocalSlowWatcher: a watcher that does not read holds the loop up in
// nothing; once it reads, it gets a sync with the current state.
func TestLocalSlowWatcher(t *testing.T) {
	srv := startServer(t, registry.Config{MaxEntries: 10000, MaxEntriesPerClient: 10000})
	ctx := testutil.Context(t, 30*time.Second)
	loc := srv.Local()
	events, err := loc.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	for i := range n {
		if _, err := loc.Register(ctx, registry.Service{Name: "s", Host: "h", Port: 1 + i}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < n {
		ev := nextEvent(t, events)
		switch ev.Type {
		case registry.EventSync:
			clear(seen)
			for _, e := range ev.Entries {
				seen[e.Instance] = true
			}
		case registry.EventRegister:
			seen[ev.Entry.Instance] = true
		}
	}
}
