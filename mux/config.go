package mux

import (
	"fmt"
	"log/slog"
	"time"
)

// Config tunes a session. The zero value is usable: every field says its
// default, applied when the field is zero. Both ends of a session should
// use compatible settings (the window in particular is announced per
// stream, so the two ends may differ, but AcceptBacklog also bounds how many
// unacknowledged streams this end opens).
type Config struct {
	// StreamWindow is the receive window of each stream: how many bytes the
	// peer may send on one stream before our reader consumes them. It is
	// also the most a stream buffers, so it is what one stream can cost in
	// memory.
	//
	// The window caps one stream's throughput at window / round-trip time,
	// whatever the link's bandwidth (8 MiB over a 100 ms round trip: 84
	// MB/s), hence a default well above yamux's own 256 KiB; see
	// bench/RESULTS.md "Design notes".
	//
	// Default 8 MiB. Allowed: 256 KiB (yamux's initial window, below which
	// the protocol cannot go) to 16 MiB.
	StreamWindow uint32

	// MaxStreams caps the streams open at once in this session, both
	// directions counted, including accepted-but-unclosed ones and incoming
	// ones waiting in the accept backlog. OpenStream fails with
	// ErrTooManyStreams at the cap, and a stream the peer opens beyond it is
	// reset at once instead of being queued.
	//
	// Memory bound: each stream buffers at most StreamWindow bytes that its
	// reader has not consumed yet, so a session holds at most about
	// MaxStreams × StreamWindow of receive buffers (slack in Go's
	// bytes.Buffer growth can add up to as much again while buffers fill).
	// With the defaults that is 256 × 8 MiB = 2 GiB, reached only when every
	// stream's reader stops reading; lower either field on small machines.
	//
	// Default 256. Allowed: 1 to 65536.
	MaxStreams int

	// AcceptBacklog is how many streams opened by the peer may wait for
	// Accept. A stream beyond it is reset at once. Such a stream can carry
	// yamux's initial 256 KiB before being accepted, so the backlog costs at
	// most AcceptBacklog × 256 KiB (counted inside MaxStreams). The same
	// number bounds how many of our own opened streams may wait for the
	// peer's acknowledgement before OpenStream blocks.
	//
	// Default 64. Allowed: 1 to MaxStreams.
	AcceptBacklog int

	// KeepAliveInterval: when nothing has been read from the connection for
	// this long, or nothing written, the session sends a ping. Pings are
	// written at the next frame boundary, ahead of queued data, and never
	// wait for their answer: any byte read counts as a sign of life.
	//
	// Default 5s.
	KeepAliveInterval time.Duration

	// LivenessTimeout closes the session (with ErrPeerTimeout) when nothing
	// at all has been read from the connection for this long. A busy link
	// never trips it: data, window updates and the peer's own pings all
	// count, and the peer pings whenever it has written nothing for a
	// KeepAliveInterval, even if our pings are stuck behind our data.
	//
	// Default 3 × KeepAliveInterval. Must exceed KeepAliveInterval.
	LivenessTimeout time.Duration

	// WriteTimeout bounds each write to the underlying connection; a write
	// that does not complete in time closes the session. A write carries at
	// most one data frame (256 KiB), so the link must move that much per
	// WriteTimeout (about 9 KB/s with the default). It also bounds how long a stream's Write waits for its
	// frame to be queued and written (yamux's ConnectionWriteTimeout), and
	// how long Ping waits for its answer.
	//
	// Default 30s.
	WriteTimeout time.Duration

	// OpenTimeout: a stream we open that the peer neither accepts nor
	// refuses within this time means the peer has stopped serving, and the
	// session is closed with ErrOpenTimeout.
	//
	// Default 30s.
	OpenTimeout time.Duration

	// Logger receives session events: closes and their cause, refused
	// streams, yamux's own messages (its errors at Warn, its warnings at
	// Debug, since a peer can provoke them at will). Default: discard;
	// libraries stay silent unless asked.
	Logger *slog.Logger
}

// Defaults and limits of Config fields.
const (
	DefaultStreamWindow      = 8 << 20
	MinStreamWindow          = 256 << 10
	MaxStreamWindow          = 16 << 20
	DefaultMaxStreams        = 256
	maxMaxStreams            = 1 << 16
	DefaultAcceptBacklog     = 64
	DefaultKeepAliveInterval = 5 * time.Second
	// DefaultLivenessFactor × KeepAliveInterval is the default
	// LivenessTimeout: two pings' worth of silence is tolerated.
	DefaultLivenessFactor = 3
	DefaultWriteTimeout   = 30 * time.Second
	DefaultOpenTimeout    = 30 * time.Second
)

// Validate reports the first field of c out of its allowed range, by its Go
// field name, once defaults are applied (so LivenessTimeout is checked
// against the KeepAliveInterval in force). Zero fields take their defaults.
func (c Config) Validate() error {
	r := c.withDefaults()
	if r.StreamWindow < MinStreamWindow || r.StreamWindow > MaxStreamWindow {
		return fmt.Errorf("mux: StreamWindow %d outside [%d, %d]", r.StreamWindow, MinStreamWindow, MaxStreamWindow)
	}
	if r.MaxStreams < 1 || r.MaxStreams > maxMaxStreams {
		return fmt.Errorf("mux: MaxStreams %d outside [1, %d]", r.MaxStreams, maxMaxStreams)
	}
	if r.AcceptBacklog < 1 || r.AcceptBacklog > r.MaxStreams {
		return fmt.Errorf("mux: AcceptBacklog %d outside [1, MaxStreams=%d]", r.AcceptBacklog, r.MaxStreams)
	}
	if r.KeepAliveInterval < 0 {
		return fmt.Errorf("mux: negative KeepAliveInterval %v", r.KeepAliveInterval)
	}
	if r.LivenessTimeout <= r.KeepAliveInterval {
		return fmt.Errorf("mux: LivenessTimeout %v must exceed KeepAliveInterval %v", r.LivenessTimeout, r.KeepAliveInterval)
	}
	if r.WriteTimeout < 0 {
		return fmt.Errorf("mux: negative WriteTimeout %v", r.WriteTimeout)
	}
	if r.OpenTimeout < 0 {
		return fmt.Errorf("mux: negative OpenTimeout %v", r.OpenTimeout)
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.StreamWindow == 0 {
		c.StreamWindow = DefaultStreamWindow
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.AcceptBacklog == 0 {
		c.AcceptBacklog = min(DefaultAcceptBacklog, c.MaxStreams)
	}
	if c.KeepAliveInterval == 0 {
		c.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if c.LivenessTimeout == 0 {
		c.LivenessTimeout = DefaultLivenessFactor * c.KeepAliveInterval
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
