package join_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/join"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// fakePeer speaks the link protocol by hand on a DEALER, as a server that
// joined srv would (PROTOCOL.md, "Join (server sync)").
type fakePeer struct {
	t    testing.TB
	s    *zmtp.Socket
	id   string
	beat uint64
}

// wireMsg is a SYNC body as the tests read it.
type wireMsg struct {
	T       string               `json:"t"`
	V       int                  `json:"v"`
	Server  string               `json:"server"`
	Max     int64                `json:"max"`
	Digest  map[string][3]uint64 `json:"digest"`
	Origin  string               `json:"origin"`
	Seq     uint64               `json:"seq"`
	Part    int                  `json:"part"`
	More    bool                 `json:"more"`
	Entries []registry.Entry     `json:"entries"`
	Changes []map[string]any     `json:"changes"`
	Origins []string             `json:"origins"`
	Error   string               `json:"error"`
	Extra   map[string]any       `json:"-"`
	_       struct{}             `json:"-"`
}

func newFakePeer(t testing.TB, srv *node, id string) *fakePeer {
	return &fakePeer{t: t, s: rawSocket(t, srv, zmtp.DEALER), id: id, beat: 100}
}

func (f *fakePeer) sendRaw(body string) {
	f.t.Helper()
	if err := f.s.Send([]byte("SYNC"), []byte(body)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakePeer) send(m map[string]any) {
	f.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		f.t.Fatal(err)
	}
	f.sendRaw(string(b))
}

// recv returns the next message of type typ, skipping others.
func (f *fakePeer) recv(typ string) wireMsg {
	f.t.Helper()
	for {
		msg, err := f.s.Recv()
		if err != nil {
			f.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if len(msg) != 2 || string(msg[0]) != "SYNC" {
			f.t.Fatalf("not a SYNC message: %q", msg)
		}
		var m wireMsg
		if err := json.Unmarshal(msg[1], &m); err != nil {
			f.t.Fatalf("%s: %v", msg[1], err)
		}
		if m.T == typ {
			return m
		}
	}
}

// tick sends a digest: our beat (rising) and the given origins.
func (f *fakePeer) tick(origins map[string][3]uint64) {
	f.beat++
	d := map[string][3]uint64{f.id: {1, f.beat, 0}}
	for k, v := range origins {
		d[k] = v
	}
	f.send(map[string]any{"t": "tick", "digest": d})
}

func entryJSON(origin, inst string, port, version int) map[string]any {
	return map[string]any{"name": "fake", "instance": inst, "host": "10.9.9.9", "port": port, "proto": "tcp",
		"ttl": 30, "origin": origin, "version": version}
}

func TestJoinProtocolFakePeer(t *testing.T) {
	srv := startServer(t, joinCfg("REAL"))
	c := newClient(t, srv, registry.ClientConfig{})
	ctx := ctxT(t)
	if _, err := c.Register(ctx, registry.Service{Name: "real", Host: "h", Port: 1}); err != nil {
		t.Fatal(err)
	}
	f := newFakePeer(t, srv, "FAKE")

	// A message before hello: reset.
	f.send(map[string]any{"t": "tick", "digest": map[string]any{}})
	if m := f.recv("reset"); m.Error == "" {
		t.Fatalf("reset: %+v", m)
	}
	// Hello: the server answers with its own, its snapshot, ready.
	f.send(map[string]any{"t": "hello", "v": 1, "server": "FAKE", "boot": "b", "max": 65536, "interval": 0.1,
		"digest": map[string][3]uint64{"FAKE": {1, f.beat, 0}}})
	h := f.recv("hello")
	if h.Server != "REAL" || h.V != 1 || h.Max != registry.DefaultMaxRequestBytes || h.Digest["REAL"][0] == 0 {
		t.Fatalf("hello: %+v", h)
	}
	snap := f.recv("snap")
	if snap.Origin != "REAL" || len(snap.Entries) != 1 || snap.Entries[0].Name != "real" || snap.More || snap.Seq != h.Digest["REAL"][0] {
		t.Fatalf("snap: %+v", snap)
	}
	f.recv("ready")
	f.send(map[string]any{"t": "ready"})

	// Our state: origin O1 at seq 10, two entries in two parts.
	f.send(map[string]any{"t": "snap", "origin": "O1", "seq": 10, "beat": 5, "age": 0, "part": 0, "more": true,
		"entries": []any{entryJSON("O1", "i1", 1, 1)}})
	f.send(map[string]any{"t": "snap", "origin": "O1", "seq": 10, "beat": 5, "age": 0, "part": 1,
		"entries": []any{entryJSON("O1", "i2", 2, 1)}})
	testutil.Eventually(t, 5*time.Second, "O1's entries shown", func() bool { return len(view(t, c, "fake")) == 2 })

	// A change on top of 10 applies; the same again is a duplicate; one
	// on top of 12 (11 missed) is a gap: the server asks for O1.
	f.send(map[string]any{"t": "delta", "changes": []any{
		map[string]any{"origin": "O1", "seq": 11, "prev": 10, "op": "set", "entry": entryJSON("O1", "i3", 3, 1)},
		map[string]any{"origin": "O1", "seq": 11, "prev": 10, "op": "set", "entry": entryJSON("O1", "i3", 3, 1)},
		map[string]any{"origin": "O1", "seq": 13, "prev": 12, "op": "deregister", "instance": "i1"},
	}})
	if w := f.recv("want"); len(w.Origins) != 1 || w.Origins[0] != "O1" {
		t.Fatalf("want: %+v", w)
	}
	if v := view(t, c, "fake"); len(v) != 3 {
		t.Fatalf("after the gap: %v", v)
	}
	st := srv.j.Stats()
	if st.ChangesIn != 1 || st.DupsIn != 1 || st.GapsIn != 1 || st.WantsOut != 1 {
		t.Fatalf("stats: %+v", st)
	}
	// The snapshot that fills the gap replaces the state: i1 gone.
	f.send(map[string]any{"t": "snap", "origin": "O1", "seq": 13, "beat": 6, "age": 0,
		"entries": []any{entryJSON("O1", "i2", 2, 1), entryJSON("O1", "i3", 3, 1)}})
	testutil.Eventually(t, 5*time.Second, "snapshot applied", func() bool {
		v := view(t, c, "fake")
		return len(v) == 2 && v["i1"] == ""
	})
	// An older snapshot changes nothing.
	f.send(map[string]any{"t": "snap", "origin": "O1", "seq": 12, "beat": 6, "entries": []any{}})
	// Bad input: not JSON, a bad entry (skipped), an unknown type, a
	// snapshot part out of order: counted, and the link goes on.
	errs := st.ProtocolErrors
	f.sendRaw(`{"t":`)
	f.sendRaw(`[1,2]`)
	f.send(map[string]any{"t": "frob"})
	f.send(map[string]any{"t": "snap", "origin": "O1", "seq": 20, "part": 3, "entries": []any{}})
	f.send(map[string]any{"t": "delta", "changes": []any{
		map[string]any{"origin": "O1", "seq": 14, "prev": 13, "op": "set", "entry": entryJSON("O2", "i4", 4, 1)},
		map[string]any{"origin": "bad origin", "seq": 1, "prev": 0, "op": "set", "entry": entryJSON("x", "i5", 5, 1)},
	}})
	f.send(map[string]any{"t": "delta", "changes": []any{
		map[string]any{"origin": "O1", "seq": 15, "prev": 14, "op": "set", "entry": entryJSON("O1", "i6", 6, 1)},
	}})
	testutil.Eventually(t, 5*time.Second, "the link goes on", func() bool { return view(t, c, "fake")["i6"] != "" })
	if v := view(t, c, "fake"); len(v) != 3 || v["i1"] != "" || v["i4"] != "" {
		t.Fatalf("after bad input: %v", v)
	}
	if n := srv.j.Stats().ProtocolErrors - errs; n < 4 {
		t.Fatalf("%d protocol errors counted", n)
	}

	// Our entries reach other servers that join: forwarded as snapshots.
	other := startServer(t, joinCfg("OTHER", addr(srv)))
	co := newClient(t, other, registry.ClientConfig{})
	testutil.Eventually(t, 5*time.Second, "O1 forwarded", func() bool { return len(view(t, co, "fake")) == 3 })
	// ... and our changes as changes.
	f.send(map[string]any{"t": "delta", "changes": []any{
		map[string]any{"origin": "O1", "seq": 16, "prev": 15, "op": "expire", "instance": "i6"},
	}})
	testutil.Eventually(t, 5*time.Second, "O1's change forwarded", func() bool { return len(view(t, co, "fake")) == 2 })
	// A change of the real server reaches us as a delta on top of its seq.
	if _, err := c.Register(ctx, registry.Service{Name: "real", Host: "h", Port: 2}); err != nil {
		t.Fatal(err)
	}
	d := f.recv("delta")
	if len(d.Changes) != 1 || d.Changes[0]["origin"] != "REAL" || d.Changes[0]["op"] != "set" {
		t.Fatalf("delta: %+v", d)
	}
}

// TestJoinNoResurrection: an origin whose beat stopped rising expires
// after the grace period, and a neighbour that still lists it (with the
// same beat) does not bring it back; a higher beat (the origin is back)
// does.
func TestJoinNoResurrection(t *testing.T) {
	cfg := joinCfg("RS")
	cfg.join.Grace = 1500 * time.Millisecond
	srv := startServer(t, cfg)
	c := newClient(t, srv, registry.ClientConfig{})
	f := newFakePeer(t, srv, "FP")
	f.send(map[string]any{"t": "hello", "v": 1, "server": "FP", "max": 65536, "interval": 0.1, "digest": map[string]any{}})
	f.recv("ready")
	f.send(map[string]any{"t": "snap", "origin": "FP", "seq": 1, "beat": f.beat, "entries": []any{}})
	f.send(map[string]any{"t": "snap", "origin": "GONE", "seq": 10, "beat": 5, "age": 0,
		"entries": []any{entryJSON("GONE", "g1", 1, 1)}})
	testutil.Eventually(t, 5*time.Second, "GONE's entry shown", func() bool { return len(view(t, c, "fake")) == 1 })
	// The fake peer goes on listing GONE as a neighbour that heard its
	// last beat 300ms after we did would: the age grows, the beat not.
	start := time.Now()
	age := func() uint64 { return uint64(max(time.Since(start)-300*time.Millisecond, 0).Milliseconds()) }
	for len(view(t, c, "fake")) == 1 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("GONE never expired")
		}
		f.tick(map[string][3]uint64{"GONE": {10, 5, age()}})
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("GONE expired %v after its beat stopped rising (grace 1.5s)", time.Since(start).Round(10*time.Millisecond))
	// The neighbour still lists it (for it, the grace period is not over):
	// that must not bring it back, nor a snapshot with the same beat.
	stale := map[string][3]uint64{"GONE": {10, 5, age()}}
	f.tick(stale)
	f.send(map[string]any{"t": "snap", "origin": "GONE", "seq": 10, "beat": 5, "age": 0, "entries": []any{entryJSON("GONE", "g1", 1, 1)}})
	f.tick(stale)
	time.Sleep(300 * time.Millisecond)
	if v := view(t, c, "fake"); len(v) != 0 {
		t.Fatalf("GONE came back with a stale beat: %v", v)
	}
	if st := srv.j.Stats(); st.WantsOut != 0 || st.OriginsExpired != 1 || st.EntriesExpired != 1 {
		t.Fatalf("stats: %+v", st)
	}
	// The origin is back: a new beat, and the server asks for its state.
	f.tick(map[string][3]uint64{"GONE": {12, 9, 0}})
	if w := f.recv("want"); len(w.Origins) != 1 || w.Origins[0] != "GONE" {
		t.Fatalf("want: %+v", w)
	}
	f.send(map[string]any{"t": "snap", "origin": "GONE", "seq": 12, "beat": 9, "age": 0, "entries": []any{entryJSON("GONE", "g2", 2, 1)}})
	testutil.Eventually(t, 5*time.Second, "GONE back", func() bool { return view(t, c, "fake")["g2"] != "" })
}

// TestJoinRefusesSameID: a peer with the server's own id is refused.
func TestJoinRefusesSameID(t *testing.T) {
	srv := startServer(t, joinCfg("SAME"))
	f := newFakePeer(t, srv, "SAME")
	f.send(map[string]any{"t": "hello", "v": 1, "server": "SAME", "digest": map[string]any{}})
	if m := f.recv("refuse"); m.Error == "" {
		t.Fatalf("refuse: %+v", m)
	}
	// Not linked: what follows gets a reset.
	f.tick(nil)
	f.recv("reset")
}

// TestJoinConfigValidate: bad join settings are refused by Validate, by
// field name; addresses parse as HOST:PORT.
func TestJoinConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  join.Config
		want string
	}{
		{join.Config{Peers: []string{"ipc:///x"}}, "Peers"},
		{join.Config{Peers: []string{"h:0"}}, "Peers"},
		{join.Config{Interval: time.Second, Timeout: time.Second}, "Timeout"},
		{join.Config{Grace: time.Second, Timeout: 2 * time.Second, Interval: 100 * time.Millisecond}, "Grace"},
		{join.Config{Interval: -1}, "Interval"},
		{join.Config{MaxPeers: 1, Peers: []string{"a", "b"}}, "MaxPeers"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.want)
		}
		if _, err := join.New(tc.cfg); err == nil {
			t.Errorf("New(%+v): no error", tc.cfg)
		}
	}
	if err := (join.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	for in, want := range map[string]string{
		"h": "h:8420", "h:1": "h:1", "tcp://h:2": "h:2", "10.0.0.7": "10.0.0.7:8420", "::1": "[::1]:8420",
		"[::1]": "[::1]:8420", "[::1]:9": "[::1]:9", "tcp://[fe80::1]:8": "[fe80::1]:8",
	} {
		got, err := join.ParseAddr(in)
		if err != nil || got != want {
			t.Errorf("ParseAddr(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "udp://h:1", "h:0", "a b", "[::1", "*"} {
		_, err := join.ParseAddr(bad)
		if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("join address %q", bad)) {
			t.Errorf("ParseAddr(%q): %v", bad, err)
		}
	}
}

// TestSyncFromClient: a SYNC that is no link traffic, from a connection
// that is no link, gets an ERR reply (every request gets one reply); a
// link message there gets reset, as the link protocol says.
func TestSyncFromClient(t *testing.T) {
	srv := startServer(t, joinCfg("SC"))
	s := rawSocket(t, srv, zmtp.REQ)
	for _, frames := range [][][]byte{
		{[]byte("SYNC")},
		{[]byte("SYNC"), []byte("not json")},
		{[]byte("SYNC"), []byte(`{"t":`)},
		{[]byte("sync"), []byte(`{"t":"hello"}`), []byte("x")},
	} {
		if err := s.Send(frames...); err != nil {
			t.Fatal(err)
		}
		rep, err := s.Recv()
		if err != nil {
			t.Fatalf("%q: %v", frames, err)
		}
		if len(rep) != 2 || string(rep[0]) != registry.StatusError || !strings.Contains(string(rep[1]), `"code":"bad_request"`) {
			t.Fatalf("%q: reply %q", frames, rep)
		}
	}
	if err := s.Send([]byte("SYNC"), []byte(`{"t":"tick","digest":{}}`)); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Recv()
	if err != nil || len(rep) != 2 || string(rep[0]) != "SYNC" || !strings.Contains(string(rep[1]), `"t":"reset"`) {
		t.Fatalf("tick from a stranger: %q %v", rep, err)
	}
	// The server goes on serving.
	c := newClient(t, srv, registry.ClientConfig{})
	if _, _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// TestNoReplicator: a server without join refuses JOIN and SYNC (SYNC from
// a peer it does not take as a server is forbidden before that: see
// registry's TestSyncForbidden).
func TestNoReplicator(t *testing.T) {
	srv, err := registry.NewServer(registry.Config{Authorize: nodetest.LoopbackServers})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background())
	t.Cleanup(func() { srv.Close() })
	c := newClient(t, &node{Server: srv}, registry.ClientConfig{})
	if _, _, err := c.Join(ctxT(t), "10.0.0.1"); !errors.Is(err, registry.ErrBadRequest) {
		t.Fatalf("JOIN: %v", err)
	}
	if _, err := c.Request(ctxT(t), registry.VerbSync, map[string]any{"t": "hello"}); !errors.Is(err, registry.ErrUnknownVerb) {
		t.Fatalf("SYNC: %v", err)
	}
}
