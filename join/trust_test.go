package join_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// TestJoinCounterWedge: a peer that sends another origin's state with seq
// and beat 2^64-1 (or far ahead of the clock) cannot wedge that origin:
// the values are refused, and the real origin's later changes still
// arrive (PROTOCOL.md, "Counters").
func TestJoinCounterWedge(t *testing.T) {
	a := startServer(t, joinCfg("WEDGE-A"))
	b := startServer(t, joinCfg("WEDGE-B", addr(a)))
	ca, cb := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{})
	ctx := ctxT(t)
	if _, err := ca.Register(ctx, registry.Service{Name: "wedge", Host: "10.0.0.1", Port: 1}); err != nil {
		t.Fatal(err)
	}
	converge(t, "wedge", 1, ca, cb)

	errsA, errsB := a.j.Stats().ProtocolErrors, b.j.Stats().ProtocolErrors
	f := newFakePeer(t, b, "WEDGE-F")
	f.send(map[string]any{"t": "hello", "v": 1, "server": "WEDGE-F", "max": 65536, "interval": 0.1, "digest": map[string]any{}})
	f.recv("ready")
	const top = uint64(math.MaxUint64)
	// Beyond the bound: refused. Within it (5 minutes ahead): taken, but
	// the origin, told by B's digest, overtakes it.
	ahead := uint64(time.Now().Add(5 * time.Minute).UnixMicro())
	for _, v := range []uint64{top, top - 1, uint64(time.Now().Add(time.Hour).UnixMicro()), ahead} {
		f.send(map[string]any{"t": "snap", "origin": "WEDGE-A", "seq": v, "beat": v, "age": 0,
			"entries": []any{entryJSON("WEDGE-A", "forged", 9, 1)}})
		f.tick(map[string][3]uint64{"WEDGE-A": {v, v, 0}})
		f.send(map[string]any{"t": "delta", "changes": []any{
			map[string]any{"origin": "WEDGE-A", "seq": v, "prev": 0, "op": "set", "entry": entryJSON("WEDGE-A", "forged2", 9, 1)}}})
	}
	// A itself told that its own id is at 2^64-1: its clock must not
	// wrap (its later changes would then look old everywhere).
	g := newFakePeer(t, a, "WEDGE-G")
	g.send(map[string]any{"t": "hello", "v": 1, "server": "WEDGE-G", "max": 65536, "interval": 0.1, "digest": map[string]any{}})
	g.recv("ready")
	g.tick(map[string][3]uint64{"WEDGE-A": {top, top, 0}})
	g.send(map[string]any{"t": "delta", "changes": []any{
		map[string]any{"origin": "WEDGE-A", "seq": top, "prev": top - 1, "op": "set", "entry": entryJSON("WEDGE-A", "forged3", 9, 1)}}})
	g.send(map[string]any{"t": "snap", "origin": "WEDGE-A", "seq": top, "beat": top, "entries": []any{}})
	// Each refused value is counted: 3 × (snapshot, digest item, change)
	// on B, 3 on A.
	testutil.Eventually(t, 5*time.Second, "the lies taken in", func() bool {
		return b.j.Stats().ProtocolErrors-errsB >= 9 && a.j.Stats().ProtocolErrors-errsA >= 3
	})
	// The real origin's changes arrive; nothing forged stays.
	for i := 2; i <= 3; i++ {
		if _, err := ca.Register(ctx, registry.Service{Name: "wedge", Host: "10.0.0.1", Port: i}); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, fmt.Sprintf("A's change %d reaches B, and nothing forged stays", i), func() bool {
			v := view(t, cb, "wedge")
			return len(v) == i && v["forged"] == "" && v["forged2"] == "" && v["forged3"] == ""
		})
	}
	if v := view(t, ca, "wedge"); len(v) != 3 {
		t.Fatalf("A's own view: %v", v)
	}
}

// TestJoinGracefulLeave: a server that stops tells its peers at once: its
// entries leave their lookups well before the grace period, and their
// watchers get deregister events.
func TestJoinGracefulLeave(t *testing.T) {
	cfgA := joinCfg("LEAVE-A")
	cfgA.join.Grace = time.Minute
	a := startServer(t, cfgA)
	cfgB := joinCfg("LEAVE-B", addr(a))
	cfgB.join.Grace = time.Minute
	b := startServer(t, cfgB)
	ca, cb := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{})
	ctx := ctxT(t)
	for i := 1; i <= 2; i++ {
		if _, err := ca.Register(ctx, registry.Service{Name: "bye", Host: "10.0.0.1", Port: i, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	converge(t, "bye", 2, ca, cb)
	events, err := cb.Watch(ctx, "bye")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Type != registry.EventSync {
		t.Fatalf("first event %v", ev.Type)
	}
	start := time.Now()
	a.j.Depart(ctx) // what node.Run does on SIGTERM, before closing
	a.Server.Close()
	testutil.Eventually(t, 10*time.Second, "A's entries gone from B", func() bool { return len(view(t, cb, "bye")) == 0 })
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("A's entries left B after %v: the grace (1m), not the leave", took)
	}
	gone := 0
	for gone < 2 {
		select {
		case ev := <-events:
			if ev.Type == registry.EventDeregister || ev.Type == registry.EventExpire {
				gone++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of 2 removal events", gone)
		}
	}
	if st := b.j.Stats(); st.OriginsLeft != 1 {
		t.Fatalf("B's stats: %+v", st)
	}
}

// TestJoinVerbCurveKey: on a CURVE server a run-time JOIN without the
// peer's key is refused (bad_request naming "key"), never a plaintext
// link; with the key the link is CURVE (the peer takes nothing else).
func TestJoinVerbCurveKey(t *testing.T) {
	kA, kB, kC := newKeyPair(t), newKeyPair(t), newKeyPair(t) // A, B, B's client
	cfgA := joinCfg("JK-A")
	cfgA.reg.Security = curve.Server(kA, secure.NewAllowList(kB.Public, kC.Public))
	a := startServer(t, cfgA)
	cfgB := joinCfg("JK-B")
	cfgB.reg.Security = curve.Server(kB, secure.NewAllowList(kC.Public))
	cfgB.join.CurveTo = func(pub secure.PublicKey) func() zmtp.Mechanism { return curve.Client(kB, pub) }
	b := startServer(t, cfgB)
	ca := newClient(t, a, registry.ClientConfig{Security: curve.Client(kC, kA.Public)})
	cb := newClient(t, b, registry.ClientConfig{Security: curve.Client(kC, kB.Public)})
	ctx := ctxT(t)

	for _, body := range []map[string]string{{"peer": addr(a)}, {"peer": addr(a), "key": "short"}} {
		_, err := cb.Request(ctx, registry.VerbJoin, body)
		var re *registry.Error
		if !errors.As(err, &re) || re.Code != registry.CodeBadRequest || !strings.Contains(re.Message, "key") {
			t.Fatalf("JOIN %v on a CURVE server: %v", body, err)
		}
	}
	if ji := joinInfo(t, cb); ji != nil && len(ji.Links) != 0 {
		t.Fatalf("B dials after a refused JOIN: %+v", ji.Links)
	}
	if _, err := cb.Request(ctx, registry.VerbJoin, map[string]string{"peer": addr(a), "key": kA.Public.String()}); err != nil {
		t.Fatal(err)
	}
	linked(t, cb, 1)
	if _, err := ca.Register(ctx, registry.Service{Name: "jk", Host: "10.0.0.1", Port: 1}); err != nil {
		t.Fatal(err)
	}
	converge(t, "jk", 1, ca, cb)
	// A NULL server takes no key: it would not be used.
	plain := startServer(t, joinCfg("JK-P"))
	cp := newClient(t, plain, registry.ClientConfig{})
	if _, err := cp.Request(ctx, registry.VerbJoin, map[string]string{"peer": addr(a), "key": kA.Public.String()}); err == nil {
		t.Fatal("a NULL server took a JOIN with a key")
	}
}

func newKeyPair(t testing.TB) secure.KeyPair {
	t.Helper()
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}
