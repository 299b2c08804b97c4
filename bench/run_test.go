package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRunQuick runs the whole harness in -quick mode: it builds the Go peer
// (and the libzmq peer when gcc and libzmq are there), runs every case for
// every implementation as two processes each, and checks that each case
// printed one sane JSON line. It asserts no timing figures. Under CI=true a
// missing libzmq is a failure, not a skip.
func TestRunQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs benchmark processes; skipped with -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go tool to build bench/peer")
	}
	ci := os.Getenv("CI") == "true"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var out bytes.Buffer
	rep, err := Run(ctx, Config{Quick: true, RequireLibzmq: ci, Logf: t.Logf}, &out)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, impl := range []string{ImplHydra, ImplZMQ4} {
		if !slices.Contains(rep.Impls, impl) {
			t.Errorf("%s did not run (skipped: %q)", impl, rep.Skipped[impl])
		}
	}
	if why, skipped := rep.Skipped[ImplLibzmq]; skipped {
		t.Logf("libzmq skipped (gcc or libzmq3-dev missing?): %s", why)
	}
	for _, r := range rep.Results {
		if r.Err != nil {
			t.Errorf("%s %s %d: %v", r.Impl, r.Pattern, r.Size, r.Err)
		} else if !r.Complete {
			t.Logf("%s %s %d: partial, %d of %d", r.Impl, r.Pattern, r.Size, r.Count, r.Expected)
		}
	}

	// Every case line has exactly the documented fields and sane values,
	// and each implementation that ran has one line per case.
	seen := map[string]int{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"impl", "mb_per_sec", "msgs_per_sec", "pattern", "rtt_us", "size"}; !slices.Equal(keys, want) {
			t.Errorf("line %s: fields %v, want %v", line, keys, want)
			continue
		}
		impl, _ := m["impl"].(string)
		pattern, _ := m["pattern"].(string)
		size, _ := m["size"].(float64)
		msgs, _ := m["msgs_per_sec"].(float64)
		mbs, _ := m["mb_per_sec"].(float64)
		rtt, rttOK := m["rtt_us"].(float64)
		if !slices.Contains(rep.Impls, impl) {
			t.Errorf("line %s: unexpected impl", line)
		}
		c := Case{Pattern: pattern, Size: int(size)}
		if !slices.Contains(rep.Cases, c) {
			t.Errorf("line %s: unexpected case", line)
		}
		if !(msgs > 0) || !(mbs > 0) || !rttOK {
			t.Errorf("line %s: want positive msgs_per_sec and mb_per_sec", line)
		}
		if pattern == ReqRep && !(rtt > 0) {
			t.Errorf("line %s: want a positive rtt_us", line)
		}
		if pattern == PushPull && rtt != 0 {
			t.Errorf("line %s: want rtt_us 0 for push-pull", line)
		}
		seen[impl+" "+c.String()]++
	}
	for _, impl := range rep.Impls {
		for _, c := range rep.Cases {
			if n := seen[impl+" "+c.String()]; n != 1 {
				t.Errorf("%s %s: %d JSON lines, want 1", impl, c, n)
			}
		}
	}
	if len(rep.Cases) != 5 {
		t.Errorf("%d cases, want 5 (4 push-pull sizes and req-rep)", len(rep.Cases))
	}

	var table bytes.Buffer
	if err := WriteTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	for _, want := range []string{"push-pull 16 B", "req-rep 64 B", "hydra/zmq4"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if slices.Contains(rep.Impls, ImplLibzmq) && !strings.Contains(table.String(), "hydra/libzmq") {
		t.Error("table lacks the hydra/libzmq ratio")
	}
}

func TestParsePeerResult(t *testing.T) {
	out := []byte("some log line\n" +
		`{"impl":"libzmq","role":"pull","size":16,"count":10,"expected":10,"elapsed_s":0.5,"msgs_per_sec":18,"mb_per_sec":0.000288,"rtt_us":0,"complete":true}` + "\n")
	r, err := ParsePeerResult(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Impl != ImplLibzmq || r.Role != RolePull || r.Count != 10 || !r.Complete || r.MsgsPerSec != 18 {
		t.Errorf("got %+v", r)
	}
	if _, err := ParsePeerResult([]byte("peer: bind: address already in use\n")); err == nil {
		t.Error("no error for output without a result line")
	}
	if _, err := ParsePeerResult([]byte(`{"impl":`)); err == nil {
		t.Error("no error for a truncated result line")
	}
}

func TestHWM(t *testing.T) {
	for _, tc := range []struct{ size, want int }{
		{0, 100_000}, {16, 100_000}, {256, 100_000}, {4096, 8192}, {65536, 1000}, {1 << 20, 1000},
	} {
		if got := HWM(tc.size); got != tc.want {
			t.Errorf("HWM(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}

func TestCountLimits(t *testing.T) {
	for _, impl := range []string{ImplHydra, ImplZMQ4, ImplLibzmq} {
		for _, c := range []Case{{PushPull, 0}, {PushPull, 16}, {PushPull, 65536}, {PushPull, 16 << 20}, {ReqRep, 64}} {
			l := limitsFor(impl, c)
			if l.quick < 2 || l.quick > l.max || l.fixed < l.quick || l.fixed > l.max {
				t.Errorf("%s %s: bad limits %+v", impl, c, l)
			}
		}
	}
	// zmq4, the slowest on small messages, gets lower counts.
	if z, h := limitsFor(ImplZMQ4, Case{PushPull, 16}), limitsFor(ImplHydra, Case{PushPull, 16}); z.max >= h.max || z.quick > h.quick {
		t.Errorf("zmq4 limits %+v not below hydra's %+v", z, h)
	}
}
