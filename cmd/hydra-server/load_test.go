package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/selfbench"
)

// TestLoad is the registry's load test against a server process: services
// registered and kept alive, clients looking up (every reply checked)
// while others register entries and let them expire. By default it runs a
// reduced scale; HYDRA_LOAD=full runs the issue's: 10 000 services, 200
// concurrent lookup clients, for 10 s:
//
//	HYDRA_LOAD=full go test -run TestLoad -v -count=1 ./cmd/hydra-server/
func TestLoad(t *testing.T) {
	cfg := selfbench.LoadConfig{
		Services: 1000, Registrars: 10, Lookupers: 20, Churners: 2,
		Duration: 2 * time.Second, TTL: 3 * time.Second, ChurnTTL: 500 * time.Millisecond,
		ChurnPause: 10 * time.Millisecond,
	}
	if testing.Short() {
		cfg.Duration = time.Second
	}
	if os.Getenv("HYDRA_LOAD") == "full" {
		cfg = selfbench.LoadConfig{} // the defaults are the figures
	}
	cfg.Logf = t.Logf
	_, ep := startServer(t, nil, "--min-ttl", "100ms", "--log-level", "warn")
	cfg.Endpoint = ep
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := selfbench.LoadTest(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if !rep.Passed() {
		t.Fatalf("load test failed: %s", rep.FirstError)
	}
	if rep.Lookups == 0 || rep.ChurnRegistered == 0 || rep.ChurnExpired == 0 {
		t.Fatalf("nothing happened: %s", rep)
	}
}

// BenchmarkLookup measures lookups per second with 64 pipelining clients
// (1, 4 or 16 requests in flight each) against a server process, and their
// p50 and p99 latency:
//
//	go test -run '^$' -bench . -benchtime 100000x ./cmd/hydra-server/   # about 5 s on two cores
func BenchmarkLookup(b *testing.B) {
	for _, depth := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("clients=64/pipeline=%d", depth), func(b *testing.B) { bench(b, "lookup", depth) })
	}
}

// BenchmarkRegister does the same for REGISTER (each client cycles through
// 1000 endpoints: creations, then renewals).
func BenchmarkRegister(b *testing.B) {
	for _, depth := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("clients=64/pipeline=%d", depth), func(b *testing.B) { bench(b, "register", depth) })
	}
}

func bench(b *testing.B, op string, depth int) {
	_, ep := startServer(b, nil, "--log-level", "warn")
	ctx := context.Background()
	b.ResetTimer()
	res, err := selfbench.Registry(ctx, selfbench.RegistryConfig{Target: ep, Op: op, Count: int64(b.N), Concurrency: 64, Pipeline: depth})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if res.Errors > 0 {
		b.Fatalf("%d error replies", res.Errors)
	}
	b.ReportMetric(res.MsgsPerSec, op+"s/s")
	b.ReportMetric(float64(res.Latency.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(res.Latency.P99.Microseconds()), "p99-µs")
	if b.N > 1000 {
		b.Logf("%s: %d clients × %d pipelined: %d requests in %v = %.0f/s, p50 %v, p99 %v, max %v",
			op, res.Concurrency, res.Pipeline, res.Count, res.Elapsed.Round(time.Millisecond), res.MsgsPerSec, res.Latency.P50, res.Latency.P99, res.Latency.Max)
	}
}
