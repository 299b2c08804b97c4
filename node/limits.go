package node

import (
	"fmt"
	"time"

	"github.com/hydra-net/hydra/registry"
)

// Limits bound what one peer, one source address and all of them together
// may hold (SECURITY.md, "Budgets"): a flood from a few addresses, a peer
// that never reads or one that trickles its bytes costs its own budget,
// not everyone's. The zero value takes the defaults below.
type Limits struct {
	// HandshakesPerSource bounds the connections from one source (an IPv4
	// address, an IPv6 /64) that have not finished their handshake: awaiting
	// their first byte on the shared port, in the ZMTP greeting and
	// mechanism, or in the Noise handshake. Default 32.
	HandshakesPerSource int
	// Handshakes bounds them in all, at each of those stages; past it, the
	// source holding the most gives its oldest up to a newcomer from a
	// source holding fewer. Default 512.
	Handshakes int
	// ConnsPerSource bounds one source's established ZMTP connections.
	// Default 256.
	ConnsPerSource int
	// Conns bounds established ZMTP connections in all. Default 4096.
	Conns int
	// PendingBytes bounds the bytes queued for one ZMTP peer (replies,
	// events) that it has not read; past it the peer is a slow consumer: its
	// connection is closed and counted. Default 4 MiB.
	PendingBytes int64
	// PendingTotal bounds the bytes queued for all ZMTP peers; past it the
	// peer with the most queued is cut off as a slow consumer. Default
	// 64 MiB.
	PendingTotal int64
	// WriteTimeout is how long a write to a ZMTP peer may make no progress
	// before the peer is a slow consumer. Default 10s.
	WriteTimeout time.Duration
}

// Defaults of Limits' fields.
const (
	DefaultHandshakesPerSource = 32
	DefaultHandshakes          = 512
	DefaultConnsPerSource      = 256
	DefaultConns               = 4096
	DefaultPendingBytes        = registry.DefaultMaxPendingBytes
	DefaultPendingTotal        = registry.DefaultMaxPendingTotal
	DefaultWriteTimeout        = registry.DefaultWriteTimeout
)

func (l Limits) withDefaults() Limits {
	if l.HandshakesPerSource == 0 {
		l.HandshakesPerSource = DefaultHandshakesPerSource
	}
	if l.Handshakes == 0 {
		l.Handshakes = DefaultHandshakes
	}
	if l.ConnsPerSource == 0 {
		l.ConnsPerSource = DefaultConnsPerSource
	}
	if l.Conns == 0 {
		l.Conns = DefaultConns
	}
	if l.PendingBytes == 0 {
		l.PendingBytes = DefaultPendingBytes
	}
	if l.PendingTotal == 0 {
		l.PendingTotal = DefaultPendingTotal
	}
	if l.WriteTimeout == 0 {
		l.WriteTimeout = DefaultWriteTimeout
	}
	return l
}

// validate names the first unusable field by its path in Config.
func (l Limits) validate() error {
	l = l.withDefaults()
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"HandshakesPerSource", int64(l.HandshakesPerSource)}, {"Handshakes", int64(l.Handshakes)},
		{"ConnsPerSource", int64(l.ConnsPerSource)}, {"Conns", int64(l.Conns)},
		{"PendingBytes", l.PendingBytes}, {"PendingTotal", l.PendingTotal},
		{"WriteTimeout", int64(l.WriteTimeout)},
	} {
		if f.v < 0 {
			return &ConfigError{"Limits." + f.name, fmt.Errorf("%d is negative", f.v)}
		}
	}
	switch {
	case l.HandshakesPerSource > l.Handshakes:
		return &ConfigError{"Limits.HandshakesPerSource", fmt.Errorf("%d is above Handshakes (%d)", l.HandshakesPerSource, l.Handshakes)}
	case l.ConnsPerSource > l.Conns:
		return &ConfigError{"Limits.ConnsPerSource", fmt.Errorf("%d is above Conns (%d)", l.ConnsPerSource, l.Conns)}
	case l.PendingBytes > l.PendingTotal:
		return &ConfigError{"Limits.PendingBytes", fmt.Errorf("%d is above PendingTotal (%d)", l.PendingBytes, l.PendingTotal)}
	}
	return nil
}
