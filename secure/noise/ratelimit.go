package noise

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hydra-net/hydra/internal/admission"
)

// rateLimiter is a token bucket per source: an IPv4 address or an IPv6
// /64. Idle buckets are swept so the map stays bounded by the sources of
// the last minute or so.
type rateLimiter struct {
	mu        sync.Mutex
	rate      float64
	burst     float64
	buckets   map[netip.Prefix]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets caps the table; past it, unknown sources are refused until a
// sweep frees room (a flood from many addresses cannot grow memory).
const maxBuckets = 1 << 16

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: map[netip.Prefix]*bucket{}}
}

func (r *rateLimiter) allow(a net.Addr, now time.Time) bool {
	src, ok := admission.Source(a)
	if !ok {
		return true // not an IP address (a pipe in tests, a unix socket)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.lastSweep) > time.Minute || len(r.buckets) >= maxBuckets {
		full := r.burst / r.rate * float64(time.Second)
		for k, b := range r.buckets {
			if now.Sub(b.last) > time.Duration(full) {
				delete(r.buckets, k) // refilled by now: same as absent
			}
		}
		r.lastSweep = now
	}
	b := r.buckets[src]
	if b == nil {
		if len(r.buckets) >= maxBuckets {
			return false
		}
		b = &bucket{tokens: r.burst, last: now}
		r.buckets[src] = b
	}
	b.tokens = min(r.burst, b.tokens+now.Sub(b.last).Seconds()*r.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
