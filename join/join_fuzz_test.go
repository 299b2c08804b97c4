package registry

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"
)

// FuzzJoinMsg: the SYNC body decoder never panics, and what it decodes
// re-encodes to a body that decodes the same.
func FuzzJoinMsg(f *testing.F) {
	f.Add([]byte(`{"t":"hello","v":1,"server":"a","boot":"b","max":65536,"interval":1,"digest":{"a":[1,2,0]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseLinkMsg(b)
		if err != nil {
			return
		}
		enc := appendLinkMsg(nil, m)
		m2, err := parseLinkMsg(enc)
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", enc, err)
		}
		normalize(m)
		normalize(m2)
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip:\n%q\n%+v\n%q\n%+v", b, m, enc, m2)
		}
	})
}

// normalize makes empty collections nil (the encoder omits them).
func normalize(m *linkMsg) {
	if len(m.Digest) == 0 {
		m.Digest = nil
	}
	if len(m.Entries) == 0 {
		m.Entries = nil
	}
	if len(m.Changes) == 0 {
		m.Changes = nil
	}
	if len(m.Origins) == 0 {
		m.Origins = nil
	}
	for i := range m.Changes {
		if len(m.Changes[i].Entry) == 0 {
			m.Changes[i].Entry = nil
		}
	}
}

// FuzzJoinLink feeds a sequence of SYNC bodies (separated by newlines) to
// a server's link with a peer, after a hello, and checks that nothing
// panics and the server's state stays consistent and bounded.
func FuzzJoinLink(f *testing.F) {
	f.Add([]byte(`{"t":"snap","origin":"O","seq":5,"beat":1,"entries":[{"name":"n","instance":"i","host":"h","port":1,"proto":"tcp","ttl":1,"origin":"O","version":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := NewServer(Config{ServerID: "self", MaxEntries: 16, MaxEntriesPerClient: 8,
			Join: JoinConfig{Interval: time.Millisecond, Timeout: 10 * time.Millisecond, Grace: 50 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// A local entry, so that snapshots and instance clashes have
		// something to meet.
		var r request
		name, host, port := "n", "h", int64(1)
		r.Name, r.Host, r.Port, r.Instance = &name, &host, &port, "i"
		now := time.Now()
		if _, e := s.register(&r, now); e != nil {
			t.Fatal(e)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ss := &session{d: &dialer{addr: "peer:1", ep: "tcp://peer:1", stop: make(chan struct{})}, ctx: ctx, cancel: cancel, out: make(chan []byte, 64)}
		l := s.newLink(now)
		l.sess = ss
		ss.link = l
		s.j.links[l] = struct{}{}
		s.linkRecv(l, []byte(`{"t":"hello","v":1,"server":"peer","max":2048,"digest":{}}`), now)
		for i, body := range bytes.Split(data, []byte("\n")) {
			now = now.Add(time.Duration(i%3) * 20 * time.Millisecond)
			if l.dead {
				break
			}
			s.linkRecv(l, body, now)
			if i%4 == 3 {
				s.joinTick(now)
			}
			s.joinFlush()
			for len(ss.out) > 0 {
				ss.queued.Add(-int64(len(<-ss.out)))
			}
		}
		checkJoinInvariants(t, s)
	})
}

// checkJoinInvariants checks that the store and the join state agree.
func checkJoinInvariants(t *testing.T, s *Server) {
	t.Helper()
	j := s.j
	visible, n := 0, 0
	for inst, e := range s.st.entries {
		if e.Instance != inst {
			t.Fatalf("entry %s under %s", e.Instance, inst)
		}
		ns := s.st.names[e.Name]
		if ns == nil || !containsEntry(ns.entries, e) {
			t.Fatalf("entry %s not in its name's set", inst)
		}
		if e.Origin != s.cfg.ServerID {
			visible++
			if o := j.origins[e.Origin]; o == nil || o.entries[inst] != e {
				t.Fatalf("shown copy %s of %s not held", inst, e.Origin)
			}
		}
	}
	for _, ns := range s.st.names {
		n += len(ns.entries)
	}
	if n != len(s.st.entries) || visible != j.visible {
		t.Fatalf("%d in names, %d entries; %d remote shown, counted %d", n, len(s.st.entries), visible, j.visible)
	}
	copies := 0
	for id, o := range j.origins {
		if id == s.cfg.ServerID {
			t.Fatal("holds itself as a remote origin")
		}
		for inst, e := range o.entries {
			copies++
			if e.Origin != id || e.Instance != inst || !containsEntry(j.copies[inst], e) {
				t.Fatalf("copy %s of %s misfiled", inst, id)
			}
		}
	}
	if copies != j.ncopies || copies > s.cfg.MaxEntries || len(j.origins) > maxJoinOrigins {
		t.Fatalf("%d copies, counted %d, limit %d; %d origins", copies, j.ncopies, s.cfg.MaxEntries, len(j.origins))
	}
	for inst, cs := range j.copies {
		if len(cs) == 0 {
			t.Fatalf("empty copy list for %s", inst)
		}
		if cur := s.st.entries[inst]; cur == nil {
			t.Fatalf("copies of %s but none shown", inst)
		}
	}
}

func containsEntry(es []*entry, e *entry) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}
