package join_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/zmtp/curve"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp"
)

// addr is a server's HOST:PORT, to join it.
func addr(srv *node) string { return strings.TrimPrefix(srv.Endpoint(), "tcp://") }

// view is what a server shows for a name: instance → origin@version.
func view(t testing.TB, c *registry.Client, name string) map[string]string {
	t.Helper()
	es, err := c.Lookup(ctxT(t), name)
	if err != nil {
		t.Fatalf("lookup %s on %s: %v", name, c.Endpoint(), err)
	}
	m := map[string]string{}
	for _, e := range es {
		if _, dup := m[e.Instance]; dup {
			t.Fatalf("lookup %s on %s: instance %s twice: %+v", name, c.Endpoint(), e.Instance, es)
		}
		m[e.Instance] = fmt.Sprintf("%s@%d %s", e.Origin, e.Version, e.Addr())
	}
	return m
}

// converge waits until every client shows the same view of name, of n
// entries, and returns it.
func converge(t testing.TB, name string, n int, cs ...*registry.Client) map[string]string {
	t.Helper()
	var last []map[string]string
	defer func() {
		if t.Failed() {
			t.Logf("last views of %q: %v", name, last)
		}
	}()
	testutil.Eventually(t, 20*time.Second, fmt.Sprintf("convergence on %d entries of %q", n, name), func() bool {
		last = last[:0]
		ok := true
		for _, c := range cs {
			v := view(t, c, name)
			last = append(last, v)
			if len(v) != n || len(last) > 1 && fmt.Sprint(v) != fmt.Sprint(last[0]) {
				ok = false
			}
		}
		return ok
	})
	return last[0]
}

func TestJoinChainInProcess(t *testing.T) {
	a := startServer(t, joinCfg("A"))
	b := startServer(t, joinCfg("B", addr(a)))
	c := startServer(t, joinCfg("C", "tcp://"+addr(b)))
	ca, cb, cc := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{}), newClient(t, c, registry.ClientConfig{})
	ctx := ctxT(t)
	r, err := ca.Register(ctx, registry.Service{Name: "web", Host: "10.0.0.1", Port: 80, Meta: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	v := converge(t, "web", 1, ca, cb, cc)
	if v[r.Instance()] != "A@1 10.0.0.1:80" {
		t.Fatalf("on C: %v", v)
	}
	es, _ := cc.Lookup(ctx, "web")
	if es[0].Meta["k"] != "v" || es[0].Origin != "A" {
		t.Fatalf("entry on C: %+v", es[0])
	}
	// And back: register on C, see it on A.
	if _, err := cc.Register(ctx, registry.Service{Name: "web", Host: "10.0.0.3", Port: 80}); err != nil {
		t.Fatal(err)
	}
	converge(t, "web", 2, ca, cb, cc)
	// Update and deregister travel too.
	if err := r.Update(ctx, registry.Service{Name: "web", Host: "10.0.0.1", Port: 81}); err != nil {
		t.Fatal(err)
	}
	v = converge(t, "web", 2, ca, cb, cc)
	if v[r.Instance()] != "A@2 10.0.0.1:81" {
		t.Fatalf("after update: %v", v)
	}
	if err := r.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	converge(t, "web", 1, ca, cb, cc)
	// Entries of a joined server are not its clients' to change.
	es, _ = ca.Lookup(ctx, "web")
	if _, err := ca.Request(ctx, registry.VerbDeregister, map[string]any{"token": ca.Token(), "instance": es[0].Instance}); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("deregister of a joined entry: %v", err)
	}
}

// linked waits until the server of c has n links synced.
func linked(t testing.TB, c *registry.Client, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%d links synced on %s", n, c.Endpoint()), func() bool {
		ji := joinInfo(t, c)
		if ji == nil {
			return false
		}
		k := 0
		for _, l := range ji.Links {
			if l.Synced {
				k++
			}
		}
		return k == n
	})
}

// TestJoinMeshes: a triangle and a ring of five (cycles), a star: every
// server shows every entry once, and updates and deregistrations (which
// must not be revived by the copies going round the cycle) converge.
func TestJoinMeshes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		edges [][2]int // i joins j
	}{
		{"triangle", 3, [][2]int{{1, 0}, {2, 0}, {2, 1}}},
		{"ring", 5, [][2]int{{1, 0}, {2, 1}, {3, 2}, {4, 3}, {0, 4}}},
		{"star", 5, [][2]int{{1, 0}, {2, 0}, {3, 0}, {4, 0}}},
		{"both-ways", 2, [][2]int{{1, 0}, {0, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvs := make([]*node, tc.n)
			cls := make([]*registry.Client, tc.n)
			for i := range srvs {
				srvs[i] = startServer(t, joinCfg(fmt.Sprintf("%s%d", tc.name, i)))
				cls[i] = newClient(t, srvs[i], registry.ClientConfig{})
			}
			ctx := ctxT(t)
			for _, e := range tc.edges {
				if _, isNew, err := cls[e[0]].Join(ctx, addr(srvs[e[1]])); err != nil || !isNew {
					t.Fatalf("join %v: %v %v", e, isNew, err)
				}
			}
			var regs []*registry.Registration
			for i, c := range cls {
				for k := range 3 {
					r, err := c.Register(ctx, registry.Service{Name: "svc", Host: fmt.Sprintf("10.0.%d.%d", i, k), Port: 80})
					if err != nil {
						t.Fatal(err)
					}
					regs = append(regs, r)
				}
			}
			v := converge(t, "svc", 3*tc.n, cls...)
			deg := make([]int, tc.n)
			for _, e := range tc.edges {
				deg[e[0]]++
				deg[e[1]]++
			}
			for i, c := range cls {
				linked(t, c, deg[i])
			}
			snaps := make([]int64, tc.n)
			for i, srv := range srvs {
				snaps[i] = srv.j.Stats().SnapsOut
			}
			for _, r := range regs {
				if v[r.Instance()] == "" {
					t.Fatalf("instance %s missing: %v", r.Instance(), v)
				}
			}
			// Change some, remove some, at once from every server.
			var wg sync.WaitGroup
			for i, r := range regs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var err error
					switch i % 3 {
					case 0:
						err = r.Deregister(ctx)
					case 1:
						err = r.Update(ctx, registry.Service{Name: "svc", Host: r.Entry().Host, Port: 81})
					}
					if err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			v = converge(t, "svc", 2*tc.n, cls...)
			for i, r := range regs {
				want := i%3 != 0
				if got := v[r.Instance()] != ""; got != want {
					t.Fatalf("instance %d (%s) shown %v: %v", i, r.Instance(), got, v)
				}
				if i%3 == 1 && !strings.HasSuffix(v[r.Instance()], ":81") {
					t.Fatalf("update of %s not seen: %v", r.Instance(), v)
				}
			}
			// Nothing comes back once the copies have gone round.
			time.Sleep(300 * time.Millisecond)
			converge(t, "svc", 2*tc.n, cls...)
			// Changes travelled as changes: no snapshot after the links'
			// initial exchange.
			for i, srv := range srvs {
				if st := srv.j.Stats(); st.SnapsOut != snaps[i] || st.GapsIn != 0 {
					t.Errorf("%s: %d snapshots sent after the initial exchange, %d gaps", srv.ID(), st.SnapsOut-snaps[i], st.GapsIn)
				}
			}
		})
	}
}

// TestJoinRuntimeVerb: JOIN at run time, its errors, and a server that
// joins itself (refused, and not dialled again).
func TestJoinRuntimeVerb(t *testing.T) {
	var mu sync.Mutex
	var events []join.LinkEvent
	cfg := joinCfg("R1")
	cfg.join.OnLink = func(ev join.LinkEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}
	a := startServer(t, cfg)
	b := startServer(t, joinCfg("R2"))
	ca, cb := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{})
	ctx := ctxT(t)
	for _, bad := range []string{"", "ipc:///tmp/x", "host:0", "host:99999", "a b", "[::1"} {
		if _, _, err := ca.Join(ctx, bad); !errors.Is(err, registry.ErrBadRequest) {
			t.Errorf("JOIN %q: %v", bad, err)
		}
	}
	if _, err := ca.Request(ctx, registry.VerbJoin, map[string]any{"peer": 7}); !errors.Is(err, registry.ErrBadRequest) {
		t.Errorf("JOIN with a number: %v", err)
	}
	got, isNew, err := ca.Join(ctx, "tcp://"+addr(b))
	if err != nil || !isNew || got != addr(b) {
		t.Fatalf("JOIN: %q %v %v", got, isNew, err)
	}
	if _, isNew, err := ca.Join(ctx, addr(b)); err != nil || isNew {
		t.Fatalf("JOIN again: %v %v", isNew, err)
	}
	if _, err := cb.Register(ctx, registry.Service{Name: "x", Host: "h", Port: 1}); err != nil {
		t.Fatal(err)
	}
	converge(t, "x", 1, ca, cb)
	testutil.Eventually(t, 5*time.Second, "OnLink up", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 1 && events[0].Up && events[0].Addr == addr(b) && events[0].Peer == "R2"
	})
	ji := joinInfo(t, ca)
	if ji == nil || len(ji.Links) != 1 || !ji.Links[0].Synced ||
		ji.Links[0].Dir != "out" || ji.Remote != 1 || len(ji.Origins) != 1 {
		t.Fatalf("INFO join: %+v", ji)
	}
	// Itself: refused, not dialled again.
	if _, _, err := cb.Join(ctx, addr(b)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "self-join given up", func() bool {
		ji := joinInfo(t, cb)
		if ji == nil {
			return false
		}
		for _, l := range ji.Links {
			if l.Dir == "out" || l.Peer == "R2" {
				return false
			}
		}
		return len(ji.Links) == 1 // A's
	})
}

// TestJoinVersionWins: a client that moves its instance from one server to
// another, registering again with its last version, is shown once
// everywhere: the newer copy. A server shows its own live registration
// over copies from elsewhere, until it expires.
func TestJoinVersionWins(t *testing.T) {
	a := startServer(t, joinCfg("VA"))
	b := startServer(t, joinCfg("VB", addr(a)))
	c := startServer(t, joinCfg("VC", addr(b)))
	ca, cb, cc := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{}), newClient(t, c, registry.ClientConfig{})
	ctx := ctxT(t)
	move := func(inst string) {
		t.Helper()
		if _, err := cc.Request(ctx, registry.VerbRegister, map[string]any{"name": "mv", "host": "10.1.1.2", "port": 1,
			"instance": inst, "version": 1, "token": ca.Token()}); err != nil { // the moving client keeps its token, which owns the id
			t.Fatal(err)
		}
	}
	// Still heartbeated on A: A shows its own, B and C the newer copy;
	// when the newer goes, the older (alive at A) shows again.
	r, err := ca.Register(ctx, registry.Service{Name: "mv", Host: "10.1.1.1", Port: 1, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	converge(t, "mv", 1, ca, cb, cc)
	move(r.Instance())
	v := converge(t, "mv", 1, cb, cc)
	if v[r.Instance()] != "VC@2 10.1.1.2:1" {
		t.Fatalf("after the move: %v", v)
	}
	if v := view(t, ca, "mv"); v[r.Instance()] != "VA@1 10.1.1.1:1" {
		t.Fatalf("A's own: %v", v)
	}
	if _, err := cc.Request(ctx, registry.VerbDeregister, map[string]any{"token": ca.Token()}); err != nil {
		t.Fatal(err)
	}
	v = converge(t, "mv", 1, ca, cb, cc)
	if v[r.Instance()] != "VA@1 10.1.1.1:1" {
		t.Fatalf("after leaving C: %v", v)
	}
	if err := r.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	converge(t, "mv", 0, ca, cb, cc)
	// Not heartbeated on A any more (the client moved): A's copy expires
	// and every server shows the new one.
	b2, err := ca.Request(ctx, registry.VerbRegister, map[string]any{"name": "mv", "host": "10.1.1.1", "port": 1,
		"ttl": 0.5, "token": ca.Token()})
	if err != nil {
		t.Fatal(err)
	}
	inst := strings.Split(strings.Split(string(b2), `"instance":"`)[1], `"`)[0]
	move(inst)
	v = converge(t, "mv", 1, ca, cb, cc)
	if v[inst] != "VC@2 10.1.1.2:1" {
		t.Fatalf("after A's copy expired: %v", v)
	}
}

// TestJoinWatch: a watcher on one server sees the entries of the others
// come, change and go, with a sync first.
func TestJoinWatch(t *testing.T) {
	a := startServer(t, joinCfg("WA"))
	b := startServer(t, joinCfg("WB", addr(a)))
	ca, cb := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{})
	ctx := ctxT(t)
	converge(t, "w", 0, ca, cb)
	events, err := cb.Watch(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	next := func() registry.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
		return registry.Event{}
	}
	if ev := next(); ev.Type != registry.EventSync {
		t.Fatalf("first event %v", ev.Type)
	}
	r, err := ca.Register(ctx, registry.Service{Name: "w", Host: "h", Port: 1, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Type != registry.EventRegister || ev.Entry.Origin != "WA" {
		t.Fatalf("register event %+v", ev)
	}
	if err := r.Update(ctx, registry.Service{Name: "w", Host: "h", Port: 2, TTL: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Type != registry.EventUpdate || ev.Entry.Port != 2 {
		t.Fatalf("update event %+v", ev)
	}
	// The owner stops heartbeating: expire at the origin, expire here.
	ca.Close()
	for {
		ev := next()
		if ev.Type == registry.EventExpire || ev.Type == registry.EventDeregister {
			break // Close deregisters; either way it is gone
		}
	}
}

// TestJoinThousandInProcess: 1000 entries on each side sync when the link
// starts, in several snapshot parts.
func TestJoinThousandInProcess(t *testing.T) {
	cfgA, cfgB := joinCfg("TA"), joinCfg("TB")
	cfgA.reg.MaxEntriesPerClient, cfgB.reg.MaxEntriesPerClient = 2000, 2000
	a := startServer(t, cfgA)
	b := startServer(t, cfgB)
	ca, cb := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{})
	ctx := ctxT(t)
	for i := range 1000 {
		for _, c := range []*registry.Client{ca, cb} {
			if _, err := c.Request(ctx, registry.VerbRegister, map[string]any{"token": c.Token(), "name": "bulk",
				"host": fmt.Sprintf("10.%d.%d.%d", i/250, i%250, len(c.Endpoint())%7), "port": 1000 + i, "ttl": 3600,
				"meta": map[string]string{"i": fmt.Sprint(i), "pad": strings.Repeat("x", 64)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, err := cb.Join(ctx, addr(a)); err != nil {
		t.Fatal(err)
	}
	converge(t, "bulk", 2000, ca, cb)
	st := a.j.Stats()
	if st.SnapPartsOut < 2 || st.SnapsOut != 1 {
		t.Fatalf("A sent %d snapshots in %d parts", st.SnapsOut, st.SnapPartsOut)
	}
	t.Logf("A: %d snapshot, %d parts, %d bytes", st.SnapsOut, st.SnapPartsOut, st.SnapBytesOut)
}

// TestJoinLinkCutInProcess: a chain A –proxy– B. Cut: the link drops,
// and after the grace period each side's entries expire on the other;
// restored: the link comes back and so do the entries. In a triangle, the
// same cut loses nothing: A is still heard through C.
func TestJoinLinkCutInProcess(t *testing.T) {
	t.Run("chain", func(t *testing.T) {
		a := startServer(t, joinCfg("CA"))
		p := testutil.NewRelay(t, addr(a), 0)
		b := startServer(t, joinCfg("CB", p.Addr()))
		ca, cb := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{})
		ctx := ctxT(t)
		for _, c := range []*registry.Client{ca, cb} {
			if _, err := c.Register(ctx, registry.Service{Name: "cut", Host: "h", Port: len(c.Endpoint())}); err != nil {
				t.Fatal(err)
			}
		}
		converge(t, "cut", 2, ca, cb)
		p.Cut()
		start := time.Now()
		testutil.Eventually(t, 15*time.Second, "entries of the other side expire", func() bool {
			return len(view(t, ca, "cut")) == 1 && len(view(t, cb, "cut")) == 1
		})
		t.Logf("expired %v after the cut (grace 2s)", time.Since(start).Round(10*time.Millisecond))
		p.Resume()
		converge(t, "cut", 2, ca, cb)
	})
	t.Run("triangle", func(t *testing.T) {
		a := startServer(t, joinCfg("TRA"))
		p := testutil.NewRelay(t, addr(a), 0)
		b := startServer(t, joinCfg("TRB", p.Addr()))
		c := startServer(t, joinCfg("TRC", addr(a), addr(b)))
		ca, cb, cc := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{}), newClient(t, c, registry.ClientConfig{})
		ctx := ctxT(t)
		r, err := ca.Register(ctx, registry.Service{Name: "tri", Host: "h", Port: 1})
		if err != nil {
			t.Fatal(err)
		}
		converge(t, "tri", 1, ca, cb, cc)
		linked(t, cb, 2)
		p.Cut()
		// Past the link timeout and the grace period, B still has A's
		// entry (heard through C), and A's changes reach B.
		time.Sleep(2500 * time.Millisecond)
		if err := r.Update(ctx, registry.Service{Name: "tri", Host: "h", Port: 2}); err != nil {
			t.Fatal(err)
		}
		v := converge(t, "tri", 1, ca, cb, cc)
		if !strings.HasSuffix(v[r.Instance()], ":2") {
			t.Fatalf("update through C: %v", v)
		}
		if st := b.j.Stats(); st.OriginsExpired != 0 || st.LinksDown == 0 {
			t.Fatalf("B: %d origins expired, %d links down", st.OriginsExpired, st.LinksDown)
		}
		p.Resume()
		linked(t, cb, 2)
	})
}

// TestJoinOriginLost: a server that stops (its process gone) has its
// entries expire on the others after the grace period, through a chain;
// started again with the same id and port, with its clients registering
// again, they come back.
func TestJoinOriginLost(t *testing.T) {
	a := startServer(t, joinCfg("LA"))
	ep := a.Endpoint()
	b := startServer(t, joinCfg("LB", addr(a)))
	c := startServer(t, joinCfg("LC", addr(b)))
	cfgA := joinCfg("LA")
	cb, cc := newClient(t, b, registry.ClientConfig{}), newClient(t, c, registry.ClientConfig{})
	owner := newClient(t, a, registry.ClientConfig{})
	ctx := ctxT(t)
	r, err := owner.Register(ctx, registry.Service{Name: "lost", Host: "h", Port: 1, TTL: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	converge(t, "lost", 1, cb, cc)
	a.Close() // gone without a word, as if killed
	start := time.Now()
	converge(t, "lost", 0, cb, cc)
	t.Logf("expired on B and C %v after A stopped (grace 2s)", time.Since(start).Round(10*time.Millisecond))
	startServerAt(t, cfgA, ep)
	v := converge(t, "lost", 1, cb, cc)
	if v[r.Instance()] == "" {
		t.Fatalf("after the restart: %v (want instance %s)", v, r.Instance())
	}
}

// TestJoinCurve: with keys, links run CURVE (JoinConfig.Security makes the
// client side, pinned to the peer's key; the joined server's Config.Security
// is CURVE's server side with an allow-list): a server whose key is allowed
// links and shares; one whose key is not, or one without CURVE, is refused
// and learns nothing.
func TestJoinCurve(t *testing.T) {
	keys := make([]secure.KeyPair, 5) // A, B, evil, client of A, client of B
	for i := range keys {
		kp, err := secure.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = kp
	}
	kA, kB, kEvil, kCA, kCB := keys[0], keys[1], keys[2], keys[3], keys[4]
	cfgA := joinCfg("CURVE-A")
	cfgA.reg.Security = curve.Server(kA, secure.NewAllowList(kB.Public, kCA.Public))
	a := startServer(t, cfgA)
	dialA := func(kp secure.KeyPair) func(string) func() zmtp.Mechanism {
		return func(peer string) func() zmtp.Mechanism {
			if peer != addr(a) {
				t.Errorf("Security asked for %q", peer)
			}
			return curve.Client(kp, kA.Public)
		}
	}
	cfgB := joinCfg("CURVE-B", addr(a))
	cfgB.reg.Security = curve.Server(kB, secure.NewAllowList(kCB.Public))
	cfgB.join.Security = dialA(kB)
	b := startServer(t, cfgB)
	cfgE := joinCfg("CURVE-EVIL", addr(a))
	cfgE.join.Security = dialA(kEvil)
	evil := startServer(t, cfgE)
	plain := startServer(t, joinCfg("PLAIN", addr(a)))

	ca := newClient(t, a, registry.ClientConfig{Security: curve.Client(kCA, kA.Public)})
	cb := newClient(t, b, registry.ClientConfig{Security: curve.Client(kCB, kB.Public)})
	ctx := ctxT(t)
	if _, err := ca.Register(ctx, registry.Service{Name: "sec", Host: "10.0.0.1", Port: 1}); err != nil {
		t.Fatal(err)
	}
	var ji *join.Info
	converge(t, "sec", 1, ca, cb)
	linked(t, ca, 1)
	// The refused ones keep trying (a few timeouts' worth), in vain.
	time.Sleep(2500 * time.Millisecond)
	for _, srv := range []*node{evil, plain} {
		c := newClient(t, srv, registry.ClientConfig{})
		if v := view(t, c, "sec"); len(v) != 0 {
			t.Fatalf("%s learned %v", srv.ID(), v)
		}
		if st := srv.j.Stats(); st.LinksUp != 0 || st.SnapsIn != 0 {
			t.Fatalf("%s linked: %+v", srv.ID(), st)
		}
	}
	ji = joinInfo(t, ca)
	if ji == nil || len(ji.Links) != 1 || ji.Links[0].Peer != "CURVE-B" {
		t.Fatalf("A's links: %+v", ji)
	}
}

// TestJoinNoLeak: two joined servers, stopped, leave no goroutine behind
// (dialers, sessions, writers).
func TestJoinNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	run := func(cfg config) (*node, func()) {
		j, err := join.New(cfg.join)
		if err != nil {
			t.Fatal(err)
		}
		cfg.reg.Replicator = j
		srv, err := registry.NewServer(cfg.reg)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(context.Background()) }()
		return &node{srv, j}, func() { srv.Close(); <-done }
	}
	a, stopA := run(joinCfg("NA"))
	b, stopB := run(joinCfg("NB", addr(a)))
	testutil.Eventually(t, 10*time.Second, "linked", func() bool { return a.j.Stats().LinksUp == 1 && b.j.Stats().LinksUp == 1 })
	stopB()
	stopA()
	testutil.CheckGoroutines(t, base)
}
