package selfbench

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
)

func TestTunnelStreams(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	r, err := Tunnel(ctx, TunnelConfig{Size: 1024, Count: 200, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r, KindTunnel, "stream", InProcess)
	if r.Size != 1024 || r.Concurrency != 2 || r.Count != 200 || r.Expected != 200 || r.Lost != 0 {
		t.Errorf("size %d, concurrency %d, count %d of %d, lost %d", r.Size, r.Concurrency, r.Count, r.Expected, r.Lost)
	}
	if r.MBPerSec <= 0 {
		t.Errorf("%v MB/s", r.MBPerSec)
	}
	if r.Latency == nil || r.Latency.Samples != 200 {
		t.Errorf("latency %+v, want 200 echo samples", r.Latency)
	}
	if len(r.Notes) != 1 {
		t.Errorf("notes %q", r.Notes)
	}

	// Every server, tunnel, proxy and connection is gone.
	testutil.CheckGoroutines(t, before)
}

func TestTunnelSmallWritesForDuration(t *testing.T) {
	r, err := Tunnel(context.Background(), TunnelConfig{Size: 1, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r, KindTunnel, "stream", InProcess)
	if r.Concurrency != 1 || r.Count != r.Expected || r.Latency == nil || r.Latency.Samples != echoRounds {
		t.Errorf("%+v", r)
	}
}

func TestTunnelBadConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := Tunnel(ctx, TunnelConfig{Target: "tcp://127.0.0.1:1", Count: 1}); !errors.Is(err, ErrTunnelTarget) {
		t.Errorf("with a target: %v", err)
	}
	for _, cfg := range []TunnelConfig{{Size: -1}, {Size: MaxSize + 1}, {Count: -1}, {Concurrency: MaxConcurrency + 1}} {
		if _, err := Tunnel(ctx, cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}
