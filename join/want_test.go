package join_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
)

// TestJoinWantFlood is the snapshot-request attack: a peer link sends three
// wants (about 60 KB each) naming the same origin 3 200 times each, at a
// server holding 20 000 entries. The repeats merge: the link gets at most
// one more snapshot, not thousands of (partial) ones, a want of origins
// the server does not hold sends nothing, and a concurrent
// client's lookups are answered throughout (the worst lookup latency is
// logged, not asserted).
func TestJoinWantFlood(t *testing.T) {
	const entries, repeats, wants = 20000, 3200, 3
	id := "flood-target-srv" // 16 bytes: 3 200 of them make a 60 KB want
	static := make([]registry.Service, entries)
	for i := range static {
		static[i] = registry.Service{Name: fmt.Sprintf("svc-%03d", i%500), Host: "10.1.2.3", Port: 1000 + i,
			Meta: map[string]string{"zone": "eu-west-1a", "role": "replica"}}
	}
	cfg := joinCfg(id)
	cfg.reg.Static, cfg.reg.MaxEntries = static, 2*entries
	cfg.join.Interval = time.Second // the merge window
	cfg.join.Timeout, cfg.join.Grace = 10*time.Second, 20*time.Second
	srv := startServer(t, cfg)
	c := newClient(t, srv, registry.ClientConfig{Timeout: 20 * time.Second})
	if _, err := c.Register(ctxT(t), registry.Service{Name: "well-behaved", Host: "h", Port: 1}); err != nil {
		t.Fatal(err)
	}

	f := newFakePeer(t, srv, "FAKE")
	helloAt := time.Now()
	f.send(map[string]any{"t": "hello", "v": 1, "server": "FAKE", "boot": "b", "max": 1 << 20, "interval": 1,
		"digest": map[string][3]uint64{"FAKE": {1, f.beat, 0}}})
	// The peer reads everything, as a live server does, and counts parts.
	// Parts must arrive in order, each snapshot whole, before ready.
	var parts, readies, disorder atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		next := int64(0) // the part expected
		for {
			msg, err := f.s.RecvContext(ctx)
			if err != nil {
				return
			}
			if len(msg) != 2 {
				continue
			}
			t, part, more := peekMsg(msg[1])
			switch t {
			case "snap":
				if part != next {
					disorder.Add(1)
				}
				next = 0
				if more {
					next = part + 1
				}
				parts.Add(1)
			case "ready":
				if next != 0 {
					disorder.Add(1)
				}
				readies.Add(1)
			}
		}
	}()
	defer func() { cancel(); <-readerDone }()
	testutil.Eventually(t, 20*time.Second, "the initial snapshot and ready", func() bool { return readies.Load() == 1 })
	first := parts.Load()
	// Sent a slice per loop iteration, the loop woken for each (not
	// waiting for a request or its receive timeout).
	t.Logf("initial sync, %d parts: %v", first, time.Since(helloAt).Round(time.Millisecond))
	st0 := srv.j.Stats()
	if st0.SnapsOut != 1 || int64(st0.SnapPartsOut) != first {
		t.Fatalf("initial sync: %d parts read, stats %+v", first, st0)
	}
	// Past the merge window of the initial snapshot: one more may go.
	time.Sleep(cfg.join.Interval + 100*time.Millisecond)

	// A well-behaved client looks up throughout; the worst latency is the
	// loop's stall.
	var worst time.Duration
	var lookups, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			if _, err := c.Lookup(context.Background(), "well-behaved"); err != nil {
				failed.Add(1)
			}
			worst = max(worst, time.Since(t0))
			lookups.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	want := `{"t":"want","origins":[` + strings.TrimSuffix(strings.Repeat(`"`+id+`",`, repeats), ",") + `]}`
	start := time.Now()
	for range wants {
		f.sendRaw(want)
	}
	// And a want of 3 000 origins the server does not hold: nothing to send.
	unknown := make([]string, 3000)
	for i := range unknown {
		unknown[i] = fmt.Sprintf("nobody-%04d", i)
	}
	f.send(map[string]any{"t": "want", "origins": unknown})
	// The wants are handled once the loop answers what comes after them.
	f.send(map[string]any{"t": "tick", "digest": map[string][3]uint64{"FAKE": {1, f.beat + 1, 0}}})
	testutil.Eventually(t, 30*time.Second, "the wants handled", func() bool {
		return srv.j.Stats().MsgsIn >= st0.MsgsIn+wants+2
	})
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond) // lookups during the sending, too
	close(stop)
	wg.Wait()

	st := srv.j.Stats()
	snaps, sent := st.SnapsOut-st0.SnapsOut, st.SnapPartsOut-st0.SnapPartsOut
	t.Logf("%d wants × %d repeats, %d entries (%d parts a snapshot): handled in %v; %d snapshots (%d parts, %d bytes) sent, %d merged, %d encodings, %d dropped; %d lookups, worst %v",
		wants, repeats, entries, first, took.Round(time.Millisecond), snaps, sent, st.SnapBytesOut-st0.SnapBytesOut,
		st.SnapsMerged-st0.SnapsMerged, st.SnapsEncoded, st.Dropped-st0.Dropped, lookups.Load(), worst.Round(time.Millisecond))
	if snaps > 1 || sent > first {
		t.Errorf("%d snapshots, %d parts sent for %d repeats of one origin: want at most one snapshot (%d parts)", snaps, sent, wants*repeats, first)
	}
	if n := st.SnapsMerged - st0.SnapsMerged; n < wants*repeats-1 {
		t.Errorf("%d requests merged, want %d", n, wants*repeats-1)
	}
	if st.Dropped != st0.Dropped {
		t.Errorf("%d link messages dropped", st.Dropped-st0.Dropped)
	}
	if disorder.Load() > 0 {
		t.Errorf("%d snapshot parts or readies out of order", disorder.Load())
	}
	if failed.Load() > 0 || lookups.Load() == 0 {
		t.Errorf("well-behaved client: %d of %d lookups failed", failed.Load(), lookups.Load())
	}
}

// peekMsg reads a SYNC body's type, and a snapshot part's number and more
// flag, without decoding its entries (megabytes of them here).
func peekMsg(b []byte) (t string, part int64, more bool) {
	var head struct {
		T    string `json:"t"`
		Part int64  `json:"part"`
	}
	i := bytes.Index(b, []byte(`,"entries":`))
	if i < 0 {
		_ = json.Unmarshal(b, &head)
		return head.T, head.Part, false
	}
	_ = json.Unmarshal(append(b[:i:i], '}'), &head)
	return head.T, head.Part, bytes.Contains(b[max(0, len(b)-300):], []byte(`,"more":true`))
}
