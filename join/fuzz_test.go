package join

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/hydra-net/hydra/registry"
)

// FuzzJoinMsg: the SYNC body decoder never panics, and what it decodes
// re-encodes to a body that decodes the same.
func FuzzJoinMsg(f *testing.F) {
	f.Add([]byte(`{"t":"hello","v":1,"server":"a","boot":"b","max":65536,"interval":1,"digest":{"a":[1,2,0]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := ParseMsg(b)
		if err != nil {
			return
		}
		enc := m.Append(nil)
		m2, _, err := ParseMsg(enc)
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", enc, err)
		}
		m, m2 = normalize(m), normalize(m2)
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip:\n%q\n%+v\n%q\n%+v", b, m, enc, m2)
		}
	})
}

// normalize makes empty collections nil (the encoder omits them).
func normalize(m Msg) Msg {
	switch x := m.(type) {
	case Hello:
		if len(x.Digest) == 0 {
			x.Digest = nil
		}
		return x
	case Tick:
		if len(x.Digest) == 0 {
			x.Digest = nil
		}
		return x
	case Snap:
		if len(x.Entries) == 0 {
			x.Entries = nil
		}
		return x
	case Delta:
		if len(x.Changes) == 0 {
			x.Changes = nil
		}
		for i := range x.Changes {
			if len(x.Changes[i].Entry) == 0 {
				x.Changes[i].Entry = nil
			}
		}
		return x
	case Want:
		if len(x.Origins) == 0 {
			x.Origins = nil
		}
		return x
	}
	return m
}

// fakeTransport is a dialled link's transport that takes every message.
type fakeTransport struct {
	d    *dialer
	sent int
}

func (f *fakeTransport) send([]byte) error { f.sent++; return nil }
func (f *fakeTransport) dialer() *dialer   { return f.d }
func (f *fakeTransport) end()              {}

// onLoop runs fn on the loop of a server that runs j, and waits for it.
func onLoop(t *testing.T, j *Join, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if !j.h.Post(nil, func() { defer close(done); fn() }) {
		t.Fatal("the server's loop is not running")
	}
	<-done
}

// FuzzJoinLink feeds a sequence of SYNC bodies (separated by newlines) to
// a server's link with a peer, after a hello, and checks that nothing
// panics and the join state stays consistent and bounded.
func FuzzJoinLink(f *testing.F) {
	f.Add([]byte(`{"t":"snap","origin":"O","seq":5,"beat":1,"entries":[{"name":"n","instance":"i","host":"h","port":1,"proto":"tcp","ttl":1,"origin":"O","version":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := New(Config{Interval: time.Millisecond, Timeout: 10 * time.Millisecond, Grace: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		s, err := registry.NewServer(registry.Config{ServerID: "self", MaxEntries: 16, MaxEntriesPerClient: 8, Replicator: j})
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(context.Background()) }()
		defer func() { s.Close(); <-served }()
		// A local entry, so that snapshots have something to meet; its
		// return also means the loop started j.
		if _, err := s.Local().Register(context.Background(), registry.Service{Name: "n", Host: "h", Port: 1}); err != nil {
			t.Fatal(err)
		}
		onLoop(t, j, func() {
			now := time.Now()
			tr := &fakeTransport{d: &dialer{addr: "peer:1", stop: make(chan struct{})}}
			l := j.addLink(tr, now)
			j.linkRecv(l, []byte(`{"t":"hello","v":1,"server":"peer","max":2048,"digest":{}}`), now)
			for i, body := range bytes.Split(data, []byte("\n")) {
				now = now.Add(time.Duration(i%3) * 20 * time.Millisecond)
				if l.state == StateDown {
					break
				}
				j.linkRecv(l, body, now)
				if i%4 == 3 {
					j.Tick(now)
				}
				j.Flush()
			}
			checkInvariants(t, j)
		})
	})
}

// checkInvariants checks that join's origins and the registry's copies
// agree, within bounds.
func checkInvariants(t *testing.T, j *Join) {
	t.Helper()
	copies := 0
	for id := range j.origins {
		if id == j.self {
			t.Fatal("holds itself as a remote origin")
		}
		n := 0
		j.h.EachEntry(id, func(string, []byte) { n++ })
		if n != j.h.Entries(id) {
			t.Fatalf("origin %s: %d entries enumerated, %d counted", id, n, j.h.Entries(id))
		}
		copies += n
	}
	if copies != j.h.RemoteEntries() || copies > j.h.MaxEntries() || len(j.origins) > maxOrigins {
		t.Fatalf("%d copies of known origins, the registry holds %d, limit %d; %d origins",
			copies, j.h.RemoteEntries(), j.h.MaxEntries(), len(j.origins))
	}
	for l := range j.links {
		if l.state == StateDown {
			t.Fatalf("a link down is still held")
		}
	}
}
