package selfbench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/internal/netaddr"
	"github.com/hydra-net/hydra/registry"
)

// Defaults of LoadConfig: the registry issue's figures.
const (
	DefaultLoadServices   = 10000
	DefaultLoadRegistrars = 50
	DefaultLoadTTL        = 5 * time.Second
	DefaultLoadLookupers  = 200
	DefaultLoadDuration   = 10 * time.Second
	DefaultLoadChurners   = 10
	DefaultLoadChurnTTL   = time.Second
	DefaultLoadChurnPause = 5 * time.Millisecond
	DefaultLoadTimeout    = 10 * time.Second
)

// LoadConfig says how hard LoadTest loads the server. The zero value is
// the registry issue's load against a server on netaddr.DefaultEndpoint.
type LoadConfig struct {
	// Endpoint is the server's. Default netaddr.DefaultEndpoint.
	Endpoint string

	// Services is the number of stable services registered and kept
	// alive. Default 10000.
	Services int
	// Names is the number of names they are spread over. Default
	// Services/10.
	Names int
	// Registrars is the number of clients holding them (each heartbeats
	// its share). Default 50.
	Registrars int
	// TTL is the stable services' TTL. Default 5s.
	TTL time.Duration

	// Lookupers is the number of clients looking up at once, one request
	// at a time each. Default 200.
	Lookupers int
	// Duration is how long the lookups, churn and heartbeats run. Default
	// 10s.
	Duration time.Duration

	// Churners is the number of clients registering short-lived entries
	// they let expire. Default 10.
	Churners int
	// ChurnTTL is their TTL, at least the server's MinTTL. Default 1s.
	ChurnTTL time.Duration
	// ChurnPause is each churner's pause between registrations. Default
	// 5ms.
	ChurnPause time.Duration

	// Timeout bounds each request. Default 10s.
	Timeout time.Duration
	// Logf receives progress. Default nil: discarded.
	Logf func(format string, args ...any)
}

// Validate reports the first negative field.
func (c LoadConfig) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Services", int64(c.Services)}, {"Names", int64(c.Names)}, {"Registrars", int64(c.Registrars)},
		{"TTL", int64(c.TTL)}, {"Lookupers", int64(c.Lookupers)}, {"Duration", int64(c.Duration)},
		{"Churners", int64(c.Churners)}, {"ChurnTTL", int64(c.ChurnTTL)}, {"ChurnPause", int64(c.ChurnPause)},
		{"Timeout", int64(c.Timeout)},
	} {
		if f.v < 0 {
			return configError("LoadConfig", f.name, "negative")
		}
	}
	return nil
}

func (c LoadConfig) withDefaults() LoadConfig {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defD := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Endpoint == "" {
		c.Endpoint = netaddr.DefaultEndpoint
	}
	def(&c.Services, DefaultLoadServices)
	def(&c.Names, max(1, c.Services/10))
	def(&c.Registrars, DefaultLoadRegistrars)
	defD(&c.TTL, DefaultLoadTTL)
	def(&c.Lookupers, DefaultLoadLookupers)
	defD(&c.Duration, DefaultLoadDuration)
	def(&c.Churners, DefaultLoadChurners)
	defD(&c.ChurnTTL, DefaultLoadChurnTTL)
	defD(&c.ChurnPause, DefaultLoadChurnPause)
	defD(&c.Timeout, DefaultLoadTimeout)
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// LoadReport is what LoadTest found. A run passed when Errors, Mismatches,
// Lost and Lingering are all zero.
type LoadReport struct {
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
func (r *LoadReport) Passed() bool {
	return r.Errors == 0 && r.Mismatches == 0 && r.Lost == 0 && r.Lingering == 0
}

func (r *LoadReport) String() string {
	mb := func(b uint64) float64 { return float64(b) / (1 << 20) }
	return fmt.Sprintf("registered %d services in %v (%.0f/s); %d lookups by the lookup clients in the busy phase (%.0f/s), p50 %v p99 %v max %v; "+
		"%d short-lived entries registered, %d seen expiring; errors %d, mismatches %d, lost %d, lingering %d; "+
		"server heap %.1f MiB (%.1f MiB before), sys %.1f MiB, %d goroutines, %d entries",
		r.Services, r.RegisterTime.Round(time.Millisecond), r.RegistersPerSec, r.Lookups, r.LookupsPerSec,
		r.P50, r.P99, r.Max, r.ChurnRegistered, r.ChurnExpired, r.Errors, r.Mismatches, r.Lost, r.Lingering,
		mb(r.Server.Memory.HeapAlloc), mb(r.ServerBefore.Memory.HeapAlloc), mb(r.Server.Memory.Sys), r.Server.Memory.Goroutines, r.Server.Entries)
}

// churnNames is how many names the churners' entries spread over; each
// has a watcher counting its expiries.
const churnNames = 10

// LoadTest registers cfg.Services services from cfg.Registrars clients,
// then for cfg.Duration has cfg.Lookupers clients look up stable names and
// check every reply against what was registered, while cfg.Churners
// clients register entries with a short TTL and let them expire, and the
// registrars heartbeat. Last, it checks that every stable service is still
// there and every short-lived one went. It returns an error only when it
// could not run; failures of the server are counted in the LoadReport.
func LoadTest(ctx context.Context, cfg LoadConfig) (*LoadReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lt := &loadTest{cfg: cfg.withDefaults()}
	defer lt.closeClients()
	rep := &LoadReport{Services: lt.cfg.Services}
	ctl, err := lt.newClient()
	if err != nil {
		return nil, err
	}
	if rep.ServerBefore, err = ctl.Info(ctx); err != nil {
		return nil, fmt.Errorf("selfbench: INFO: %w", err)
	}
	if err := lt.registerStable(ctx, rep); err != nil {
		return nil, err
	}
	watch, err := lt.watchChurn(ctx)
	if err != nil {
		return nil, err
	}
	defer watch.stop()
	if err := lt.busyPhase(ctx, rep); err != nil {
		return nil, err
	}
	if rep.Server, err = ctl.Info(ctx); err != nil {
		return nil, fmt.Errorf("selfbench: INFO: %w", err)
	}
	if rep.Lost, err = lt.countLost(ctx, ctl); err != nil {
		return nil, err
	}
	if rep.Lingering, err = lt.waitChurnGone(ctx, ctl); err != nil {
		return nil, err
	}
	rep.ChurnExpired = watch.stop()
	rep.Errors, rep.Mismatches, rep.FirstError = lt.fail.errors.Load(), lt.fail.mismatches.Load(), lt.fail.first
	return rep, nil
}

// loadTest is one LoadTest under way.
type loadTest struct {
	cfg     LoadConfig
	fail    failures
	clients []*registry.Client // every client made, closed at the end

	wantMu sync.Mutex
	want   []map[string]bool // by name index: the instances registered
}

// failures counts what went wrong and keeps the first for the log.
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

func (lt *loadTest) newClient() (*registry.Client, error) {
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: lt.cfg.Endpoint, Timeout: lt.cfg.Timeout})
	if err != nil {
		return nil, err
	}
	lt.clients = append(lt.clients, c)
	return c, nil
}

// newClients makes n clients.
func (lt *loadTest) newClients(n int) ([]*registry.Client, error) {
	cs := make([]*registry.Client, n)
	for i := range cs {
		c, err := lt.newClient()
		if err != nil {
			return nil, err
		}
		cs[i] = c
	}
	return cs, nil
}

func (lt *loadTest) closeClients() {
	for _, c := range lt.clients {
		c.Close()
	}
}

// stableName is the name of stable service i.
func (lt *loadTest) stableName(i int) string { return fmt.Sprintf("svc-%05d", i%lt.cfg.Names) }

// registerStable registers the stable services, each registrar its share,
// and remembers their instances in lt.want.
func (lt *loadTest) registerStable(ctx context.Context, rep *LoadReport) error {
	cfg := lt.cfg
	lt.want = make([]map[string]bool, cfg.Names)
	for i := range lt.want {
		lt.want[i] = map[string]bool{}
	}
	registrars, err := lt.newClients(cfg.Registrars)
	if err != nil {
		return err
	}
	cfg.Logf("registering %d services from %d clients", cfg.Services, cfg.Registrars)
	start := time.Now()
	var wg sync.WaitGroup
	for r, c := range registrars {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; i < cfg.Services; i += cfg.Registrars {
				lt.registerOne(ctx, c, i)
			}
		}()
	}
	wg.Wait()
	rep.RegisterTime = time.Since(start)
	rep.RegistersPerSec = float64(cfg.Services) / rep.RegisterTime.Seconds()
	cfg.Logf("registered in %v", rep.RegisterTime)
	return ctx.Err()
}

// registerOne registers stable service i with c.
func (lt *loadTest) registerOne(ctx context.Context, c *registry.Client, i int) {
	reg, err := c.Register(ctx, registry.Service{Name: lt.stableName(i), Host: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
		Port: 1 + i%65535, Proto: "tcp", TTL: lt.cfg.TTL, Meta: map[string]string{"i": fmt.Sprint(i)}})
	if err != nil {
		lt.fail.note(&lt.fail.errors, "register %d: %v", i, err)
		return
	}
	lt.wantMu.Lock()
	lt.want[i%lt.cfg.Names][reg.Instance()] = true
	lt.wantMu.Unlock()
}

// churnWatch counts the churners' entries expiring, one watch per churn
// name.
type churnWatch struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	expired atomic.Int64
	once    sync.Once
}

func (lt *loadTest) watchChurn(ctx context.Context) (*churnWatch, error) {
	watcher, err := lt.newClient()
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &churnWatch{cancel: cancel}
	for n := range churnNames {
		events, err := watcher.Watch(wctx, fmt.Sprintf("churn-%d", n))
		if err != nil {
			w.stop()
			return nil, err
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ev := range events {
				if ev.Type == registry.EventExpire {
					w.expired.Add(1)
				}
			}
		}()
	}
	return w, nil
}

// stop ends the watches and returns the expiries seen.
func (w *churnWatch) stop() int64 {
	w.once.Do(func() {
		w.cancel()
		w.wg.Wait()
	})
	return w.expired.Load()
}

// busyPhase runs the lookups and the churn for cfg.Duration (the
// registrars' clients heartbeat meanwhile) and fills in their figures.
func (lt *loadTest) busyPhase(ctx context.Context, rep *LoadReport) error {
	cfg := lt.cfg
	lookupers, err := lt.newClients(cfg.Lookupers)
	if err != nil {
		return err
	}
	churners, err := lt.newClients(cfg.Churners)
	if err != nil {
		return err
	}
	busy, stopBusy := context.WithTimeout(ctx, cfg.Duration)
	defer stopBusy()
	hists := make([]*Histogram, len(lookupers))
	var lookups, churned atomic.Int64
	cfg.Logf("%d lookup clients and %d churn clients for %v", cfg.Lookupers, cfg.Churners, cfg.Duration)
	busyStart := time.Now()
	var wg sync.WaitGroup
	for l, c := range lookupers {
		hists[l] = NewHistogram()
		wg.Add(1)
		go func() {
			defer wg.Done()
			lt.lookUp(busy, c, rand.New(rand.NewPCG(uint64(l), 42)), hists[l], &lookups)
		}()
	}
	for ch, c := range churners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lt.churn(busy, c, ch, &churned)
		}()
	}
	wg.Wait()
	busyTime := time.Since(busyStart)
	rep.Lookups = lookups.Load()
	rep.LookupsPerSec = float64(rep.Lookups) / busyTime.Seconds()
	all := NewHistogram()
	for _, h := range hists {
		all.Merge(h)
	}
	if all.Count() > 0 {
		rep.P50, rep.P99, rep.Max = all.Quantile(0.50), all.Quantile(0.99), all.Max()
	}
	rep.ChurnRegistered = churned.Load()
	return nil
}

// lookUp looks up random stable names with c until busy ends, checking
// each reply against what was registered.
func (lt *loadTest) lookUp(busy context.Context, c *registry.Client, rng *rand.Rand, hist *Histogram, lookups *atomic.Int64) {
	for busy.Err() == nil {
		n := rng.IntN(lt.cfg.Names)
		t0 := time.Now()
		es, err := c.Lookup(busy, lt.stableName(n))
		d := time.Since(t0)
		if err != nil {
			if busy.Err() == nil {
				lt.fail.note(&lt.fail.errors, "lookup %s: %v", lt.stableName(n), err)
			}
			continue
		}
		hist.Record(d)
		lookups.Add(1)
		lt.wantMu.Lock()
		w := lt.want[n]
		ok := len(es) == len(w)
		for _, e := range es {
			ok = ok && w[e.Instance]
		}
		lt.wantMu.Unlock()
		if !ok {
			lt.fail.note(&lt.fail.mismatches, "lookup %s: %d instances, want %d", lt.stableName(n), len(es), len(w))
		}
	}
}

// churn registers short-lived entries with c, churner ch, until busy ends,
// and lets them expire.
func (lt *loadTest) churn(busy context.Context, c *registry.Client, ch int, churned *atomic.Int64) {
	for i := 0; busy.Err() == nil; i++ {
		// A raw REGISTER: the client does not heartbeat it.
		_, err := c.Request(busy, registry.VerbRegister, map[string]any{
			"token": c.Token(), "name": fmt.Sprintf("churn-%d", (ch+i)%churnNames),
			"host": "10.200.0.1", "port": 1 + (ch*100000+i)%65535, "ttl": lt.cfg.ChurnTTL.Seconds(),
		})
		if err != nil {
			if busy.Err() == nil && !errors.Is(err, registry.ErrLimit) {
				lt.fail.note(&lt.fail.errors, "churn register: %v", err)
			}
		} else {
			churned.Add(1)
		}
		select {
		case <-busy.Done():
		case <-time.After(lt.cfg.ChurnPause):
		}
	}
}

// countLost counts the stable services missing from the server's entries,
// and those that never registered.
func (lt *loadTest) countLost(ctx context.Context, ctl *registry.Client) (int, error) {
	es, err := ctl.ListEntries(ctx)
	if err != nil {
		return 0, fmt.Errorf("selfbench: LIST: %w", err)
	}
	present := map[string]bool{}
	for _, e := range es {
		present[e.Instance] = true
	}
	lost, registered := 0, 0
	for _, w := range lt.want {
		registered += len(w)
		for inst := range w {
			if !present[inst] {
				lost++
			}
		}
	}
	return lost + lt.cfg.Services - registered, nil
}

// waitChurnGone waits, up to ChurnTTL and 3s more, until no short-lived
// entry is left, and returns how many are.
func (lt *loadTest) waitChurnGone(ctx context.Context, ctl *registry.Client) (int, error) {
	deadline := time.Now().Add(lt.cfg.ChurnTTL + 3*time.Second)
	for {
		names, err := ctl.List(ctx)
		if err != nil {
			return 0, fmt.Errorf("selfbench: LIST: %w", err)
		}
		lingering := 0
		for _, n := range names {
			if strings.HasPrefix(n.Name, "churn-") {
				lingering += n.Count
			}
		}
		if lingering == 0 || time.Now().After(deadline) {
			return lingering, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}
