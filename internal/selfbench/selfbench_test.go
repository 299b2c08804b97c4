package selfbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// The tests run tiny benches and check what the reports say, never how
// fast anything was.

func TestHistogram(t *testing.T) {
	h := NewHistogram()
	if h.Latency() != nil || h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram reports figures")
	}
	for v := 1; v <= 1000; v++ {
		h.Record(time.Duration(v) * time.Microsecond)
	}
	h.Record(-5) // counts as zero
	l := h.Latency()
	if l.Samples != 1001 || l.Max != time.Millisecond {
		t.Fatalf("samples %d max %v", l.Samples, l.Max)
	}
	near := func(name string, got, want time.Duration) {
		t.Helper()
		if d := got - want; d < -want/50 || d > want/50 {
			t.Errorf("%s = %v, want %v within 2%%", name, got, want)
		}
	}
	near("p50", l.P50, 500*time.Microsecond)
	near("p90", l.P90, 900*time.Microsecond)
	near("p99", l.P99, 990*time.Microsecond)
	if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("quantiles out of order: %+v", l)
	}
	if h.Quantile(0) != 0 || h.Quantile(1) != time.Millisecond {
		t.Errorf("q0 %v q1 %v", h.Quantile(0), h.Quantile(1))
	}

	// Small values are exact; huge ones land in the last bucket and Max
	// stays exact.
	e := NewHistogram()
	for _, v := range []time.Duration{3, 3, 7, 63} {
		e.Record(v)
	}
	if e.Quantile(0.5) != 3 || e.Quantile(0.75) != 7 || e.Quantile(1) != 63 {
		t.Errorf("exact range: %v %v %v", e.Quantile(0.5), e.Quantile(0.75), e.Quantile(1))
	}
	e.Record(100 * time.Hour)
	if e.Max() != 100*time.Hour || e.Quantile(1) != 100*time.Hour {
		t.Errorf("huge value: max %v q1 %v", e.Max(), e.Quantile(1))
	}

	m := NewHistogram()
	m.Merge(h)
	m.Merge(e)
	m.Merge(nil)
	if m.Count() != h.Count()+e.Count() || m.Max() != 100*time.Hour || m.Quantile(0) != 0 {
		t.Errorf("merge: count %d max %v", m.Count(), m.Max())
	}
}

func TestBuckets(t *testing.T) {
	// Buckets tile the values: each value lies in its bucket's bounds, and
	// bounds grow without gaps.
	prevHi := int64(0)
	for i := range histBuckets - 1 {
		lo, hi := bucketBounds(i)
		if lo != prevHi || hi <= lo {
			t.Fatalf("bucket %d: [%d, %d) after %d", i, lo, hi, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi-1) != i {
			t.Fatalf("bucket %d: bucketOf(%d)=%d bucketOf(%d)=%d", i, lo, bucketOf(lo), hi-1, bucketOf(hi-1))
		}
		if i >= histSub && float64(hi-lo)/float64(lo) > 1.0/32+1e-9 {
			t.Fatalf("bucket %d too wide: [%d, %d)", i, lo, hi)
		}
		prevHi = hi
	}
}

// checkResult checks what every successful result has.
func checkResult(t *testing.T, r Result, bench, kase, target string) {
	t.Helper()
	if r.Bench != bench || r.Case != kase || r.Target != target {
		t.Errorf("result names %s %s %s, want %s %s %s", r.Bench, r.Case, r.Target, bench, kase, target)
	}
	if r.Count <= 0 || r.MsgsPerSec <= 0 || r.Elapsed <= 0 {
		t.Errorf("count %d, %v msgs/s, elapsed %v", r.Count, r.MsgsPerSec, r.Elapsed)
	}
	if l := r.Latency; l != nil && !(l.Samples > 0 && 0 <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("latency %+v", *l)
	}
}

func TestZMTPPatterns(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		pattern Pattern
		conc    int
		count   int64 // per the result's Count
	}{
		{PushPull, 1, 500}, {PushPull, 3, 500},
		{ReqRep, 1, 200}, {ReqRep, 4, 200},
		{PubSub, 1, 500}, {PubSub, 3, 1500}, // every subscriber gets every message
	} {
		t.Run(string(tc.pattern), func(t *testing.T) {
			var prog atomic.Int64
			r, err := ZMTP(ctx, ZMTPConfig{Pattern: tc.pattern, Size: 100, Count: 500 - int64(300*btoi(tc.pattern == ReqRep)), Concurrency: tc.conc, HWM: 50, Progress: &prog})
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, r, KindZMTP, string(tc.pattern), InProcess)
			if r.Count != tc.count || r.Lost != 0 || r.Errors != 0 {
				t.Errorf("count %d lost %d errors %d, want %d, 0, 0", r.Count, r.Lost, r.Errors, tc.count)
			}
			if r.Size != 100 || r.Concurrency != tc.conc {
				t.Errorf("size %d concurrency %d", r.Size, r.Concurrency)
			}
			sent := int64(500)
			if tc.pattern == ReqRep {
				sent = 200
			} else if r.Expected != tc.count {
				t.Errorf("expected %d, want %d", r.Expected, tc.count)
			}
			if prog.Load() != sent {
				t.Errorf("progress %d, want %d", prog.Load(), sent)
			}
			if r.Latency == nil || r.Latency.Samples != r.Count {
				t.Errorf("latency %+v, want %d samples", r.Latency, r.Count)
			}
			if r.MBPerSec <= 0 {
				t.Errorf("MB/s %v", r.MBPerSec)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestZMTPSmallMessagesAndDuration(t *testing.T) {
	ctx := context.Background()
	// Under 8 bytes there is no room for a send time: no one-way latency.
	r, err := ZMTP(ctx, ZMTPConfig{Pattern: PushPull, Size: 4, Count: 300})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r, KindZMTP, "push-pull", InProcess)
	if r.Latency != nil || r.Count != 300 {
		t.Errorf("4-byte push-pull: latency %+v count %d", r.Latency, r.Count)
	}
	// Round trips are timed by the client whatever the size.
	r, err = ZMTP(ctx, ZMTPConfig{Pattern: ReqRep, Size: 1, Duration: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r, KindZMTP, "req-rep", InProcess)
	if r.Latency == nil || r.Latency.Samples != r.Count {
		t.Errorf("req-rep by duration: latency %+v count %d", r.Latency, r.Count)
	}
	// Rate-limited: still everything arrives.
	r, err = ZMTP(ctx, ZMTPConfig{Pattern: PubSub, Size: 64, Count: 100, Rate: 5000, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Count != 200 || r.Lost != 0 {
		t.Errorf("paced pub-sub: count %d lost %d", r.Count, r.Lost)
	}
}

func TestZMTPRemoteResponder(t *testing.T) {
	resp, err := NewResponder(ResponderConfig{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go resp.Serve(ctx)
	for _, p := range Patterns {
		r, err := ZMTP(ctx, ZMTPConfig{Target: resp.Endpoint(), Pattern: p, Size: 32, Count: 100, Concurrency: 2})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		checkResult(t, r, KindZMTP, string(p), resp.Endpoint())
		if (p != ReqRep) != (r.ClockError > 0) {
			t.Errorf("%s: clock error %v", p, r.ClockError)
		}
	}
}

func TestResponderOneSessionAtATime(t *testing.T) {
	resp, err := NewResponder(ResponderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	go resp.Serve(context.Background())
	ctx := context.Background()
	a, err := dialControl(resp.Endpoint(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	open := &ctlRequest{Op: "open", Pattern: PushPull, Size: 8, Conns: 1}
	rep, err := a.call(ctx, open)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dialControl(resp.Endpoint(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if _, err := b.call(ctx, open); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("second session: %v, want busy", err)
	}
	if _, err := b.call(ctx, &ctlRequest{Op: "finish", Session: rep.Session}); err != nil {
		t.Fatal(err) // whoever knows the session id may finish it
	}
	if _, err := b.call(ctx, &ctlRequest{Op: "status", Session: rep.Session}); err == nil {
		t.Fatal("status of a finished session succeeded")
	}
	for _, bad := range []*ctlRequest{
		{Op: "open", Pattern: "ring", Size: 8, Conns: 1},
		{Op: "open", Pattern: PubSub, Size: 8, Conns: 0},
		{Op: "open", Pattern: PushPull, Size: -1, Conns: 1},
		{Op: "dance"},
	} {
		if _, err := b.call(ctx, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestZMTPWrongTargets(t *testing.T) {
	ctx := context.Background()
	// A registry server is not a bench responder.
	srv, err := registry.NewServer(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx)
	defer srv.Close()
	_, err = ZMTP(ctx, ZMTPConfig{Target: srv.Endpoint(), Count: 10, Timeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "not a bench responder") {
		t.Errorf("registry as target: %v", err)
	}
	// Nobody there: a clear timeout.
	l := freeEndpoint(t)
	_, err = ZMTP(ctx, ZMTPConfig{Target: l, Count: 10, Timeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "bench serve") {
		t.Errorf("nobody at the target: %v", err)
	}
	for _, bad := range []ZMTPConfig{{Pattern: "ring"}, {Size: -1}, {Concurrency: MaxConcurrency + 1}, {Count: -1}} {
		if _, err := ZMTP(ctx, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// freeEndpoint returns a tcp endpoint nobody listens on.
func freeEndpoint(t *testing.T) string {
	s, err := zmtp.NewSocket(zmtp.PULL, zmtp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ep := s.Endpoint()
	s.Close()
	return ep
}

func TestRegistry(t *testing.T) {
	ctx := context.Background()
	for _, op := range Ops {
		var prog atomic.Int64
		r, err := Registry(ctx, RegistryConfig{Op: op, Count: 300, Concurrency: 3, Pipeline: 2, Progress: &prog})
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, r, KindRegistry, op, InProcess)
		if r.Count != 300 || r.Errors != 0 || prog.Load() != 300 || r.Concurrency != 3 || r.Pipeline != 2 {
			t.Errorf("%s: count %d errors %d progress %d conc %d pipeline %d", op, r.Count, r.Errors, prog.Load(), r.Concurrency, r.Pipeline)
		}
		if r.Latency == nil || r.Latency.Samples != 300 || r.Size != 0 || r.MBPerSec != 0 {
			t.Errorf("%s: latency %+v size %d MB/s %v", op, r.Latency, r.Size, r.MBPerSec)
		}
	}
	if _, err := Registry(ctx, RegistryConfig{Op: "delete"}); err == nil {
		t.Error("unknown op accepted")
	}
}

// TestRegistryRate: the paced (open-loop) mode makes every request once
// and measures each.
func TestRegistryRate(t *testing.T) {
	for _, pipeline := range []int{1, 3} {
		r, err := Registry(context.Background(), RegistryConfig{Op: OpLookup, Count: 200, Concurrency: 4, Pipeline: pipeline, Rate: 2000})
		if err != nil {
			t.Fatal(err)
		}
		if r.Count != 200 || r.Errors != 0 || r.Latency == nil || r.Latency.Samples != 200 {
			t.Errorf("pipeline %d: count %d errors %d latency %+v", pipeline, r.Count, r.Errors, r.Latency)
		}
	}
}

// TestRegistryWarmup: requests made during the warm-up are answered (the
// progress counter sees them) but neither counted nor timed, closed and
// open loop.
func TestRegistryWarmup(t *testing.T) {
	const warmup = 300 * time.Millisecond
	for _, rate := range []float64{0, 2000} {
		var prog atomic.Int64
		start := time.Now()
		r, err := Registry(context.Background(), RegistryConfig{Op: OpLookup, Count: 200, Concurrency: 2, Pipeline: 2,
			Rate: rate, Warmup: warmup, Progress: &prog})
		wall := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if r.Count != 200 || r.Errors != 0 || r.Latency == nil || r.Latency.Samples != 200 {
			t.Errorf("rate %v: count %d errors %d latency %+v", rate, r.Count, r.Errors, r.Latency)
		}
		if prog.Load() <= 200 {
			t.Errorf("rate %v: %d replies in all: the warm-up made no requests", rate, prog.Load())
		}
		if r.Elapsed > wall-warmup {
			t.Errorf("rate %v: elapsed %v includes the warm-up (wall time %v)", rate, r.Elapsed, wall)
		}
	}
	if _, err := Registry(context.Background(), RegistryConfig{Warmup: -time.Second}); err == nil {
		t.Error("negative warm-up accepted")
	}
}

func TestRegistryTargetCleansUp(t *testing.T) {
	ctx := context.Background()
	// The bench registers its data from one address: a target needs a
	// per-client quota that takes it (--max-entries-per-client).
	srv, err := registry.NewServer(registry.Config{MaxEntriesPerClient: registry.DefaultMaxEntries})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx)
	defer srv.Close()
	for _, op := range Ops {
		r, err := Registry(ctx, RegistryConfig{Target: srv.Endpoint(), Op: op, Count: 200, Concurrency: 2})
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, r, KindRegistry, op, srv.Endpoint())
	}
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: srv.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	names, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 0 {
		t.Errorf("the bench left %d names behind on the server, e.g. %v", len(names), names[0])
	}
}

func TestReportOutput(t *testing.T) {
	rep := &Report{Version: "hydra-server test", OS: "linux", Arch: "arm64", CPUs: 2,
		Results: []Result{
			{Bench: KindZMTP, Case: "push-pull", Target: InProcess, Size: 4096, Concurrency: 1, Count: 1000, Expected: 1000,
				Elapsed: time.Second, MsgsPerSec: 999, MBPerSec: 4.09,
				Latency:    &Latency{Samples: 1000, P50: 1500 * time.Nanosecond, P90: 2 * time.Millisecond, P99: 3 * time.Millisecond, Max: 2 * time.Second},
				ClockError: 25 * time.Microsecond},
			{Bench: KindRegistry, Case: "lookup", Target: "tcp://10.0.0.7:8420", Concurrency: 16, Pipeline: 4, Count: 123456,
				Elapsed: 2 * time.Second, MsgsPerSec: 61728, Errors: 2, Notes: []string{"2 error replies"}},
		},
		Skipped: []Skip{{Bench: KindTunnel, Reason: "not available until tunnels land"}},
	}
	var tb bytes.Buffer
	if err := WriteTable(&tb, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"msgs/s", "MB/s", "p50", "p90", "p99", "max", "4 KiB", "16×4", "123K", "61.7K",
		"1.50µs", "2.00ms", "2.00s", "registry lookup: 2 error replies", "tunnel: skipped", "aligned to within ±25.0µs"} {
		if !strings.Contains(tb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tb.String())
		}
	}

	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Version string `json:"version"`
		Arch    string `json:"arch"`
		Results []struct {
			Bench      string   `json:"bench"`
			Case       string   `json:"case"`
			Target     string   `json:"target"`
			Size       int      `json:"size"`
			Pipeline   int      `json:"pipeline"`
			Count      int64    `json:"count"`
			Seconds    float64  `json:"seconds"`
			MsgsPerSec float64  `json:"msgs_per_sec"`
			MBPerSec   float64  `json:"mb_per_sec"`
			ClockError float64  `json:"clock_error_us"`
			Notes      []string `json:"notes"`
			Latency    *struct {
				Samples int64   `json:"samples"`
				P50     float64 `json:"p50_us"`
				P90     float64 `json:"p90_us"`
				P99     float64 `json:"p99_us"`
				Max     float64 `json:"max_us"`
			} `json:"latency"`
		} `json:"results"`
		Skipped []Skip `json:"skipped"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	z, g := back.Results[0], back.Results[1]
	if back.Version != "hydra-server test" || back.Arch != "arm64" || len(back.Skipped) != 1 {
		t.Errorf("report header: %s", b)
	}
	if z.Bench != "zmtp" || z.Case != "push-pull" || z.Size != 4096 || z.Count != 1000 || z.Seconds != 1 || z.MBPerSec != 4.09 ||
		z.Latency == nil || z.Latency.P50 != 1.5 || z.Latency.P90 != 2000 || z.Latency.Max != 2e6 || z.ClockError != 25 {
		t.Errorf("zmtp result: %s", b)
	}
	if g.Latency != nil || g.Pipeline != 4 || g.Target != "tcp://10.0.0.7:8420" || len(g.Notes) != 1 {
		t.Errorf("registry result: %s", b)
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{FormatCount(999), "999"}, {FormatCount(12345), "12.3K"}, {FormatCount(2.5e6), "2.50M"}, {FormatCount(1.25e9), "1.25G"},
		{FormatDuration(83500 * time.Nanosecond), "83.5µs"}, {FormatDuration(1210 * time.Microsecond), "1.21ms"},
		{FormatDuration(2 * time.Second), "2.00s"}, {FormatDuration(999), "999ns"},
		{FormatDuration(999_960 * time.Microsecond), "1.00s"}, {FormatDuration(999_960 * time.Nanosecond), "1.00ms"},
		{FormatDuration(99_960 * time.Nanosecond), "100µs"}, {FormatDuration(9_996 * time.Nanosecond), "10.0µs"},
		{FormatCount(999_960), "1.00M"}, {FormatCount(9_999), "9999"}, {FormatCount(99_960), "100K"},
		{FormatBytes(16), "16 B"}, {FormatBytes(4096), "4 KiB"}, {FormatBytes(1500), "1500 B"}, {FormatBytes(1 << 20), "1 MiB"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestDataEndpoint(t *testing.T) {
	for _, c := range [][3]string{
		{"tcp://far:8421", "tcp://0.0.0.0:40001", "tcp://far:40001"},
		{"tcp://[::1]:8421", "tcp://[::]:40001", "tcp://[::1]:40001"},
		{"ipc:///tmp/b", "ipc:///tmp/b.1.0", "ipc:///tmp/b.1.0"},
	} {
		if got := dataEndpoint(c[0], c[1]); got != c[2] {
			t.Errorf("dataEndpoint(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func TestNoGoroutineLeft(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	for _, p := range Patterns {
		if _, err := ZMTP(ctx, ZMTPConfig{Pattern: p, Count: 50, Concurrency: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Registry(ctx, RegistryConfig{Count: 50, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	testutil.CheckGoroutines(t, before)
}

func TestZMTPInterruptedRunFreesResponder(t *testing.T) {
	resp, err := NewResponder(ResponderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	go resp.Serve(context.Background())
	for _, p := range Patterns {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := ZMTP(ctx, ZMTPConfig{Target: resp.Endpoint(), Pattern: p, Duration: time.Minute}); !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: interrupted run: %v", p, err)
		}
		// The next client is not told "busy".
		if _, err := ZMTP(context.Background(), ZMTPConfig{Target: resp.Endpoint(), Pattern: p, Count: 10}); err != nil {
			t.Fatalf("%s: run after an interrupted one: %v", p, err)
		}
	}
}

// TestReportNotesOnce: a note the cases of a bench share (the tunnel's
// latency footnote, one per --size) is printed once, and the latency
// legend names only the benches that ran.
func TestReportNotesOnce(t *testing.T) {
	note := "latency: round trip of a 64-byte write echoed through the tunnel"
	rep := &Report{Version: "hydra-server test", CPUs: 2}
	for _, size := range []int{1024, 65536, 1 << 20} {
		rep.Results = append(rep.Results, Result{Bench: KindTunnel, Case: "stream", Target: InProcess, Size: size,
			Concurrency: 1, Count: 10, Elapsed: time.Second, MsgsPerSec: 10, Notes: []string{note}})
	}
	var tb bytes.Buffer
	if err := WriteTable(&tb, rep); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(tb.String(), note); n != 1 {
		t.Errorf("the tunnel's note printed %d times:\n%s", n, tb.String())
	}
	if !strings.HasSuffix(tb.String(), "\nhydra-server test, 2 CPUs; latency: tunnel 64-byte echo round trip\n") {
		t.Errorf("legend of a tunnel-only report:\n%s", tb.String())
	}
}
