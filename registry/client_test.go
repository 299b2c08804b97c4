package registry_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

func shortTTL() registry.Config {
	return registry.Config{MinTTL: 50 * time.Millisecond, SweepInterval: 20 * time.Millisecond, WatchKeepalive: 200 * time.Millisecond}
}

func TestClientRegisterLookup(t *testing.T) {
	srv := startServer(t, registry.Config{ServerID: "s1"})
	svc := newClient(t, srv, registry.ClientConfig{})
	cli := newClient(t, srv, registry.ClientConfig{})
	ctx := testutil.Context(t, 10*time.Second)

	r1, err := svc.Register(ctx, registry.Service{Name: "api", Host: "10.0.0.1", Port: 9000, Meta: map[string]string{"zone": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := svc.Register(ctx, registry.Service{Name: "api", Host: "10.0.0.2", Port: 9000, Proto: "http"})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Instance() == r2.Instance() || r1.Entry().Origin != "s1" || r1.Entry().Version != 1 || r1.Entry().TTL != registry.DefaultTTL {
		t.Fatalf("registrations: %+v %+v", r1.Entry(), r2.Entry())
	}
	es, err := cli.Lookup(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Meta["zone"] != "a" || es[0].Proto != "tcp" || es[1].Proto != "http" || es[1].Addr() != "10.0.0.2:9000" {
		t.Fatalf("lookup: %+v", es)
	}
	if es, _ := cli.Lookup(ctx, "nothing"); len(es) != 0 {
		t.Fatalf("lookup of nothing: %+v", es)
	}
	// Registering the same endpoint again is the same entry.
	r3, err := svc.Register(ctx, registry.Service{Name: "api", Host: "10.0.0.1", Port: 9000, Meta: map[string]string{"zone": "a"}})
	if err != nil || r3.Instance() != r1.Instance() {
		t.Fatalf("same endpoint again: %v %v", r3, err)
	}
	// Round robin visits both; random stays in range.
	seen := map[string]bool{}
	for range 4 {
		e, err := cli.Pick(ctx, "api")
		if err != nil {
			t.Fatal(err)
		}
		seen[e.Host] = true
	}
	if len(seen) != 2 {
		t.Fatalf("round robin saw %v", seen)
	}
	rnd := registry.Random()
	for range 100 {
		if i := rnd.Pick("x", 3); i < 0 || i > 2 {
			t.Fatal(i)
		}
	}
	// Update bumps the version.
	if err := r2.Update(ctx, registry.Service{Name: "api", Host: "10.0.0.2", Port: 9001, Proto: "http"}); err != nil {
		t.Fatal(err)
	}
	if r2.Entry().Version != 2 || r2.Entry().Port != 9001 {
		t.Fatalf("after update: %+v", r2.Entry())
	}
	names, err := cli.List(ctx)
	if err != nil || len(names) != 1 || names[0] != (registry.NameCount{Name: "api", Count: 2}) {
		t.Fatalf("list: %v %v", names, err)
	}
	if err := r1.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	if es, _ := cli.Lookup(ctx, "api"); len(es) != 1 || es[0].Instance != r2.Instance() {
		t.Fatalf("after deregister: %+v", es)
	}
	// Close deregisters the rest.
	svc.Close()
	if es, _ := cli.Lookup(ctx, "api"); len(es) != 0 {
		t.Fatalf("after close: %+v", es)
	}
	if _, err := svc.Lookup(ctx, "api"); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("closed client: %v", err)
	}
}

// TestOwnership: only the token that registered an entry may heartbeat,
// update or deregister it.
func TestOwnership(t *testing.T) {
	srv := startServer(t, registry.Config{Static: []registry.Service{{Name: "ssh", Host: "127.0.0.1", Port: 22}}})
	owner := newClient(t, srv, registry.ClientConfig{})
	ctx := testutil.Context(t, 10*time.Second)
	reg, err := owner.Register(ctx, registry.Service{Name: "db", Host: "10.0.0.9", Port: 5432})
	if err != nil {
		t.Fatal(err)
	}
	thief := newClient(t, srv, registry.ClientConfig{})
	for _, req := range []struct {
		verb string
		body map[string]any
	}{
		{"DEREGISTER", map[string]any{"token": thief.Token(), "instance": reg.Instance()}},
		{"UPDATE", map[string]any{"token": thief.Token(), "instance": reg.Instance(), "port": 1}},
		{"HEARTBEAT", map[string]any{"token": thief.Token(), "instance": reg.Instance()}},
		{"REGISTER", map[string]any{"token": thief.Token(), "instance": reg.Instance(), "name": "db", "host": "6.6.6.6", "port": 1}},
	} {
		if _, err := thief.Request(ctx, req.verb, req.body); !errors.Is(err, registry.ErrForbidden) {
			t.Errorf("%s by another token: %v, want forbidden", req.verb, err)
		}
	}
	// Static entries belong to nobody.
	es, err := thief.Lookup(ctx, "ssh")
	if err != nil || len(es) != 1 || !es[0].Static || es[0].Port != 22 {
		t.Fatalf("static: %+v %v", es, err)
	}
	if _, err := thief.Request(ctx, "DEREGISTER", map[string]any{"token": thief.Token(), "instance": es[0].Instance}); !errors.Is(err, registry.ErrForbidden) {
		t.Errorf("deregister static: %v", err)
	}
	if es, _ := thief.Lookup(ctx, "db"); len(es) != 1 || es[0].Host != "10.0.0.9" {
		t.Fatalf("entry changed: %+v", es)
	}
	// The token survives a new connection: a second client with the same
	// token owns the entry.
	again := newClient(t, srv, registry.ClientConfig{Token: owner.Token()})
	if _, err := again.Request(ctx, "DEREGISTER", map[string]any{"token": owner.Token(), "instance": reg.Instance()}); err != nil {
		t.Fatalf("same token, new connection: %v", err)
	}
}

func TestLimits(t *testing.T) {
	srv := startServer(t, registry.Config{MaxEntries: 5, MaxEntriesPerClient: 3, MaxWatches: 3, MaxWatchesPerPeer: 2})
	ctx := testutil.Context(t, 10*time.Second)
	a := newClient(t, srv, registry.ClientConfig{})
	for i := range 3 {
		if _, err := a.Register(ctx, registry.Service{Name: "a", Host: "h", Port: 1 + i}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.Register(ctx, registry.Service{Name: "a", Host: "h", Port: 99})
	if !errors.Is(err, registry.ErrLimit) || !errContains(err, "limit per client") {
		t.Fatalf("4th entry of a client: %v", err)
	}
	// Another client from the same address counts with a (tokens are
	// free); one from elsewhere (here ipc) has a quota of its own.
	same := newClient(t, srv, registry.ClientConfig{})
	if _, err := same.Register(ctx, registry.Service{Name: "a2", Host: "h", Port: 1}); !errors.Is(err, registry.ErrLimit) || !errContains(err, "address 127.0.0.1") {
		t.Fatalf("a new token from a's address: %v", err)
	}
	ipc := "ipc://" + filepath.Join(t.TempDir(), "r.sock")
	if err := srv.Bind(ipc); err != nil {
		t.Fatal(err)
	}
	b := nodetest.RegistryClient(t, ipc, registry.ClientConfig{})
	for i := range 2 {
		if _, err := b.Register(ctx, registry.Service{Name: "b", Host: "h", Port: 1 + i}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Register(ctx, registry.Service{Name: "b", Host: "h", Port: 3}); !errors.Is(err, registry.ErrLimit) || !errContains(err, "max entries") {
		t.Fatalf("6th entry: %v", err)
	}
	// Updating an existing entry is not a new one.
	if _, err := a.Register(ctx, registry.Service{Name: "a", Host: "h", Port: 1, Meta: map[string]string{"x": "y"}}); err != nil {
		t.Fatalf("re-register at the limit: %v", err)
	}
	// Watches: per connection, then in all.
	for range 2 {
		if _, err := a.Request(ctx, "WATCH", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Request(ctx, "WATCH", nil); !errors.Is(err, registry.ErrLimit) {
		t.Fatalf("3rd watch of a connection: %v", err)
	}
	if _, err := b.Request(ctx, "WATCH", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Request(ctx, "WATCH", nil); !errors.Is(err, registry.ErrLimit) {
		t.Fatalf("4th watch: %v", err)
	}
}

func errContains(err error, s string) bool {
	return err != nil && contains(err.Error(), s)
}

func contains(a, b string) bool {
	return len(b) == 0 || len(a) >= len(b) && (a[:len(b)] == b || contains(a[1:], b))
}

// TestTTLExpiry: an entry whose heartbeats stop goes away after its TTL,
// and watchers hear of it; one whose heartbeats go on stays.
func TestTTLExpiry(t *testing.T) {
	srv := startServer(t, shortTTL())
	ctx := testutil.Context(t, 10*time.Second)
	watcher := newClient(t, srv, registry.ClientConfig{})
	events, err := watcher.Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Type != registry.EventSync || len(ev.Entries) != 0 {
		t.Fatalf("first event: %+v", ev)
	}
	// A raw client registers and never heartbeats.
	req := rawSocket(t, srv, zmtp.REQ)
	reg := mustOK(t, req, "REGISTER", map[string]any{"name": "svc", "host": "10.1.1.1", "port": 1, "ttl": 0.2})
	// A Go client registers and heartbeats (every TTL/3; the TTL leaves room
	// for the pauses of a loaded test machine).
	live := newClient(t, srv, registry.ClientConfig{})
	kept, err := live.Register(ctx, registry.Service{Name: "svc", Host: "10.1.1.2", Port: 2, TTL: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got := map[registry.EventType][]string{}
	deadline := time.After(5 * time.Second)
	for len(got[registry.EventExpire]) == 0 {
		select {
		case ev := <-events:
			got[ev.Type] = append(got[ev.Type], ev.Entry.Instance)
		case <-deadline:
			t.Fatalf("no expire event; got %v", got)
		}
	}
	if !slices.Equal(got[registry.EventExpire], []string{reg["instance"].(string)}) || len(got[registry.EventRegister]) != 2 {
		t.Fatalf("events: %v", got)
	}
	// The heartbeated entry outlives several TTLs.
	time.Sleep(1500 * time.Millisecond)
	es, err := watcher.Lookup(ctx, "svc")
	if err != nil || len(es) != 1 || es[0].Instance != kept.Instance() {
		t.Fatalf("after expiry: %+v %v", es, err)
	}
	if st := srv.Stats(); st.Expired != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestWatchEvents: register, update, deregister and expire reach a watcher
// of the name and one of everything, in order, with sequence numbers.
func TestWatchEvents(t *testing.T) {
	srv := startServer(t, shortTTL())
	ctx := testutil.Context(t, 10*time.Second)
	w := newClient(t, srv, registry.ClientConfig{})
	pre := newClient(t, srv, registry.ClientConfig{})
	if _, err := pre.Register(ctx, registry.Service{Name: "cache", Host: "10.0.0.1", Port: 6379}); err != nil {
		t.Fatal(err)
	}
	one, err := w.Watch(ctx, "cache")
	if err != nil {
		t.Fatal(err)
	}
	all, err := w.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan registry.Event{one, all} {
		if ev := <-ch; ev.Type != registry.EventSync || len(ev.Entries) != 1 || ev.Entries[0].Port != 6379 {
			t.Fatalf("sync: %+v", ev)
		}
	}
	svc := newClient(t, srv, registry.ClientConfig{})
	r, err := svc.Register(ctx, registry.Service{Name: "cache", Host: "10.0.0.2", Port: 6379})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Register(ctx, registry.Service{Name: "other", Host: "10.0.0.3", Port: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.Update(ctx, registry.Service{Name: "cache", Host: "10.0.0.2", Port: 6380}); err != nil {
		t.Fatal(err)
	}
	if err := r.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"register cache 6379", "update cache 6380", "deregister cache 6380"}
	check := func(ch <-chan registry.Event, want []string) {
		t.Helper()
		for i, w := range want {
			select {
			case ev := <-ch:
				if got := fmt.Sprintf("%s %s %d", ev.Type, ev.Entry.Name, ev.Entry.Port); got != w || ev.Seq != uint64(i+1) {
					t.Fatalf("event %d: %q seq %d, want %q", i, got, ev.Seq, w)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no event %q", w)
			}
		}
	}
	check(one, want)
	check(all, []string{"register cache 6379", "register other 1", "update cache 6380", "deregister cache 6380"})
	// A watch ends with its context.
	wctx, cancel := context.WithCancel(ctx)
	ch, err := w.Watch(wctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	<-ch
	cancel()
	for range ch {
	}
	testutil.Eventually(t, 5*time.Second, "watch removed on the server", func() bool { return srv.Stats().Watches == 2 })
}

// TestWatchDisconnect: a watcher that goes away is forgotten at the next
// event or keepalive.
func TestWatchDisconnect(t *testing.T) {
	srv := startServer(t, shortTTL())
	d := rawSocket(t, srv, zmtp.DEALER)
	rep := roundTrip(t, d, []byte("WATCH"), []byte(`{}`))
	if string(rep[0]) != "OK" {
		t.Fatalf("%q", rep)
	}
	// Keepalives arrive while nothing happens.
	ev, err := d.Recv()
	if err != nil || string(ev[0]) != "EVENT" || !contains(string(ev[1]), `"type":"keepalive"`) {
		t.Fatalf("keepalive: %q %v", ev, err)
	}
	if srv.Stats().Watches != 1 {
		t.Fatal("no watch")
	}
	d.Close()
	testutil.Eventually(t, 5*time.Second, "watch of a closed peer removed", func() bool { return srv.Stats().Watches == 0 })
}

// TestRestartInProcess: the server goes away and a new one comes up on the
// same port; the client registers and watches again by itself.
func TestRestartInProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := "tcp://" + ln.Addr().String()
	ln.Close()
	cfg := shortTTL()
	srv1, err := registry.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv1.Bind(ep); err != nil {
		t.Fatal(err)
	}
	go srv1.Serve(context.Background())
	ctx := testutil.Context(t, 10*time.Second)
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: ep, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var regs []*registry.Registration
	for i := range 5 {
		r, err := c.Register(ctx, registry.Service{Name: "svc", Host: "10.0.0.1", Port: 100 + i, TTL: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, r)
	}
	events, err := c.Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Type != registry.EventSync || len(ev.Entries) != 5 {
		t.Fatalf("sync: %+v", ev)
	}
	srv1.Close()
	srv2 := startServerAt(t, cfg, ep)
	observer := newClient(t, srv2, registry.ClientConfig{})
	testutil.Eventually(t, 5*time.Second, "entries back on the new server", func() bool {
		es, err := observer.Lookup(ctx, "svc")
		return err == nil && len(es) == 5
	})
	es, _ := observer.Lookup(ctx, "svc")
	for i, e := range es {
		if !slices.ContainsFunc(regs, func(r *registry.Registration) bool { return r.Instance() == e.Instance }) {
			t.Errorf("entry %d has a new instance id %s", i, e.Instance)
		}
		if e.Version < 2 {
			t.Errorf("entry %d version %d: want above the old copy's", i, e.Version)
		}
	}
	// The watch is back: a sync (after any events of the old stream), then
	// new events.
	deadline := time.After(5 * time.Second)
	for synced := false; !synced; {
		select {
		case ev := <-events:
			synced = ev.Type == registry.EventSync
		case <-deadline:
			t.Fatal("no sync after the restart")
		}
	}
	other := newClient(t, srv2, registry.ClientConfig{})
	if _, err := other.Register(ctx, registry.Service{Name: "svc", Host: "10.0.0.2", Port: 1}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-events:
			if ev.Type == registry.EventRegister && ev.Entry.Host == "10.0.0.2" {
				return
			}
		case <-deadline:
			t.Fatal("no event after the restart")
		}
	}
}

func TestDial(t *testing.T) {
	srv := startServer(t, registry.Config{})
	ctx := testutil.Context(t, 10*time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	// A dead instance (a closed port) and a live one: Dial fails over.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	svc := newClient(t, srv, registry.ClientConfig{})
	for _, p := range []int{deadPort, ln.Addr().(*net.TCPAddr).Port} {
		if _, err := svc.Register(ctx, registry.Service{Name: "echo", Host: "127.0.0.1", Port: p}); err != nil {
			t.Fatal(err)
		}
	}
	cli := newClient(t, srv, registry.ClientConfig{})
	for range 4 { // round robin starts at each instance in turn
		conn, err := cli.Dial(ctx, "echo")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2)
		if _, err := conn.Read(buf); err != nil || string(buf) != "hi" {
			t.Fatalf("read %q %v", buf, err)
		}
		conn.Close()
	}
	if _, err := cli.Dial(ctx, "nothing"); !errors.Is(err, registry.ErrNoInstances) {
		t.Fatalf("dial nothing: %v", err)
	}
}

// TestConcurrency: many clients register, look up, update and deregister
// at once (run with -race).
func TestConcurrency(t *testing.T) {
	srv := startServer(t, shortTTL())
	ctx := testutil.Context(t, 10*time.Second)
	var wg sync.WaitGroup
	const clients, each = 8, 20
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := registry.NewClient(registry.ClientConfig{Endpoint: srv.Endpoint()})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			w, err := c.Watch(ctx, fmt.Sprintf("svc-%d", i))
			if err != nil {
				errs <- err
				return
			}
			var regs []*registry.Registration
			for j := range each {
				r, err := c.Register(ctx, registry.Service{Name: fmt.Sprintf("svc-%d", i), Host: "10.0.0.1", Port: 1 + j, TTL: time.Second})
				if err != nil {
					errs <- err
					return
				}
				regs = append(regs, r)
				if _, err := c.Lookup(ctx, fmt.Sprintf("svc-%d", (i+j)%clients)); err != nil {
					errs <- err
					return
				}
			}
			es, err := c.Lookup(ctx, fmt.Sprintf("svc-%d", i))
			if err != nil || len(es) != each {
				errs <- fmt.Errorf("client %d: lookup own name: %d entries, %v", i, len(es), err)
				return
			}
			for _, r := range regs[:each/2] {
				if err := r.Deregister(ctx); err != nil {
					errs <- err
					return
				}
			}
			n := 0
			for ev := range w {
				if ev.Type == registry.EventRegister || ev.Type == registry.EventDeregister {
					n++
				}
				if n == each+each/2 {
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	testutil.Eventually(t, 5*time.Second, "every client's entries removed at Close", func() bool { return srv.Stats().Entries == 0 })
}
