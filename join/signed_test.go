package join_test

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
)

// signer is a fresh server identity: its signer and origin id.
func newSigner(t testing.TB) (*secure.Signer, string) {
	t.Helper()
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	s := kp.Signer()
	return &s, join.OriginID(s.Public)
}

// trustOf trusts exactly the given signers.
func trustOf(ss ...*secure.Signer) func(secure.SignPublicKey) bool {
	m := map[secure.SignPublicKey]bool{}
	for _, s := range ss {
		m[s.Public] = true
	}
	return func(k secure.SignPublicKey) bool { return m[k] }
}

// signedCfg is joinCfg for a server that signs with s.
func signedCfg(s *secure.Signer, trust func(secure.SignPublicKey) bool, peers ...string) config {
	c := joinCfg(join.OriginID(s.Public), peers...)
	c.join.Signer, c.join.TrustOrigin = s, trust
	return c
}

func (f *fakePeer) sendMsg(m join.Msg) { f.t.Helper(); f.sendRaw(string(m.Append(nil))) }

// recvMsg returns the next message of type typ as join decodes it.
func (f *fakePeer) recvMsg(typ join.MsgType) join.Msg {
	f.t.Helper()
	for {
		msg, err := f.s.Recv()
		if err != nil {
			f.t.Fatalf("waiting for %s: %v", typ, err)
		}
		m, _, err := join.ParseMsg(msg[1])
		if err != nil {
			f.t.Fatalf("%s: %v", msg[1], err)
		}
		if m.Type() == typ {
			return m
		}
	}
}

func rawEntry(t testing.TB, origin, inst string, port int) json.RawMessage {
	b, err := json.Marshal(entryJSON(origin, inst, port, 1))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJoinSignedRelay: a compromised relay, a server whose key is
// trusted, linked to B, tries every lie about A's origin on B: a change
// of A it signed itself or left unsigned, A's snapshot altered, A's old
// records replayed after newer ones, A's leave forged, and new origins
// (an untrusted key's, an id naming no key). B takes none of them and its
// view of A stays A's own; the relay's reach ends at its own entries. A's
// real leave, signed, still empties B's view of A at once.
func TestJoinSignedRelay(t *testing.T) {
	sA, idA := newSigner(t)
	sB, _ := newSigner(t)
	sR, idR := newSigner(t)
	sM, idM := newSigner(t) // a key nobody trusts
	trust := trustOf(sA, sB, sR)
	cfgA := signedCfg(sA, trust)
	cfgA.join.Grace = time.Minute
	a := startServer(t, cfgA)
	cfgB := signedCfg(sB, trust, addr(a))
	cfgB.join.Grace = time.Minute
	b := startServer(t, cfgB)
	ca, cb := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{})
	ctx := ctxT(t)
	if _, err := ca.Register(ctx, registry.Service{Name: "s", Host: "10.0.0.1", Port: 1, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	converge(t, "s", 1, ca, cb)

	// The relay links to A and takes A's snapshot, as A signed it; then
	// to B, where it lies.
	ra := newFakePeer(t, a, idR)
	ra.sendMsg(join.Hello{V: 1, Server: idR, Max: 1 << 20, Interval: 0.1})
	var snapA join.Snap
	for snapA.Origin != idA {
		snapA = ra.recvMsg(join.TypeSnap).(join.Snap)
	}
	if len(snapA.Sig) == 0 || len(snapA.BeatSig) == 0 || len(snapA.Entries) != 1 {
		t.Fatalf("A's snapshot: %+v", snapA)
	}
	r := newFakePeer(t, b, idR)
	r.sendMsg(join.Hello{V: 1, Server: idR, Max: 1 << 20, Interval: 0.1})
	seqA := r.recvMsg(join.TypeHello).(join.Hello).Digest[idA].Seq
	if seqA != snapA.Seq {
		t.Fatalf("B holds A at %d, A's snapshot is at %d", seqA, snapA.Seq)
	}
	r.recvMsg(join.TypeReady)
	r.sendMsg(join.Ready{})

	// The relay's own origin: its entries are its own to give.
	own := join.Snap{Origin: idR, Seq: 5, Beat: 5, Entries: []json.RawMessage{rawEntry(t, idR, "r1", 7)}}
	join.SignSnap(sR, &own)
	own.BeatSig = join.SignBeat(sR, idR, own.Beat)
	r.sendMsg(own)
	testutil.Eventually(t, 5*time.Second, "the relay's own entry shown", func() bool { return len(view(t, cb, "fake")) == 1 })

	var lies []join.Msg
	// 1. A change of A's: signed by the relay, or not at all.
	forged := join.Change{Origin: idA, Seq: seqA + 1, Prev: seqA, Op: join.OpSet, Entry: rawEntry(t, idA, "forged", 9)}
	lies = append(lies, join.Delta{Changes: []join.Change{forged}})
	join.SignChange(sR, &forged)
	lies = append(lies, join.Delta{Changes: []join.Change{forged}})
	// 2. A's snapshot altered: another address, or a newer seq.
	alt := snapA
	alt.Entries = []json.RawMessage{bytes.Replace(snapA.Entries[0], []byte("10.0.0.1"), []byte("6.6.6.6"), 1)}
	lies = append(lies, alt)
	alt = snapA
	alt.Seq = seqA + 1000
	lies = append(lies, alt)
	// 3. A's leave, forged.
	leave := join.Change{Origin: idA, Seq: seqA + 2000, Prev: seqA, Op: join.OpLeave}
	join.SignChange(sR, &leave)
	lies = append(lies, join.Delta{Changes: []join.Change{leave}})
	// 4. New origins: an untrusted key's (well signed), an id that names
	// no key, the relay's key signing for another id.
	other := idR[:51] + "a"
	if other == idR {
		other = idR[:51] + "q"
	}
	for _, o := range []struct {
		id string
		s  *secure.Signer
	}{{idM, sM}, {"MINTED", sR}, {other, sR}} {
		m := join.Snap{Origin: o.id, Seq: 5, Beat: 5, Entries: []json.RawMessage{rawEntry(t, o.id, "minted", 8)}}
		join.SignSnap(o.s, &m)
		m.BeatSig = join.SignBeat(o.s, o.id, m.Beat)
		lies = append(lies, m)
		c := join.Change{Origin: o.id, Seq: 6, Prev: 5, Op: join.OpSet, Entry: rawEntry(t, o.id, "minted2", 8)}
		join.SignChange(o.s, &c)
		lies = append(lies, join.Delta{Changes: []join.Change{c}})
		lies = append(lies, join.Tick{Digest: join.Digest{o.id: {Seq: 6, Beat: 6, Sig: join.SignBeat(o.s, o.id, 6)}}})
	}
	for _, m := range lies {
		r.sendMsg(m)
	}
	// A's real change: it arrives, and the relay sees it go by.
	if _, err := ca.Register(ctx, registry.Service{Name: "s", Host: "10.0.0.1", Port: 2, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	converge(t, "s", 2, ca, cb)
	d := r.recvMsg(join.TypeDelta).(join.Delta)
	old := d.Changes[0]
	if old.Origin != idA || len(old.Sig) == 0 {
		t.Fatalf("A's change as B passes it on: %+v", old)
	}
	// 5. Replays, after newer records: A's change (now old) again, and
	// A's first snapshot again, as they were signed.
	if _, err := ca.Register(ctx, registry.Service{Name: "s", Host: "10.0.0.1", Port: 3, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	converge(t, "s", 3, ca, cb)
	r.sendMsg(join.Delta{Changes: []join.Change{old}})
	r.sendMsg(snapA)
	// Every lie is refused once B has read it; the relay's link is not
	// A's, so wait for B to read them rather than for A's next change.
	testutil.Eventually(t, 10*time.Second, "B refused the relay's lies", func() bool { return b.j.Stats().RefusedIn >= 8 })
	if _, err := ca.Register(ctx, registry.Service{Name: "s", Host: "10.0.0.1", Port: 4, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	v := converge(t, "s", 4, ca, cb)
	for inst, e := range v {
		if !bytes.HasPrefix([]byte(e), []byte(idA+"@")) || bytes.Contains([]byte(e), []byte("6.6.6.6")) {
			t.Fatalf("B shows %s = %s", inst, e)
		}
	}
	if fv := view(t, cb, "fake"); len(fv) != 1 || fv["r1"] == "" {
		t.Fatalf("B's fake entries: %v (only the relay's own r1 may show)", fv)
	}
	ji := joinInfo(t, cb)
	if !ji.Signed {
		t.Fatal("INFO's join.signed is false on a signing server")
	}
	for _, o := range ji.Origins {
		if o.Origin != idA && o.Origin != idR {
			t.Fatalf("B holds origin %s", o.Origin)
		}
	}
	if st := b.j.Stats(); st.OriginsLeft != 0 {
		t.Fatalf("B's stats: %+v", st)
	}

	// A leaves, signed: B drops A's entries at once (grace 1m).
	a.j.Depart(ctx)
	a.Server.Close()
	testutil.Eventually(t, 10*time.Second, "A's entries gone from B", func() bool { return len(view(t, cb, "s")) == 0 })
}

// TestJoinSignedChainLiveness: beats are checked lazily (once per origin
// per Grace/4), yet along a chain of five signing servers the far end
// keeps hearing the first for many grace periods: the checks of the hops
// do not add up. When the first stops without a leave (killed), the far
// end drops its entries after the grace.
func TestJoinSignedChainLiveness(t *testing.T) {
	var ss []*secure.Signer
	for range 5 {
		s, _ := newSigner(t)
		ss = append(ss, s)
	}
	trust := trustOf(ss...)
	var srvs []*node
	for i, s := range ss {
		var peers []string
		if i > 0 {
			peers = []string{addr(srvs[i-1])}
		}
		cfg := signedCfg(s, trust, peers...)
		cfg.join.Grace = 2 * time.Second
		srvs = append(srvs, startServer(t, cfg))
	}
	first, last := newClient(t, srvs[0], registry.ClientConfig{}), newClient(t, srvs[4], registry.ClientConfig{})
	ctx := ctxT(t)
	if _, err := first.Register(ctx, registry.Service{Name: "far", Host: "10.0.0.1", Port: 1, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	converge(t, "far", 1, first, last)
	for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) { // three graces
		if len(view(t, last, "far")) != 1 {
			t.Fatalf("the far end lost the first server's entry (stats %+v)", srvs[4].j.Stats())
		}
	}
	for _, s := range srvs {
		if st := s.j.Stats(); st.OriginsExpired != 0 || st.RefusedIn != 0 {
			t.Fatalf("%s: %+v", s.ID(), st)
		}
	}
	srvs[0].Server.Close() // no Depart: as if killed
	testutil.Eventually(t, 10*time.Second, "the far end drops the first server's entry", func() bool { return len(view(t, last, "far")) == 0 })
}

// TestJoinSignedRelaySnapshot: a server gives another origin's snapshot as
// that origin signed it, plus the changes since: C, joining B only, gets
// A's state from B right, before and after A's checkpoint (A sends its
// snapshot to every link after 256 changes), deregistrations included.
func TestJoinSignedRelaySnapshot(t *testing.T) {
	sA, _ := newSigner(t)
	sB, _ := newSigner(t)
	sC, _ := newSigner(t)
	sD, _ := newSigner(t)
	trust := trustOf(sA, sB, sC, sD)
	a := startServer(t, signedCfg(sA, trust))
	b := startServer(t, signedCfg(sB, trust, addr(a)))
	ca, cb := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{})
	ctx := ctxT(t)
	linked(t, cb, 1)
	var regs []*registry.Registration
	register := func(n int) {
		for i := 0; i < n; i++ {
			r, err := ca.Register(ctx, registry.Service{Name: "many", Host: "10.0.0.1", Port: len(regs) + 1, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			regs = append(regs, r)
		}
	}
	register(100)
	for _, r := range regs[:20] {
		if err := r.Deregister(ctx); err != nil {
			t.Fatal(err)
		}
	}
	converge(t, "many", 80, ca, cb)
	// Before any checkpoint: B's snapshot of A is A's first (empty) one and
	// 120 changes.
	c := startServer(t, signedCfg(sC, trust, addr(b)))
	cc := newClient(t, c, registry.ClientConfig{})
	converge(t, "many", 80, ca, cb, cc)
	// Past a checkpoint (256 changes), then more.
	register(200)
	for _, r := range regs[100:140] {
		if err := r.Deregister(ctx); err != nil {
			t.Fatal(err)
		}
	}
	converge(t, "many", 240, ca, cb, cc)
	if st := a.j.Stats(); st.SnapsOut < 2 {
		t.Fatalf("A sent %d snapshots: no checkpoint", st.SnapsOut)
	}
	d := startServer(t, signedCfg(sD, trust, addr(c)))
	cd := newClient(t, d, registry.ClientConfig{})
	converge(t, "many", 240, ca, cd)
	for _, s := range []*node{b, c, d} {
		if st := s.j.Stats(); st.RefusedIn != 0 || st.ProtocolErrors != 0 {
			t.Fatalf("%s: %+v", s.ID(), st)
		}
	}
}

// TestJoinSignedUntrust: when an origin's key leaves the servers' list
// (TrustOrigin changes, as on SIGHUP), its entries leave at the next tick,
// not after the grace.
func TestJoinSignedUntrust(t *testing.T) {
	sA, _ := newSigner(t)
	sB, _ := newSigner(t)
	var mu sync.Mutex
	trustA := true
	trust := func(k secure.SignPublicKey) bool {
		mu.Lock()
		defer mu.Unlock()
		return k == sB.Public || k == sA.Public && trustA
	}
	cfgA := signedCfg(sA, trustOf(sA, sB))
	a := startServer(t, cfgA)
	cfgB := signedCfg(sB, trust, addr(a))
	cfgB.join.Grace = time.Minute
	b := startServer(t, cfgB)
	ca, cb := newClient(t, a, registry.ClientConfig{}), newClient(t, b, registry.ClientConfig{})
	if _, err := ca.Register(ctxT(t), registry.Service{Name: "u", Host: "10.0.0.1", Port: 1, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	converge(t, "u", 1, ca, cb)
	mu.Lock()
	trustA = false
	mu.Unlock()
	testutil.Eventually(t, 10*time.Second, "A's entry gone from B", func() bool { return len(view(t, cb, "u")) == 0 })
	if st := b.j.Stats(); st.OriginsExpired != 1 {
		t.Fatalf("B's stats: %+v", st)
	}
}
