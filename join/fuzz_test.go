package join

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
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
		x.Digest = normDigest(x.Digest)
		return x
	case Tick:
		x.Digest = normDigest(x.Digest)
		return x
	case Snap:
		if len(x.Entries) == 0 {
			x.Entries = nil
		}
		x.Sig, x.BeatSig = normBytes(x.Sig), normBytes(x.BeatSig)
		return x
	case Delta:
		if len(x.Changes) == 0 {
			x.Changes = nil
		}
		for i := range x.Changes {
			if len(x.Changes[i].Entry) == 0 {
				x.Changes[i].Entry = nil
			}
			x.Changes[i].Sig = normBytes(x.Changes[i].Sig)
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

func normBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func normDigest(d Digest) Digest {
	if len(d) == 0 {
		return nil
	}
	for k, it := range d {
		it.Sig = normBytes(it.Sig)
		d[k] = it
	}
	return d
}

// fakeTransport is a dialled link's transport that takes every message.
type fakeTransport struct {
	d    *dialer
	sent int
}

func (f *fakeTransport) send([]byte) error { f.sent++; return nil }
func (f *fakeTransport) dialer() *dialer   { return f.d }
func (f *fakeTransport) end()              {}
func (f *fakeTransport) hold() bool        { return false }

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
		fuzzLink(t, Config{}, "self", "peer", data)
	})
}

// Fixed keys of FuzzJoinLinkSigned (its seeds are signed with them): the
// server's, and a trusted peer's.
var (
	fuzzSelfKey = fuzzKey(1)
	fuzzPeerKey = fuzzKey(2)
)

func fuzzKey(b byte) *secure.Signer {
	var sk secure.SecretKey
	for i := range sk {
		sk[i] = b
	}
	kp, err := secure.KeyPairFromSecret(sk)
	if err != nil {
		panic(err)
	}
	s := kp.Signer()
	return &s
}

// FuzzJoinLinkSigned is FuzzJoinLink on a server that signs and checks
// records (the peer's key trusted): whatever comes, the invariants hold
// and only the trusted peer's origin is ever held.
func FuzzJoinLinkSigned(f *testing.F) {
	peer := OriginID(fuzzPeerKey.Public)
	m := Snap{Origin: peer, Seq: 5, Beat: 5, Entries: []json.RawMessage{json.RawMessage(`{"name":"n","instance":"i","host":"h","port":1,"proto":"tcp","ttl":1,"origin":"` + peer + `","version":1}`)}}
	SignSnap(fuzzPeerKey, &m)
	m.BeatSig = SignBeat(fuzzPeerKey, peer, 5)
	f.Add(m.Append(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		trust := func(k secure.SignPublicKey) bool { return k == fuzzPeerKey.Public }
		j := fuzzLink(t, Config{Signer: fuzzSelfKey, TrustOrigin: trust}, OriginID(fuzzSelfKey.Public), peer, data)
		for id := range j.origins {
			if id != peer {
				t.Fatalf("holds origin %s, not the trusted peer's", id)
			}
		}
	})
}

// fuzzLink feeds data, SYNC bodies separated by newlines, to a server's
// link with a peer, after a hello, and checks that nothing panics and the
// join state stays consistent and bounded.
func fuzzLink(t *testing.T, cfg Config, self, peer string, data []byte) *Join {
	cfg.Interval, cfg.Timeout, cfg.Grace = time.Millisecond, 10*time.Millisecond, 50*time.Millisecond
	j, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := registry.NewServer(registry.Config{ServerID: self, MaxEntries: 16, MaxEntriesPerClient: 8, Replicator: j})
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
	var bad error
	onLoop(t, j, func() {
		now := time.Now()
		tr := &fakeTransport{d: &dialer{addr: "peer:1", stop: make(chan struct{})}}
		l := j.addLink(tr, now)
		j.linkRecv(l, []byte(`{"t":"hello","v":1,"server":"`+peer+`","max":2048,"digest":{}}`), now)
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
		bad = checkInvariants(j)
	})
	if bad != nil {
		t.Fatal(bad)
	}
	return j
}

// checkInvariants checks that join's origins and the registry's copies
// agree, within bounds. It runs on the server's loop, where t.Fatal would
// end the loop instead of the test: it returns what is wrong.
func checkInvariants(j *Join) error {
	copies := 0
	for id := range j.origins {
		if id == j.self {
			return errors.New("holds itself as a remote origin")
		}
		n := 0
		j.h.EachEntry(id, func(string, []byte) { n++ })
		if n != j.h.Entries(id) {
			return fmt.Errorf("origin %s: %d entries enumerated, %d counted", id, n, j.h.Entries(id))
		}
		copies += n
	}
	if copies != j.h.RemoteEntries() || copies > j.h.MaxEntries() || len(j.origins) > maxOrigins {
		return fmt.Errorf("%d copies of known origins, the registry holds %d, limit %d; %d origins",
			copies, j.h.RemoteEntries(), j.h.MaxEntries(), len(j.origins))
	}
	for l := range j.links {
		if l.state == StateDown {
			return errors.New("a link down is still held")
		}
		queued := 0
		for _, m := range l.out {
			queued += len(m.body)
		}
		if queued != l.outBytes || queued > maxLinkQueue || len(l.out) > 0 && !l.inDrain {
			return fmt.Errorf("link queue: %d bytes, counted %d, limit %d, in drain %v", queued, l.outBytes, maxLinkQueue, l.inDrain)
		}
		if len(l.snapAt) > 2*len(j.origins)+17 {
			return fmt.Errorf("a link remembers %d snapshots sent, %d origins", len(l.snapAt), len(j.origins))
		}
	}
	return nil
}
