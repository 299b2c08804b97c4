package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchJSON is the part of `bench --json` the tests read.
type benchJSON struct {
	Version string `json:"version"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	CPUs    int    `json:"cpus"`
	Results []struct {
		Bench       string   `json:"bench"`
		Case        string   `json:"case"`
		Target      string   `json:"target"`
		Size        int      `json:"size"`
		Concurrency int      `json:"concurrency"`
		Pipeline    int      `json:"pipeline"`
		Count       int64    `json:"count"`
		Expected    int64    `json:"expected"`
		Lost        int64    `json:"lost"`
		Errors      int64    `json:"errors"`
		Seconds     float64  `json:"seconds"`
		Warmup      float64  `json:"warmup_seconds"`
		MsgsPerSec  float64  `json:"msgs_per_sec"`
		MBPerSec    float64  `json:"mb_per_sec"`
		Notes       []string `json:"notes"`
		Latency     *struct {
			Samples int64   `json:"samples"`
			P50     float64 `json:"p50_us"`
			P90     float64 `json:"p90_us"`
			P99     float64 `json:"p99_us"`
			Max     float64 `json:"max_us"`
		} `json:"latency"`
	} `json:"results"`
	Skipped []struct{ Bench, Reason string } `json:"skipped"`
	Failed  []struct{ Bench, Reason string } `json:"failed"`
}

func runBenchJSON(t *testing.T, args ...string) benchJSON {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, errs := runCmd(ctx, append([]string{"bench", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("bench %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
	}
	var rep benchJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench %v --json: %v\n%s", args, err, out)
	}
	if !strings.HasPrefix(rep.Version, "hydra-server ") || rep.OS == "" || rep.Arch == "" || rep.CPUs < 1 {
		t.Errorf("report header: %+v", rep)
	}
	for _, r := range rep.Results {
		if r.Count <= 0 || r.Seconds <= 0 || r.MsgsPerSec <= 0 || r.Target == "" || r.Concurrency < 1 {
			t.Errorf("result %+v", r)
		}
		if l := r.Latency; l != nil && !(l.Samples > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
			t.Errorf("latency %+v", *l)
		}
	}
	return rep
}

func TestBenchZMTP(t *testing.T) {
	rep := runBenchJSON(t, "zmtp", "--count", "200", "--size", "64,4", "--concurrency", "2")
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.Case+"/"+itoa(r.Size))
		if r.Bench != "zmtp" || r.Target != "in-process" || r.Concurrency != 2 || r.Errors != 0 || r.Lost != 0 {
			t.Errorf("result %+v", r)
		}
		want := int64(200)
		if r.Case == "pub-sub" {
			want = 400 // each of 2 subscribers gets every message
		}
		if r.Count != want || r.MBPerSec <= 0 {
			t.Errorf("%s %d B: count %d (want %d), %v MB/s", r.Case, r.Size, r.Count, want, r.MBPerSec)
		}
		// One-way latency needs 8 bytes for the send time; round trips
		// are timed whatever the size.
		if hasLat := r.Latency != nil; hasLat != (r.Size >= 8 || r.Case == "req-rep") {
			t.Errorf("%s %d B: latency %v", r.Case, r.Size, r.Latency)
		}
	}
	if strings.Join(got, " ") != "push-pull/64 push-pull/4 req-rep/64 req-rep/4 pub-sub/64 pub-sub/4" {
		t.Errorf("cases %v", got)
	}
}

func TestBenchRegistryAndTable(t *testing.T) {
	rep := runBenchJSON(t, "registry", "--count", "300", "--concurrency", "3", "--pipeline", "2", "--op", "register", "--warmup", "200ms")
	if len(rep.Results) != 1 {
		t.Fatalf("results: %+v", rep.Results)
	}
	r := rep.Results[0]
	if r.Bench != "registry" || r.Case != "register" || r.Count != 300 || r.Concurrency != 3 || r.Pipeline != 2 || r.Latency == nil || r.Warmup != 0.2 {
		t.Errorf("result %+v", r)
	}

	ctx := context.Background()
	code, out, errs := runCmd(ctx, "bench", "registry", "--count", "100", "--concurrency", "2")
	if code != 0 {
		t.Fatalf("bench registry: %d %s", code, errs)
	}
	for _, want := range []string{"bench", "case", "msgs/s", "MB/s", "p50", "p90", "p99", "max", "registry  lookup", "registry  register", "2×4", "hydra-server "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if errs != "" {
		t.Errorf("stderr not a terminal, yet: %q", errs)
	}
}

func TestBenchAgainstProcesses(t *testing.T) {
	// A registry server process as the target of bench registry ...
	// The bench's 3000 entries come from one address.
	_, ep := startServer(t, nil, "--log-level", "warn", "--max-entries-per-client", "3000")
	rep := runBenchJSON(t, "registry", "--target", strings.TrimPrefix(ep, "tcp://"), "--count", "200", "--concurrency", "2")
	if len(rep.Results) != 2 || rep.Results[0].Target != ep || rep.Results[0].Errors != 0 {
		t.Errorf("bench registry --target %s: %+v", ep, rep.Results)
	}
	// ... and bench serve as the target of bench zmtp.
	serve := start(t, nil, "bench", "serve", "--listen", "tcp://127.0.0.1:0", "--log-level", "warn")
	banner := serve.line()
	rest, ok := strings.CutPrefix(banner, "[Hydra Bench] Listening on ")
	if !ok {
		t.Fatalf("bench serve printed %q", banner)
	}
	target := strings.Fields(strings.TrimSuffix(rest, ";"))[0]
	target = strings.TrimSuffix(target, ";")
	rep = runBenchJSON(t, "zmtp", "--target", target, "--count", "300", "--size", "32")
	if len(rep.Results) != 3 {
		t.Fatalf("results: %+v", rep.Results)
	}
	for _, r := range rep.Results {
		if r.Target != target || r.Count != 300 || r.Latency == nil {
			t.Errorf("%s against bench serve: %+v", r.Case, r)
		}
	}
	// The zmtp bench refuses a registry, with advice.
	ctx := context.Background()
	code, _, errs := runCmd(ctx, "bench", "zmtp", "--target", ep, "--count", "10", "--pattern", "req-rep")
	if code != 2 || !strings.Contains(errs, "not a bench responder") {
		t.Errorf("bench zmtp against a registry: %d %q", code, errs)
	}
	serve.signal(syscall.SIGTERM)
	if code := serve.wait(); code != 0 {
		t.Errorf("bench serve exit %d after SIGTERM: %s", code, serve.stderr())
	}
}

func TestBenchUsage(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{"bench"}, {"bench", "zmtp", "registry"}, {"bench", "disk"},
		{"bench", "all", "--target", "tcp://127.0.0.1:1"}, {"bench", "tunnel", "--target", "tcp://127.0.0.1:1"},
		{"bench", "zmtp", "--size", "0"}, {"bench", "zmtp", "--size", "huge"}, {"bench", "zmtp", "--pattern", "ring"},
		{"bench", "registry", "--op", "delete"}, {"bench", "zmtp", "--count", "-1"}, {"bench", "zmtp", "--pipeline", "0"},
		{"bench", "zmtp", "--rate", "NaN"}, {"bench", "registry", "--warmup", "-1s"}, {"bench", "zmtp", "--count", "many"}, {"bench", "registry", "--pipeline", "1000"},
	} {
		if code, _, errs := runCmd(ctx, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%q)", args, code, errs)
		}
	}
	code, out, _ := runCmd(ctx, "bench", "--help")
	for _, want := range []string{"Usage: hydra-server bench", "--target", "--pattern", "--size", "--count", "--duration",
		"--concurrency", "--json", "$HYDRA_TARGET", "bench serve"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("bench --help lacks %q", want)
		}
	}
	if _, out2, _ := runCmd(ctx, "help", "bench"); out2 != out {
		t.Error("help bench differs from bench --help")
	}
	if _, out, _ := runCmd(ctx, "--help"); !strings.Contains(out, "bench") {
		t.Error("--help does not list bench")
	}
}

func TestBenchAll(t *testing.T) {
	rep := runBenchJSON(t, "all", "--count", "100", "--concurrency", "1")
	var cases []string
	for _, r := range rep.Results {
		cases = append(cases, r.Bench+" "+r.Case)
	}
	want := "zmtp push-pull,zmtp req-rep,zmtp pub-sub,registry lookup,registry register,tunnel stream"
	if strings.Join(cases, ",") != want || len(rep.Failed) != 0 {
		t.Errorf("bench all ran %v, failed %+v", cases, rep.Failed)
	}
}

func TestProgressLine(t *testing.T) {
	if got := progressLine("[1/3] zmtp push-pull 256 B", 1_234_567, 612_000, 1500*time.Millisecond, 0, 2*time.Second); got != "[1/3] zmtp push-pull 256 B  1.23M sent  612K/s  1.50s/2.00s" {
		t.Errorf("progress by duration: %q", got)
	}
	if got := progressLine("registry lookup", 500, 1000, time.Second, 2000, time.Second); got != "registry lookup  500 sent  1000/s  25%" {
		t.Errorf("progress by count: %q", got)
	}
	if isTerminal(&strings.Builder{}) {
		t.Error("a builder is a terminal")
	}
}

// TestProgressWarmup: during the warm-up the line says so, and afterwards
// it counts what was sent since: here nothing.
func TestProgressWarmup(t *testing.T) {
	var mu sync.Mutex
	var out strings.Builder
	text := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	var n atomic.Int64
	n.Add(5000) // all of it during the warm-up
	stop := newProgress(lockedWriter{&mu, &out}, true).start("registry lookup", &n, 0, time.Second, 2*time.Second)
	defer stop()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s := text()
		i := strings.LastIndex(s, "registry lookup  warming up")
		if j := strings.LastIndex(s, " sent "); i >= 0 && j > i {
			if after := s[i:]; !strings.Contains(after, "registry lookup  0 sent") {
				t.Errorf("after the warm-up, the line counts what the warm-up sent: %q", after)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no warm-up line followed by a count in %q", s)
		}
	}
}

// TestBenchDeadTarget: a --target where nothing listens fails at once, in
// one line that says so, without an empty table or a wait per case.
func TestBenchDeadTarget(t *testing.T) {
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, kind := range []string{"registry", "zmtp"} {
		t0 := time.Now()
		code, out, errs := runCmd(ctx, "bench", kind, "--target", "127.0.0.1:"+strconv.Itoa(port), "--duration", "1s")
		if took := time.Since(t0); took > 3*time.Second {
			t.Errorf("bench %s at a dead port took %v", kind, took)
		}
		if code == 0 || out != "" || strings.Count(errs, "\n") != 1 {
			t.Errorf("bench %s at a dead port: exit %d, stdout %q, stderr %q", kind, code, out, errs)
		}
		golden(t, "errors/bench-"+kind+"-dead-target", strings.ReplaceAll(errs, strconv.Itoa(port), "PORT"))
	}
}
