package abuse

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
)

// Soak population.
const (
	soakLive     = 150 // registry.Clients that stay: register, heartbeat, look up
	soakWatchers = 30  // of them, those that also watch a name
	soakChurners = 50  // raw clients that register, heartbeat a while, then stop
	soakLiveTTL  = 5 * time.Second
	soakChurnTTL = 2 * time.Second
)

// soakDuration is HYDRA_SOAK (a Go duration), default 20s.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("HYDRA_SOAK")
	if v == "" {
		return 20 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("HYDRA_SOAK=%q: want a positive Go duration (10m)", v)
	}
	return d
}

// TestSoak runs a few hundred clients for HYDRA_SOAK against one server:
// clients that register, heartbeat, look themselves up and watch; clients
// that register and then stop heartbeating (their entries expire), over and
// over; and hostile ones among them (LIST and WATCH callers that never
// read, idle and silent sockets). It samples the server's RSS and heap and
// checks at the end that every live client still finds its own entry, that
// every expired entry is gone, and that the RSS peak of the run's second
// half is at most soakGrowth above its first half's.
//
//	HYDRA_SOAK=10m go test -run TestSoak -timeout 15m -v ./abuse/
func TestSoak(t *testing.T) {
	needServer(t)
	base := runtime.NumGoroutine()
	t.Cleanup(func() { testutil.CheckGoroutines(t, base) }) // runs last
	dur := soakDuration(t)
	s := startServer(t)
	registerBig(t, s, "soak-big", 200, 4000) // what makes LIST replies big
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()

	lives := startLive(t, s)
	var g group
	var churned, lostDuring atomic.Int64
	churnCtx, churnStop := context.WithTimeout(ctx, max(dur-2*soakChurnTTL-time.Second, dur/2))
	defer churnStop()
	for i := range soakChurners {
		g.spawn(func() { churn(churnCtx, s.addr, i, &churned) })
	}
	for _, l := range lives {
		g.spawn(func() { l.lookups(ctx, &lostDuring) })
	}
	hostile(ctx, s, &g)

	samples := sampleSoak(ctx, t, s, dur)
	g.wg.Wait()

	// Every live client finds its own entry; no churned entry is left.
	lost := 0
	for _, l := range lives {
		if !l.findsItself(t) {
			lost++
		}
	}
	left := churnedLeft(t, s)
	t.Logf("soak: %s, %d live clients (%d watching), %d registrations churned, %d lookups missing their own entry during the run, %d lost at the end, %d churned entries left",
		dur, len(lives), soakWatchers, churned.Load(), lostDuring.Load(), lost, left)
	if lost > 0 {
		t.Errorf("%d of %d live clients do not find their own entry at the end", lost, len(lives))
	}
	if left != 0 {
		t.Errorf("%d entries of clients that stopped heartbeating are still there", left)
	}
	checkFlat(t, samples)
}

// soakGrowth bounds how far the RSS peak of the soak's second half may
// exceed its first half's: the larger of 32 MiB and half the first half's
// peak. Peaks, not single samples, so that a flat server's GC cycles do
// not read as growth.
func soakGrowth(firstPeak int64) int64 { return max(32<<20, firstPeak/2) }

type sample struct {
	at   time.Duration
	rss  int64
	heap int64
}

// sampleSoak samples the server's RSS and heap every dur/20 (1 s to 10 s)
// until ctx is done.
func sampleSoak(ctx context.Context, t *testing.T, s *server, dur time.Duration) []sample {
	every := min(max(dur/20, time.Second), 10*time.Second)
	t0 := time.Now()
	var out []sample
	for {
		m := s.memory()
		sm := sample{at: time.Since(t0), rss: m.rss, heap: s.heap()}
		out = append(out, sm)
		t.Logf("soak: %6s RSS %6.1f MiB, heap %6.1f MiB", sm.at.Round(time.Second), mib(sm.rss), mib(sm.heap))
		select {
		case <-ctx.Done():
			return out
		case <-time.After(every):
		}
	}
}

func checkFlat(t *testing.T, samples []sample) {
	if len(samples) < 4 {
		t.Logf("soak: %d samples: too few to judge growth", len(samples))
		return
	}
	peak := func(ss []sample) int64 {
		return slices.MaxFunc(ss, func(a, b sample) int { return cmp.Compare(a.rss, b.rss) }).rss
	}
	first, second := peak(samples[:len(samples)/2]), peak(samples[len(samples)/2:])
	t.Logf("soak: RSS peak %.1f MiB over the first half, %.1f MiB over the second, %.1f MiB at the end",
		mib(first), mib(second), mib(samples[len(samples)-1].rss))
	if second-first > soakGrowth(first) {
		t.Errorf("the server's RSS peak grew by %.1f MiB from the first half of the soak to the second (from %.1f MiB), more than %.1f MiB",
			mib(second-first), mib(first), mib(soakGrowth(first)))
	}
}

// live is one well-behaved soak client.
type live struct {
	c        *registry.Client
	name     string
	instance string
}

func startLive(t *testing.T, s *server) []*live {
	var out []*live
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, soakLive)
	for i := range soakLive {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := registry.NewClient(registry.ClientConfig{Endpoint: s.endpoint(), Timeout: probeTimeout})
			if err != nil {
				errs <- err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			l := &live{c: c, name: fmt.Sprintf("soak-live-%d", i)}
			r, err := c.Register(ctx, registry.Service{Name: l.name, Host: "127.0.0.1", Port: 1000 + i, TTL: soakLiveTTL})
			if err != nil {
				c.Close()
				errs <- fmt.Errorf("live %d: register: %w", i, err)
				return
			}
			l.instance = r.Instance()
			if i < soakWatchers {
				// Read every event, until the client closes.
				ch, err := c.Watch(context.Background(), "")
				if err != nil {
					errs <- fmt.Errorf("live %d: watch: %w", i, err)
				} else {
					go func() {
						for range ch {
						}
					}()
				}
			}
			mu.Lock()
			out = append(out, l)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Cleanup(func() {
		for _, l := range out {
			l.c.Close()
		}
	})
	return out
}

// lookups looks the client's own name up about once a second until ctx is
// done, counting the answers without its entry.
func (l *live) lookups(ctx context.Context, lost *atomic.Int64) {
	for {
		sleepCtx(ctx, time.Duration(500+rand.IntN(1000))*time.Millisecond)
		if ctx.Err() != nil {
			return
		}
		lctx, cancel := context.WithTimeout(ctx, probeTimeout)
		es, err := l.c.Lookup(lctx, l.name)
		cancel()
		if err == nil && !slices.ContainsFunc(es, func(e registry.Entry) bool { return e.Instance == l.instance }) {
			lost.Add(1)
		}
	}
}

func (l *live) findsItself(t *testing.T) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	es, err := l.c.Lookup(ctx, l.name)
	if err != nil {
		t.Logf("%s: lookup: %v", l.name, err)
		return false
	}
	return slices.ContainsFunc(es, func(e registry.Entry) bool { return e.Instance == l.instance })
}

// churn registers an entry from a raw client, heartbeats it for 1 to 4 s,
// then drops the connection without deregistering (the entry expires), and
// starts again under a new token, until ctx is done.
func churn(ctx context.Context, addr string, i int, n *atomic.Int64) {
	for cycle := 0; ctx.Err() == nil; cycle++ {
		p, err := dialPeer(net.IPv4(127, 0, 0, 11), addr, true)
		if err != nil {
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		token := fmt.Sprintf("soak-churn-token-%d-%d", i, cycle)
		_ = p.c.SetDeadline(time.Now().Add(10 * time.Second))
		_ = p.send("REGISTER", fmt.Sprintf(`{"token":%q,"name":"soak-churn-%d","host":"127.0.0.1","port":%d,"ttl":%g}`,
			token, i, 2000+i, soakChurnTTL.Seconds()))
		if m, err := p.msg(); err == nil && len(m) > 0 && string(m[0]) == "OK" {
			n.Add(1)
		}
		until := time.Now().Add(time.Duration(1000+rand.IntN(3000)) * time.Millisecond)
		for time.Now().Before(until) && ctx.Err() == nil {
			sleepCtx(ctx, soakChurnTTL/3)
			if p.send("HEARTBEAT", fmt.Sprintf(`{"token":%q}`, token)) != nil {
				break
			}
			if _, err := p.msg(); err != nil {
				break
			}
		}
		p.Close()
	}
}

// churnedLeft waits for the churned entries to expire (up to three TTLs)
// and returns how many are left (-1: the server did not answer LIST).
func churnedLeft(t *testing.T, s *server) int {
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: s.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(3 * soakChurnTTL)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		names, err := c.List(ctx)
		cancel()
		if err != nil {
			t.Logf("soak: LIST: %v", err)
			return -1
		}
		left := 0
		for _, nc := range names {
			if strings.HasPrefix(nc.Name, "soak-churn-") {
				left += nc.Count
			}
		}
		if left == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// hostile starts the soak's hostile clients on g, until ctx is done: two
// LIST callers that never read (20 `LIST entries=true` a second, dialling
// again when cut off), ten watchers of every name that never read, 50
// silent sockets and 50 idle ones through their handshake.
func hostile(ctx context.Context, s *server, g *group) {
	for i := range 2 {
		g.spawn(func() { listFlood(ctx, attackerIP(i), s.addr) })
	}
	for range 10 {
		g.spawn(func() {
			p, err := dialPeer(attackerIP(2), s.addr, false)
			if err != nil {
				return
			}
			_ = p.send("WATCH", "{}")
			holdUntil(ctx, []io.Closer{p})
		})
	}
	for range 50 {
		g.spawn(func() {
			c, err := dialFrom(attackerIP(3), s.addr)
			if err == nil {
				waitClosed(ctx, c)
				c.Close()
			}
		})
		g.spawn(func() {
			p, err := dialPeer(attackerIP(4), s.addr, true)
			if err == nil {
				stop := context.AfterFunc(ctx, func() { p.Close() })
				defer stop()
				p.drain()
			}
		})
	}
}

// listFlood sends 20 `LIST entries=true` a second from ip and never reads,
// dialling again when the server cuts it off.
func listFlood(ctx context.Context, ip net.IP, addr string) {
	var b []byte
	for range 20 {
		b = append(b, request("LIST", `{"entries":true}`)...)
	}
	for ctx.Err() == nil {
		p, err := dialPeer(ip, addr, false)
		if err != nil {
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		stop := context.AfterFunc(ctx, func() { p.Close() })
		for ctx.Err() == nil {
			_ = p.c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := p.c.Write(b); err != nil {
				break
			}
			sleepCtx(ctx, time.Second)
		}
		stop()
		p.Close()
	}
}
