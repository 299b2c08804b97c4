package hydrabench

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// TunnelAvailable says whether this build can measure tunnels. When the
// tunnel lands: implement Tunnel, set this to true, and `hydra-server bench
// tunnel` (and `bench all`) run it with the cases the command already
// builds (one per --size).
const TunnelAvailable = false

// ErrTunnelUnavailable is what Tunnel returns until tunnels land.
var ErrTunnelUnavailable = errors.New("bench tunnel is not available yet: it measures TCP streams through a Hydra tunnel, and tunnels have not landed in this build")

// TunnelConfig says what Tunnel measures: TCP streams carried through a
// tunnel between two Hydra servers (the data path of README's "--tunnel":
// app → proxy listener → mux stream → Noise → TCP → remote Hydra → the
// service), against the in-process pair Tunnel starts or a remote one.
//
// The fields are those of the other benches so that the command line and
// the report stay the same when the tunnel lands.
type TunnelConfig struct {
	// Target is a remote hydra-server accepting tunnels; empty: two
	// servers in this process, tunnelled over loopback.
	Target string
	// Size is the write size in bytes; Count the writes, or Duration.
	Size     int
	Count    int64
	Duration time.Duration
	// Concurrency is the number of streams at once.
	Concurrency int
	Timeout     time.Duration
	Progress    *atomic.Int64
}

// Tunnel measures streams through a tunnel: MB/s per stream and in all,
// and the round trip of a small write echoed back (Result.Latency). It is
// a placeholder until the tunnel package lands; it then fills a Result
// with Bench KindTunnel and Case "stream" (or "echo" for the round trip).
func Tunnel(ctx context.Context, cfg TunnelConfig) (Result, error) {
	return Result{Bench: KindTunnel, Case: "stream", Target: cfg.Target, Size: cfg.Size}, ErrTunnelUnavailable
}
