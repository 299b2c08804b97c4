package main

import (
	"flag"
	"time"

	"github.com/hydra-net/hydra/node"
)

// limitsFlags are the budgets of node.Limits: connections per source
// address and in all, bytes queued per peer and in all.
type limitsFlags struct {
	handshakesPerSource, handshakes int
	connsPerSource, conns           int
	pendingBytes, pendingTotal      int64
	writeTimeout                    time.Duration
}

func (f *limitsFlags) define(fs *flag.FlagSet) {
	fs.IntVar(&f.handshakesPerSource, "max-handshakes-per-source", node.DefaultHandshakesPerSource, "most connections from one source address (IPv6 by /64) not yet through their handshake: awaiting their first byte, in the ZMTP greeting and mechanism, or in the Noise handshake; more are closed at once")
	fs.IntVar(&f.handshakes, "max-handshakes", node.DefaultHandshakes, "most connections not yet through their handshake, in all, at each stage; past it the source holding the most gives its oldest up to a newcomer")
	fs.IntVar(&f.connsPerSource, "max-conns-per-source", node.DefaultConnsPerSource, "most established ZMTP connections from one source address (IPv6 by /64); more are refused")
	fs.IntVar(&f.conns, "max-conns", node.DefaultConns, "most established ZMTP connections in all (each idle one costs a few KiB)")
	fs.Int64Var(&f.pendingBytes, "max-pending-bytes", node.DefaultPendingBytes, "most bytes queued for one ZMTP peer that it has not read (replies, events); past it the peer is a slow consumer: its connection is closed and counted")
	fs.Int64Var(&f.pendingTotal, "max-pending-total", node.DefaultPendingTotal, "most bytes queued for all ZMTP peers together; past it the peer with the most queued is cut off as a slow consumer")
	fs.DurationVar(&f.writeTimeout, "write-timeout", node.DefaultWriteTimeout, "how long a write to a ZMTP peer may make no progress before the peer is cut off as a slow consumer")
}

func (f *limitsFlags) apply(cfg *node.Config) {
	cfg.Limits = node.Limits{
		HandshakesPerSource: f.handshakesPerSource, Handshakes: f.handshakes,
		ConnsPerSource: f.connsPerSource, Conns: f.conns,
		PendingBytes: f.pendingBytes, PendingTotal: f.pendingTotal,
		WriteTimeout: f.writeTimeout,
	}
}
