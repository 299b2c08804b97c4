package noise

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/hydra-net/hydra/internal/repeatlog"
)

// Initiate runs the initiator side of a tunnel handshake on nc: IK when
// cfg.RemoteKey is set, XX otherwise, within cfg.HandshakeTimeout (and
// ctx). On success the returned Conn owns nc; on failure nc is closed.
func Initiate(ctx context.Context, nc net.Conn, cfg Config) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		nc.Close()
		return nil, err
	}
	o := cfg.withDefaults()
	var c *Conn
	err := withDeadline(ctx, nc, o.HandshakeTimeout, func() error {
		var err error
		c, err = initiate(nc, &o)
		return err
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.start()
	return c, nil
}

func initiate(nc net.Conn, o *Config) (*Conn, error) {
	h, err := newInitiator(o)
	if err != nil {
		return nil, err
	}
	defer h.wipe()
	if err := h.run(nc); err != nil {
		return nil, err
	}
	c := h.conn(nc, o.Logger)
	c.recTimeout = o.RecordTimeout
	return c, nil
}

// Responder answers tunnel handshakes. It holds the per-source rate
// limiter, so use one Responder for all connections of a port.
type Responder struct {
	cfg      Config
	limiter  *rateLimiter
	fails    hsCounters   // by reason (hsstats.go)
	refusals *slog.Logger // cfg.Logger, each cause said once with a count
}

// msgRefused is the log message of a handshake refused before it started
// (rate limit, no slot), said once per cause with a count
// (internal/repeatlog): a flood would otherwise log a line per connection.
const msgRefused = "noise: handshake refused"

// NewResponder returns a Responder for cfg (see Config for defaults).
func NewResponder(cfg Config) (*Responder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := cfg.withDefaults()
	return &Responder{cfg: o, limiter: newRateLimiter(o.HandshakeRate, o.HandshakeBurst),
		refusals: slog.New(repeatlog.Handler(o.Logger.Handler(), msgRefused))}, nil
}

// Accept runs the responder side of a handshake on nc, whose first byte
// has not been consumed (a shared listener peeks it with a wrapper that
// replays it). It enforces the per-source rate limit, the handshake
// deadline, the preamble, and cfg.Peers for the initiator's key, and for
// IK waits for the initiator's key confirmation. On failure nc is closed
// and the reason logged (Info) and returned; nothing the initiator's
// handshake payload carried is exposed.
func (r *Responder) Accept(ctx context.Context, nc net.Conn) (*Conn, error) {
	log := r.cfg.Logger.With("remote", nc.RemoteAddr().String())
	if !r.limiter.allow(nc.RemoteAddr(), time.Now()) {
		nc.Close()
		r.fails[FailRateLimited].Add(1)
		r.refusals.Info(msgRefused, "source", sourceName(nc.RemoteAddr()), "err", ErrRateLimited)
		return nil, ErrRateLimited
	}
	var c *Conn
	err := withDeadline(ctx, nc, r.cfg.HandshakeTimeout, func() error {
		var err error
		c, err = r.respond(nc)
		return err
	})
	if err != nil {
		nc.Close()
		if ctx.Err() == nil || errors.Is(err, ErrEvicted) { // a stop is no failure
			r.fails[classifyHandshake(err)].Add(1)
		}
		log.Info("noise: handshake failed", "err", err)
		return nil, err
	}
	c.start()
	log.Debug("noise: handshake done", "peer", c.peer.String(), "suite", c.suite)
	return c, nil
}

// respond reads the preamble and runs the responder's handshake on nc,
// without deadlines.
func (r *Responder) respond(nc net.Conn) (*Conn, error) {
	var pre [PreambleSize]byte
	if _, err := io.ReadFull(nc, pre[:]); err != nil {
		return nil, fmt.Errorf("%w: reading: %w", ErrPreamble, err)
	}
	h, err := newResponder(&r.cfg, pre[:])
	if err != nil {
		return nil, err
	}
	defer h.wipe()
	if err := h.run(nc); err != nil {
		return nil, err
	}
	c := h.conn(nc, r.cfg.Logger)
	c.recTimeout = r.cfg.RecordTimeout
	return c, nil
}

// withDeadline runs a handshake under a deadline that ctx can cut short,
// mapping a timeout to ErrHandshakeTimeout.
func withDeadline(ctx context.Context, nc net.Conn, d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := nc.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	err := f()
	if !stop() {
		// Cancelled: even a handshake that just finished counts as failed,
		// since the deadline may now be in the past.
		return fmt.Errorf("noise: handshake cancelled: %w", context.Cause(ctx))
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w after %v: %w", ErrHandshakeTimeout, d, err)
		}
		return err
	}
	return nc.SetDeadline(time.Time{})
}

// run is the one driver of every handshake, both patterns and both
// roles: it writes each message h creates and reads each one h is to
// consume, each with a 2-byte big-endian length, until h is done. The
// initiator's preamble goes out with its first message, in one write.
// Deadlines are the caller's.
func (h *handshake) run(rw io.ReadWriter) error {
	var prefix []byte
	if h.initiator {
		prefix = h.preamble.append(make([]byte, 0, PreambleSize))
	}
	for h.state != stateDone {
		if h.state == stateFailed {
			return fmt.Errorf("%w: the handshake already failed", ErrHandshake)
		}
		if h.ourTurn() {
			msg, err := h.create()
			if err != nil {
				return err
			}
			if err := writeMsg(rw, prefix, msg); err != nil {
				return err
			}
			prefix = nil
			continue
		}
		msg, err := readMsg(rw, h.state)
		if err != nil {
			return err
		}
		if err := h.consume(msg); err != nil {
			return err
		}
	}
	return nil
}

// writeMsg writes an optional prefix and one length-prefixed message in a
// single write.
func writeMsg(w io.Writer, prefix, msg []byte) error {
	b := make([]byte, 0, len(prefix)+2+len(msg))
	b = append(b, prefix...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	_, err := w.Write(b)
	return err
}

// readMsg reads the length-prefixed message of state s, refusing a length
// out of its bounds before reading the rest.
func readMsg(r io.Reader, s hsState) ([]byte, error) {
	hint := ""
	if s == stateIKConfirm || s == stateXXConfirm {
		hint = " (the peer refused our key, or replayed a first message)"
	}
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: reading %s%s: %w", ErrHandshake, s, hint, err)
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if m := messages[s]; n < m.min || n > m.max {
		return nil, fmt.Errorf("%w: %s of %d bytes, want %d to %d", ErrHandshake, s, n, m.min, m.max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: reading %s%s: %w", ErrHandshake, s, hint, err)
	}
	return b, nil
}
