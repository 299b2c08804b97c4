// Package loadgen loads a registry server and measures it: Run is the load
// test (many services registered, many clients looking up while others
// register and expire, every reply checked), Bench measures lookups or
// registers per second and their latency with pipelining clients.
//
// Both talk to a server at an endpoint, so they measure an in-process
// server and a hydra-server process alike.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/registry"
)

// Config says how hard Run loads the server. Zero fields take the defaults
// given, which are the registry issue's figures.
type Config struct {
	Endpoint string // the server; default registry.DefaultEndpoint

	Services   int           // stable services registered and kept alive; default 10000
	Names      int           // names they are spread over; default Services/10
	Registrars int           // clients holding them (each heartbeats its share); default 50
	TTL        time.Duration // the stable services' TTL; default 5s

	Lookupers int           // clients looking up at once, one request at a time each; default 200
	Duration  time.Duration // how long the lookups, churn and heartbeats run; default 10s

	Churners int           // clients registering short-lived entries they let expire; default 10
	ChurnTTL time.Duration // their TTL (at least the server's MinTTL); default 1s
	// ChurnPause is each churner's pause between registrations; default 5ms.
	ChurnPause time.Duration

	Timeout time.Duration // per request; default 10s
	// Logf receives progress; nil discards it.
	Logf func(format string, args ...any)
}

func (c Config) withDefaults() Config {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defD := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	if c.Endpoint == "" {
		c.Endpoint = registry.DefaultEndpoint
	}
	def(&c.Services, 10000)
	def(&c.Names, max(1, c.Services/10))
	def(&c.Registrars, 50)
	defD(&c.TTL, 5*time.Second)
	def(&c.Lookupers, 200)
	defD(&c.Duration, 10*time.Second)
	def(&c.Churners, 10)
	defD(&c.ChurnTTL, time.Second)
	defD(&c.ChurnPause, 5*time.Millisecond)
	defD(&c.Timeout, 10*time.Second)
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// Report is what Run found. A run passed when Errors, Mismatches, Lost and
// Lingering are all zero.
type Report struct {
	Services        int           // stable services registered
	RegisterTime    time.Duration // to register them all
	RegistersPerSec float64

	Lookups       int64         // lookups done during Duration
	LookupsPerSec float64       // by the Lookupers together
	P50, P99, Max time.Duration // lookup latency

	ChurnRegistered int64 // short-lived entries registered
	ChurnExpired    int64 // of those, seen expiring by a watcher

	Errors     int64  // error replies or timeouts to valid requests
	Mismatches int64  // lookups of a stable name that missed or added an instance
	Lost       int    // stable services missing at the end
	Lingering  int    // short-lived entries still there well after their TTL
	FirstError string // the first error or mismatch, for the log

	Server       registry.Info // INFO at the end of the busy phase
	ServerBefore registry.Info // INFO before anything was registered
}

// Passed reports whether nothing was lost and nothing failed.
func (r *Report) Passed() bool {
	return r.Errors == 0 && r.Mismatches == 0 && r.Lost == 0 && r.Lingering == 0
}

func (r *Report) String() string {
	mb := func(b uint64) float64 { return float64(b) / (1 << 20) }
	return fmt.Sprintf("registered %d services in %v (%.0f/s); %d lookups by the lookup clients in the busy phase (%.0f/s), p50 %v p99 %v max %v; "+
		"%d short-lived entries registered, %d seen expiring; errors %d, mismatches %d, lost %d, lingering %d; "+
		"server heap %.1f MiB (%.1f MiB before), sys %.1f MiB, %d goroutines, %d entries",
		r.Services, r.RegisterTime.Round(time.Millisecond), r.RegistersPerSec, r.Lookups, r.LookupsPerSec,
		r.P50, r.P99, r.Max, r.ChurnRegistered, r.ChurnExpired, r.Errors, r.Mismatches, r.Lost, r.Lingering,
		mb(r.Server.Memory.HeapAlloc), mb(r.ServerBefore.Memory.HeapAlloc), mb(r.Server.Memory.Sys), r.Server.Memory.Goroutines, r.Server.Entries)
}

type failures struct {
	errors, mismatches atomic.Int64
	mu                 sync.Mutex
	first              string
}

func (f *failures) note(counter *atomic.Int64, format string, args ...any) {
	counter.Add(1)
	f.mu.Lock()
	if f.first == "" {
		f.first = fmt.Sprintf(format, args...)
	}
	f.mu.Unlock()
}

// Run registers cfg.Services services from cfg.Registrars clients, then for
// cfg.Duration has cfg.Lookupers clients look up stable names and check
// every reply against what was registered, while cfg.Churners clients
// register entries with a short TTL and let them expire, and the
// registrars heartbeat. It returns an error only when it could not run;
// failures of the server are counted in the Report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	rep := &Report{Services: cfg.Services}
	var fail failures
	newClient := func() (*registry.Client, error) {
		return registry.NewClient(registry.ClientConfig{Endpoint: cfg.Endpoint, Timeout: cfg.Timeout})
	}
	ctl, err := newClient()
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	if rep.ServerBefore, err = ctl.Info(ctx); err != nil {
		return nil, fmt.Errorf("loadgen: INFO: %w", err)
	}

	// Phase 1: register the stable services.
	name := func(i int) string { return fmt.Sprintf("svc-%05d", i%cfg.Names) }
	want := make([]map[string]bool, cfg.Names) // name index → instances
	for i := range want {
		want[i] = map[string]bool{}
	}
	var wantMu sync.Mutex
	registrars := make([]*registry.Client, cfg.Registrars)
	for i := range registrars {
		if registrars[i], err = newClient(); err != nil {
			return nil, err
		}
		defer registrars[i].Close()
	}
	cfg.Logf("registering %d services from %d clients", cfg.Services, cfg.Registrars)
	start := time.Now()
	var wg sync.WaitGroup
	for r, c := range registrars {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; i < cfg.Services; i += cfg.Registrars {
				reg, err := c.Register(ctx, registry.Service{Name: name(i), Host: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
					Port: 1 + i%65535, Proto: "tcp", TTL: cfg.TTL, Meta: map[string]string{"i": fmt.Sprint(i)}})
				if err != nil {
					fail.note(&fail.errors, "register %d: %v", i, err)
					continue
				}
				wantMu.Lock()
				want[i%cfg.Names][reg.Instance()] = true
				wantMu.Unlock()
			}
		}()
	}
	wg.Wait()
	rep.RegisterTime = time.Since(start)
	rep.RegistersPerSec = float64(cfg.Services) / rep.RegisterTime.Seconds()
	cfg.Logf("registered in %v", rep.RegisterTime)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// Phase 2: lookups, churn, heartbeats.
	busy, stopBusy := context.WithTimeout(ctx, cfg.Duration)
	defer stopBusy()
	watcher, err := newClient()
	if err != nil {
		return nil, err
	}
	defer watcher.Close()
	const churnNames = 10
	var churnExpired atomic.Int64
	churnWatch, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	var watchWG sync.WaitGroup
	for n := range churnNames {
		events, err := watcher.Watch(churnWatch, fmt.Sprintf("churn-%d", n))
		if err != nil {
			return nil, err
		}
		watchWG.Add(1)
		go func() {
			defer watchWG.Done()
			for ev := range events {
				if ev.Type == registry.EventExpire {
					churnExpired.Add(1)
				}
			}
		}()
	}

	lat := make([][]time.Duration, cfg.Lookupers)
	var lookups atomic.Int64
	cfg.Logf("%d lookup clients and %d churn clients for %v", cfg.Lookupers, cfg.Churners, cfg.Duration)
	busyStart := time.Now()
	for l := range cfg.Lookupers {
		c, err := newClient()
		if err != nil {
			return nil, err
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(l), 42))
			for busy.Err() == nil {
				n := rng.IntN(cfg.Names)
				t0 := time.Now()
				es, err := c.Lookup(busy, name(n))
				d := time.Since(t0)
				if err != nil {
					if busy.Err() == nil {
						fail.note(&fail.errors, "lookup %s: %v", name(n), err)
					}
					continue
				}
				lat[l] = append(lat[l], d)
				lookups.Add(1)
				wantMu.Lock()
				w := want[n]
				ok := len(es) == len(w)
				for _, e := range es {
					ok = ok && w[e.Instance]
				}
				wantMu.Unlock()
				if !ok {
					fail.note(&fail.mismatches, "lookup %s: %d instances, want %d", name(n), len(es), len(w))
				}
			}
		}()
	}
	var churned atomic.Int64
	for ch := range cfg.Churners {
		c, err := newClient()
		if err != nil {
			return nil, err
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; busy.Err() == nil; i++ {
				// A raw REGISTER: the client does not heartbeat it.
				_, err := c.Request(busy, registry.VerbRegister, map[string]any{
					"token": c.Token(), "name": fmt.Sprintf("churn-%d", (ch+i)%churnNames),
					"host": "10.200.0.1", "port": 1 + (ch*100000+i)%65535, "ttl": cfg.ChurnTTL.Seconds(),
				})
				if err != nil {
					if busy.Err() == nil && !errors.Is(err, registry.ErrLimit) {
						fail.note(&fail.errors, "churn register: %v", err)
					}
				} else {
					churned.Add(1)
				}
				select {
				case <-busy.Done():
				case <-time.After(cfg.ChurnPause):
				}
			}
		}()
	}
	wg.Wait()
	busyTime := time.Since(busyStart)
	if rep.Server, err = ctl.Info(ctx); err != nil {
		return nil, fmt.Errorf("loadgen: INFO: %w", err)
	}
	rep.Lookups = lookups.Load()
	rep.LookupsPerSec = float64(rep.Lookups) / busyTime.Seconds()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) > 0 {
		rep.P50, rep.P99, rep.Max = all[len(all)/2], all[len(all)*99/100], all[len(all)-1]
	}
	rep.ChurnRegistered = churned.Load()

	// Phase 3: every stable service is there; every short-lived one goes.
	es, err := ctl.ListEntries(ctx)
	if err != nil {
		return nil, fmt.Errorf("loadgen: LIST: %w", err)
	}
	present := map[string]bool{}
	for _, e := range es {
		present[e.Instance] = true
	}
	for _, w := range want {
		for inst := range w {
			if !present[inst] {
				rep.Lost++
			}
		}
	}
	if n := registeredCount(want); n != cfg.Services {
		rep.Lost += cfg.Services - n
	}
	deadline := time.Now().Add(cfg.ChurnTTL + 3*time.Second)
	for {
		names, err := ctl.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("loadgen: LIST: %w", err)
		}
		rep.Lingering = 0
		for _, n := range names {
			if len(n.Name) > 6 && n.Name[:6] == "churn-" {
				rep.Lingering += n.Count
			}
		}
		if rep.Lingering == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancelWatch()
	watchWG.Wait()
	rep.ChurnExpired = churnExpired.Load()
	rep.Errors, rep.Mismatches, rep.FirstError = fail.errors.Load(), fail.mismatches.Load(), fail.first
	return rep, nil
}

func registeredCount(want []map[string]bool) int {
	n := 0
	for _, w := range want {
		n += len(w)
	}
	return n
}
