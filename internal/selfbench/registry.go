package hydrabench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/registry/loadgen"
)

// The registry operations measured.
const (
	OpLookup   = "lookup"
	OpRegister = "register"
)

// Ops lists the registry operations in the order `bench registry` runs
// them.
var Ops = []string{OpLookup, OpRegister}

// Defaults of the registry bench.
const (
	DefaultRegistryClients  = 16
	DefaultRegistryPipeline = 4
	MaxPipeline             = 256
)

// RegistryConfig says what Registry measures. Zero fields take the
// defaults given.
type RegistryConfig struct {
	// Target is a hydra-server's endpoint, tcp://HOST:PORT. Empty: start a
	// registry server in this process on 127.0.0.1.
	Target string
	// Op is lookup (default: 1000 names of 3 instances each are
	// registered first, and looked up in turn) or register (each client
	// registers, then renews, 1000 entries of its own).
	Op string
	// Count is the number of requests in all; zero: for Duration
	// (default 2s).
	Count    int64
	Duration time.Duration
	// Concurrency is the number of clients (connections), each keeping
	// Pipeline requests in flight; defaults 16 and 4.
	Concurrency, Pipeline int
	// Rate, when set, paces the requests at Rate per second in all (open
	// loop), for latency under a given load rather than at saturation.
	Rate float64
	// Warmup, when set, loads the server for this long before the
	// measurement (Count or Duration) starts; see loadgen.BenchConfig.
	Warmup time.Duration
	// Progress, when set, is advanced by every reply.
	Progress *atomic.Int64
}

// Registry measures lookups or registers per second against cfg.Target, or
// a registry server it starts in this process, with the load generator of
// package loadgen. Against a live server, it deregisters what it
// registered when done.
func Registry(ctx context.Context, cfg RegistryConfig) (Result, error) {
	if cfg.Op == "" {
		cfg.Op = OpLookup
	}
	if cfg.Op != OpLookup && cfg.Op != OpRegister {
		return Result{}, fmt.Errorf("hydrabench: unknown registry op %q (want lookup or register)", cfg.Op)
	}
	if cfg.Count < 0 || cfg.Duration < 0 || cfg.Warmup < 0 || cfg.Concurrency < 0 || cfg.Pipeline < 0 {
		return Result{}, errors.New("hydrabench: negative bench parameter")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultRegistryClients
	}
	if cfg.Pipeline == 0 {
		cfg.Pipeline = DefaultRegistryPipeline
	}
	if cfg.Concurrency > MaxConcurrency {
		return Result{}, fmt.Errorf("hydrabench: concurrency %d out of range 1-%d", cfg.Concurrency, MaxConcurrency)
	}
	if cfg.Pipeline > MaxPipeline {
		return Result{}, fmt.Errorf("hydrabench: pipeline %d out of range 1-%d (the server drops replies beyond its per-client send queue of 1000)", cfg.Pipeline, MaxPipeline)
	}
	if cfg.Count == 0 && cfg.Duration == 0 {
		cfg.Duration = DefaultDuration
	}
	if cfg.Count > 1<<40 {
		return Result{}, fmt.Errorf("hydrabench: count %d too large", cfg.Count)
	}
	res := Result{Bench: KindRegistry, Case: cfg.Op, Target: cfg.Target, Concurrency: cfg.Concurrency, Pipeline: cfg.Pipeline, Warmup: cfg.Warmup}
	target := cfg.Target
	if target == "" {
		srv, err := registry.NewServer(registry.Config{})
		if err != nil {
			return res, err
		}
		if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
			srv.Close()
			return res, err
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(context.Background()) }()
		defer func() { srv.Close(); <-done }()
		target, res.Target = srv.Endpoint(), InProcess
	}
	rep, err := loadgen.Bench(ctx, loadgen.BenchConfig{
		Endpoint: target, Op: cfg.Op, Clients: cfg.Concurrency, Pipeline: cfg.Pipeline,
		Requests: int(cfg.Count), Duration: cfg.Duration, Rate: cfg.Rate, Warmup: cfg.Warmup, Completed: cfg.Progress, Cleanup: cfg.Target != "",
	})
	if err != nil {
		return res, fmt.Errorf("hydrabench: registry %s at %s: %w", cfg.Op, target, err)
	}
	res.Count, res.Errors, res.Elapsed, res.MsgsPerSec = rep.Requests, rep.Errors, rep.Elapsed, rep.PerSec
	if rep.Requests > 0 {
		res.Latency = &Latency{Samples: rep.Requests, P50: rep.P50, P90: rep.P90, P99: rep.P99, Max: rep.Max}
	}
	if rep.Errors > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d error replies (a server limit? see its log)", rep.Errors))
	}
	return res, nil
}
