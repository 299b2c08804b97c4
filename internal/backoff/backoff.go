// Package backoff is the one redial backoff with jitter that every dialling
// loop in Hydra uses (join links, tunnels).
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields waits that start at Min and double after each failure up
// to Max; each wait is drawn at random from the upper half of the current
// step, [step/2, step], so a fleet that lost a peer at once does not redial
// it at once. The zero value waits 250ms to 10s.
type Backoff struct {
	Min, Max time.Duration
	step     time.Duration
}

// Defaults of Backoff's fields.
const (
	DefaultMin = 250 * time.Millisecond
	DefaultMax = 10 * time.Second
)

// Next returns the wait before the next attempt and doubles the step.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = DefaultMin
	}
	if hi <= 0 {
		hi = DefaultMax
	}
	hi = max(hi, lo)
	if b.step < lo {
		b.step = lo
	}
	d := b.step/2 + rand.N(b.step/2+1)
	b.step = min(2*b.step, hi)
	return d
}

// Reset starts over at Min: the last attempt worked for a while.
func (b *Backoff) Reset() { b.step = 0 }

// Sleep waits d or until ctx ends; it reports whether the full wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
