package selfbench

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/registry"
)

// The registry operations measured.
const (
	OpLookup   = "lookup"
	OpRegister = "register"
)

// Ops lists the registry operations in the order `bench registry` runs
// them.
var Ops = []string{OpLookup, OpRegister}

// Defaults of RegistryConfig.
const (
	DefaultRegistryOp       = OpLookup
	DefaultRegistryClients  = 16
	DefaultRegistryPipeline = 4
)

// RegistryConfig says what Registry measures. The zero value measures
// lookups for 2s against a registry server in this process.
type RegistryConfig struct {
	// Target is a hydra-server's endpoint, tcp://HOST:PORT. Default empty:
	// start a registry server in this process on 127.0.0.1.
	Target string
	// Op is OpLookup (1000 names of 3 instances each are registered
	// first, and looked up in turn) or OpRegister (each client registers,
	// then renews, 1000 entries of its own). Default OpLookup.
	Op string
	// Count is the number of requests in all. Default 0: run for
	// Duration.
	Count int64
	// Duration is how long the load runs when Count is 0. Default 2s.
	Duration time.Duration
	// Concurrency is the number of clients (connections), at most
	// MaxConcurrency. Default 16.
	Concurrency int
	// Pipeline is the number of requests each client keeps in flight, at
	// most MaxPipeline (the server drops replies beyond its per-client
	// send queue of 1000). Default 4.
	Pipeline int
	// Rate, when set, paces the requests at Rate per second in all (open
	// loop), for latency under a given load rather than at saturation.
	// Default 0: as fast as replies allow.
	Rate float64
	// Warmup, when set, loads the server for this long before the
	// measurement (Count or Duration) starts; those requests are answered
	// but neither counted nor timed. Default 0.
	Warmup time.Duration
	// Progress, when set, is advanced by every reply. Default nil.
	Progress *atomic.Int64
}

// Validate reports the first field out of range.
func (c RegistryConfig) Validate() error {
	bad := func(field, format string, args ...any) error {
		return configError("RegistryConfig", field, format, args...)
	}
	switch {
	case c.Op != "" && c.Op != OpLookup && c.Op != OpRegister:
		return bad("Op", "unknown registry op %q (want lookup or register)", c.Op)
	case c.Count < 0 || c.Count > maxCount:
		return bad("Count", "%d out of range 0-%d", c.Count, int64(maxCount))
	case c.Duration < 0:
		return bad("Duration", "negative")
	case c.Concurrency < 0 || c.Concurrency > MaxConcurrency:
		return bad("Concurrency", "%d out of range 1-%d", c.Concurrency, MaxConcurrency)
	case c.Pipeline < 0 || c.Pipeline > MaxPipeline:
		return bad("Pipeline", "%d out of range 1-%d (the server drops replies beyond its per-client send queue of 1000)", c.Pipeline, MaxPipeline)
	case !(c.Rate >= 0) || math.IsInf(c.Rate, 0):
		return bad("Rate", "%v: want a positive rate", c.Rate)
	case c.Warmup < 0:
		return bad("Warmup", "negative")
	}
	return nil
}

func (c RegistryConfig) withDefaults() RegistryConfig {
	if c.Op == "" {
		c.Op = DefaultRegistryOp
	}
	if c.Count == 0 && c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultRegistryClients
	}
	if c.Pipeline == 0 {
		c.Pipeline = DefaultRegistryPipeline
	}
	if c.Progress == nil {
		c.Progress = new(atomic.Int64)
	}
	return c
}

// Registry measures lookups or registers per second against cfg.Target, or
// a registry server it starts in this process, with pipelining clients
// (the load generator of pipeline.go). Against a live server, it
// deregisters what it registered when done.
func Registry(ctx context.Context, cfg RegistryConfig) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	res := Result{Bench: KindRegistry, Case: cfg.Op, Target: cfg.Target, Concurrency: cfg.Concurrency, Pipeline: cfg.Pipeline, Warmup: cfg.Warmup}
	target := cfg.Target
	if target == "" {
		ep, stop, err := startRegistryServer()
		if err != nil {
			return res, err
		}
		defer stop()
		target, res.Target = ep, InProcess
	}
	rep, err := runPipeline(ctx, pipelineConfig{
		Endpoint: target, Op: cfg.Op, Clients: cfg.Concurrency, Pipeline: cfg.Pipeline,
		Requests: cfg.Count, Duration: cfg.Duration, Names: lookupNames, Instances: lookupInstances,
		Rate: cfg.Rate, Warmup: cfg.Warmup, Completed: cfg.Progress, Cleanup: cfg.Target != "",
	})
	if err != nil {
		return res, fmt.Errorf("selfbench: registry %s at %s: %w", cfg.Op, target, err)
	}
	res.Count, res.Errors, res.Elapsed = rep.Latency.Count(), rep.Errors, rep.Elapsed
	res.MsgsPerSec = float64(res.Count) / rep.Elapsed.Seconds()
	res.Latency = rep.Latency.Latency()
	if rep.Errors > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d error replies (a server limit? see its log)", rep.Errors))
	}
	return res, nil
}

// startRegistryServer starts a registry server on 127.0.0.1 and returns
// its endpoint and the func that stops it. Its per-client quota is its
// whole capacity: the bench registers its data from one address.
func startRegistryServer() (endpoint string, stop func(), err error) {
	srv, err := registry.NewServer(registry.Config{MaxEntriesPerClient: registry.DefaultMaxEntries})
	if err != nil {
		return "", nil, err
	}
	if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
		srv.Close()
		return "", nil, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	return srv.Endpoint(), func() { srv.Close(); <-done }, nil
}
