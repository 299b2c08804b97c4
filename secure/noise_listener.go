package secure

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Listener accepts tunnel connections whose handshake completed; see
// Responder.Listen.
type Listener struct {
	inner  net.Listener
	r      *Responder
	conns  chan *Conn
	sem    chan struct{}
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		nc, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.r.cfg.Logger.Warn("noise: accept", "err", err)
			select {
			case <-time.After(backoff):
			case <-l.done:
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		select {
		case l.sem <- struct{}{}:
		default:
			l.r.cfg.Logger.Info("noise: handshake refused", "remote", nc.RemoteAddr().String(), "err", "too many handshakes in progress")
			nc.Close()
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c, err := l.r.Accept(l.ctx, nc)
			<-l.sem
			if err != nil {
				return // closed and logged by Accept
			}
			select {
			case l.conns <- c:
			case <-l.done:
				c.Close()
			}
		}()
	}
}

// Accept returns the next connection that completed its handshake.
func (l *Listener) Accept() (net.Conn, error) { return l.AcceptConn() }

// AcceptConn is Accept returning the *Conn.
func (l *Listener) AcceptConn() (*Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, cancels handshakes in progress and waits for
// them. Established connections are not closed.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		l.cancel()
		err = l.inner.Close()
		l.wg.Wait()
	})
	return err
}

// Addr is the underlying listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

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

func sourceOf(a net.Addr) (netip.Prefix, bool) {
	var ap netip.AddrPort
	switch t := a.(type) {
	case *net.TCPAddr:
		ap = t.AddrPort()
	case *net.UDPAddr:
		ap = t.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.Prefix{}, false
		}
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

func (r *rateLimiter) allow(a net.Addr, now time.Time) bool {
	src, ok := sourceOf(a)
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
