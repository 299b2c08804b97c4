package abuse

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/registry"
)

// probeRate is how many lookups a second the well-behaved client makes.
const probeRate = 100

// probeTimeout is how long one lookup of the well-behaved client waits.
const probeTimeout = 3 * time.Second

// probe is the well-behaved client: from 127.0.0.1 it registers its own
// entry, heartbeats it (registry.Client does, every third of its TTL) and
// looks it up probeRate times a second until stopped.
type probe struct {
	c      *registry.Client
	name   string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	start   time.Time
	end     time.Time
	lat     []time.Duration // of lookups answered with the probe's own entry
	failed  int             // errors and timeouts
	missing int             // answered without the probe's own entry
	// worstUnserved is the longest wait of a lookup that did not count as
	// served (failed, timed out or without the entry).
	worstUnserved time.Duration
}

func startProbe(t testing.TB, s *server) *probe {
	t.Helper()
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: s.endpoint(), Timeout: probeTimeout})
	if err != nil {
		t.Fatal(err)
	}
	p := &probe{c: c, name: "probe", done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := c.Register(ctx, registry.Service{Name: p.name, Host: "127.0.0.1", Port: 4242, TTL: 3 * time.Second})
	if err != nil {
		c.Close()
		t.Fatalf("probe: register: %v", err)
	}
	ctx, p.cancel = context.WithCancel(context.Background())
	p.start = time.Now()
	go p.run(ctx, reg.Instance())
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *probe) run(ctx context.Context, instance string) {
	defer close(p.done)
	tick := time.NewTicker(time.Second / probeRate)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t0 := time.Now()
		lctx, cancel := context.WithTimeout(ctx, probeTimeout)
		es, err := p.c.Lookup(lctx, p.name)
		cancel()
		d := time.Since(t0)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		switch {
		case err != nil:
			p.failed++
			p.noteMax(d)
		case !slices.ContainsFunc(es, func(e registry.Entry) bool { return e.Instance == instance }):
			p.missing++
			p.noteMax(d)
		default:
			p.lat = append(p.lat, d)
		}
		p.mu.Unlock()
	}
}

func (p *probe) noteMax(d time.Duration) {
	if d > p.worstUnserved {
		p.worstUnserved = d
	}
}

// stop ends the lookups (once) and closes the client.
func (p *probe) stop() {
	p.cancel()
	<-p.done
	p.mu.Lock()
	if p.end.IsZero() {
		p.end = time.Now()
	}
	p.mu.Unlock()
	p.c.Close()
}

// figures is what the well-behaved client saw.
type figures struct {
	dur                     time.Duration
	expected, served        int
	failed, missing         int
	perSec                  float64
	p50, p99, maxLat, worst time.Duration
}

func (p *probe) figures() figures {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.end.IsZero() {
		p.end = time.Now()
	}
	f := figures{dur: p.end.Sub(p.start), served: len(p.lat), failed: p.failed, missing: p.missing}
	f.expected = int(f.dur.Seconds() * probeRate)
	f.perSec = float64(f.served) / f.dur.Seconds()
	lat := slices.Clone(p.lat)
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		f.p50, f.p99, f.maxLat = lat[n/2], lat[min(n-1, n*99/100)], lat[n-1]
	}
	f.worst = max(f.maxLat, p.worstUnserved)
	return f
}

func (f figures) String() string {
	return fmt.Sprintf("served %.1f/s (%d of %d expected, %d failed, %d without its entry), p50 %s, p99 %s, max %s",
		f.perSec, f.served, f.expected, f.failed, f.missing, f.p50.Round(10*time.Microsecond), f.p99.Round(10*time.Microsecond), f.worst.Round(time.Millisecond))
}
