// Package acceptloop is the one accept loop Hydra's listeners share: it
// hands each connection to a handler on its own goroutine, waits out
// temporary failures (out of descriptors) instead of spinning, and returns
// when the listener is closed.
package acceptloop

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// Serve accepts from ln until it is closed, then returns nil. Each accepted
// connection is passed to handle; handle runs on the accept goroutine, so it
// must return quickly (start a goroutine for anything that reads). A failed
// Accept other than a closed listener is logged at Warn (when log is not
// nil) and retried after a wait from 5ms doubling to 1s.
func Serve(ln net.Listener, log *slog.Logger, handle func(net.Conn)) error {
	const minWait, maxWait = 5 * time.Millisecond, time.Second
	wait := minWait
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if log != nil {
				log.Warn("accept failed; retrying", "listener", ln.Addr().String(), "err", err, "in", wait)
			}
			time.Sleep(wait)
			wait = min(2*wait, maxWait)
			continue
		}
		wait = minWait
		handle(nc)
	}
}
