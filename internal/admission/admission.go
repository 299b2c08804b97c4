// Package admission caps the connections a listener holds, per source
// address and in total, so that a flood from a few addresses cannot take
// the slots that everyone else needs. A source is an IPv4 address or an
// IPv6 /64 (one host's usual allocation); addresses that are not IP (pipes,
// unix sockets) share one source that only the total bounds.
//
// When the total is reached, a Limiter made with Evict gives the newcomer
// the oldest slot of the source holding the most, as long as that source
// holds more than the newcomer's would: slots are shared fairly between
// sources, whoever came first. That suits connections that have not yet
// proved anything (awaiting a first byte, handshaking); established ones
// are refused instead.
package admission

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// Errors of Acquire; callers branch on them to count and log refusals.
var (
	ErrSourceFull = errors.New("too many connections from this address")
	ErrFull       = errors.New("too many connections")
)

// Config is a Limiter's caps. Zero means no cap.
type Config struct {
	PerSource int // slots one source may hold
	Total     int // slots all sources together may hold
	// Evict: when Total is reached, take the oldest slot of the source
	// holding the most (see the package comment) instead of refusing.
	Evict bool
}

// Validate names the first negative field.
func (c Config) Validate() error {
	switch {
	case c.PerSource < 0:
		return fmt.Errorf("admission: PerSource is negative (%d)", c.PerSource)
	case c.Total < 0:
		return fmt.Errorf("admission: Total is negative (%d)", c.Total)
	}
	return nil
}

// Limiter hands out slots; safe for concurrent use. A nil *Limiter admits
// everyone.
type Limiter struct {
	cfg     Config
	mu      sync.Mutex
	held    int
	sources map[netip.Prefix]*source
}

type source struct {
	slots []*Slot // oldest first
}

// Slot is one admitted connection's place; Release it when the
// connection ends or moves on (its handshake completed).
type Slot struct {
	l       *Limiter
	src     netip.Prefix
	onEvict func()
	done    bool
}

// New returns a Limiter with cfg's caps (cfg must Validate).
func New(cfg Config) *Limiter {
	return &Limiter{cfg: cfg, sources: map[netip.Prefix]*source{}}
}

// Source returns the source an address counts against: an IPv4 address
// (IPv4-mapped IPv6 included) as a /32, an IPv6 address as its /64; false
// for an address that is not IP.
func Source(a net.Addr) (netip.Prefix, bool) {
	var ap netip.AddrPort
	switch t := a.(type) {
	case *net.TCPAddr:
		ap = t.AddrPort()
	case *net.UDPAddr:
		ap = t.AddrPort()
	default:
		if a == nil {
			return netip.Prefix{}, false
		}
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.Prefix{}, false
		}
	}
	return SourceOf(ap.Addr())
}

// SourceOf is Source for an IP address.
func SourceOf(ip netip.Addr) (netip.Prefix, bool) {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return netip.Prefix{}, false
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

// Acquire admits a connection from addr, or says why not (ErrSourceFull,
// ErrFull). onEvict, which may be nil, closes the connection should a
// newcomer take its slot (Evict): it runs on the newcomer's goroutine, after
// the slot was released, and must not block.
func (l *Limiter) Acquire(addr net.Addr, onEvict func()) (*Slot, error) {
	if l == nil {
		return nil, nil
	}
	src, ok := Source(addr)
	if !ok {
		src = netip.Prefix{}
	}
	l.mu.Lock()
	s := l.sources[src]
	have := 0
	if s != nil {
		have = len(s.slots)
	}
	if ok && l.cfg.PerSource > 0 && have >= l.cfg.PerSource {
		l.mu.Unlock()
		return nil, ErrSourceFull
	}
	var evicted *Slot
	if l.cfg.Total > 0 && l.held >= l.cfg.Total {
		if !l.cfg.Evict {
			l.mu.Unlock()
			return nil, ErrFull
		}
		victim := l.heaviestLocked()
		if victim == nil || victim == s || len(victim.slots) <= have+1 {
			l.mu.Unlock()
			return nil, ErrFull
		}
		evicted = victim.slots[0]
		l.releaseLocked(evicted)
	}
	if s == nil {
		s = &source{}
		l.sources[src] = s
	}
	slot := &Slot{l: l, src: src, onEvict: onEvict}
	s.slots = append(s.slots, slot)
	l.held++
	l.mu.Unlock()
	if evicted != nil && evicted.onEvict != nil {
		evicted.onEvict()
	}
	return slot, nil
}

// heaviestLocked returns the source holding the most slots.
func (l *Limiter) heaviestLocked() *source {
	var best *source
	for _, s := range l.sources {
		if best == nil || len(s.slots) > len(best.slots) {
			best = s
		}
	}
	return best
}

func (l *Limiter) releaseLocked(slot *Slot) {
	if slot.done {
		return
	}
	slot.done = true
	l.held--
	s := l.sources[slot.src]
	for i, x := range s.slots {
		if x == slot {
			s.slots = append(s.slots[:i], s.slots[i+1:]...)
			break
		}
	}
	if len(s.slots) == 0 {
		delete(l.sources, slot.src)
	}
}

// Release gives the slot back; later calls do nothing, as does a nil slot
// (what a nil Limiter hands out).
func (s *Slot) Release() {
	if s == nil {
		return
	}
	s.l.mu.Lock()
	s.l.releaseLocked(s)
	s.l.mu.Unlock()
}

// Held returns the slots held now and by how many sources.
func (l *Limiter) Held() (slots, sources int) {
	if l == nil {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held, len(l.sources)
}
