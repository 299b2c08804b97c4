package zmtp

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/hydra-net/hydra/internal/admission"
)

// Config configures a socket. The zero value is usable: every field says its
// default, applied when the field is zero.
type Config struct {
	// Logger receives connection-level events (peer connected, dropped,
	// refused). Default: discard; libraries stay silent unless asked.
	Logger *slog.Logger

	// RoutingID is sent to peers as this socket's Identity/Routing-Id
	// (ROUTER peers address us by it). At most 255 bytes, not starting with
	// a zero byte. Default: none, the peer picks one.
	RoutingID []byte

	// Properties are extra metadata sent in READY (names of 1 to 255
	// characters from [A-Za-z0-9-_.+], "X-" prefixed by convention).
	// Default: none.
	Properties Metadata

	// SendHWM is the number of messages queued per peer before Send blocks
	// (PUSH, DEALER, REQ, PAIR) or drops (PUB, ROUTER). Default 1000.
	SendHWM int
	// RecvHWM is the number of received messages queued per peer before the
	// socket stops reading from that peer. Default 1000.
	RecvHWM int

	// SendTimeout bounds a blocking Send; on expiry Send returns ErrTimeout.
	// Default 0: wait forever (SendContext takes a context instead).
	SendTimeout time.Duration
	// RecvTimeout bounds a blocking Recv likewise. Default 0: wait forever.
	RecvTimeout time.Duration

	// Linger bounds how long Close waits for queued messages to be written.
	// Default 10s; negative: Close drops queued messages at once.
	Linger time.Duration

	// MaxMsgSize is the largest message accepted from a peer, counting every
	// frame's body plus 16 bytes of overhead per frame; a peer announcing
	// more is disconnected before anything is allocated. Default 8 MiB.
	MaxMsgSize int64

	// HandshakeTimeout bounds the greeting and security handshake of each
	// connection (and each dial), from its start: reads do not renew it.
	// Default 10s.
	HandshakeTimeout time.Duration

	// FrameTimeout and MinRecvRate bound how long a message (all its
	// frames) may take to arrive once its first byte has: FrameTimeout plus
	// its size at MinRecvRate bytes a second, however often bytes of it
	// arrive, so that a peer trickling a message holds its connection no
	// longer than one sending at that rate. Defaults 10s and 16 KiB/s (a
	// 64 KiB message may take 14s, an 8 MiB one 522s); a negative
	// MinRecvRate turns the deadline off.
	FrameTimeout time.Duration
	MinRecvRate  int64

	// Handshakes caps the accepted connections that have not finished their
	// handshake, per source address and in all; made with Evict, a
	// newcomer from a source holding fewer takes the oldest of the source
	// holding the most, which is closed. A connection refused is closed
	// unanswered. Connect's dials are not counted. Default nil: no cap.
	Handshakes *admission.Limiter
	// Conns caps the accepted connections past their handshake likewise;
	// one refused gets an ERROR command with the reason ("too many
	// connections from this address") and is closed. Both kinds of refusal
	// count as FailLimit (HandshakeFailures). Default nil: no cap.
	Conns *admission.Limiter

	// ReconnectInterval is the first step of the wait before redialling a
	// dropped or refused connect endpoint; the step doubles up to
	// ReconnectIntervalMax, and each wait is drawn from the upper half of
	// its step (internal/backoff), so that peers that lost a server at once
	// do not redial it at once. Default 100ms.
	ReconnectInterval time.Duration
	// ReconnectIntervalMax caps the wait between redials. Default 5s, or
	// ReconnectInterval if that is longer.
	ReconnectIntervalMax time.Duration

	// HeartbeatInterval, when set, sends a PING to ZMTP 3.1 peers at this
	// interval. Default 0: no heartbeats.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout drops a peer from which nothing arrived for this
	// long while heartbeats are on. Default: HeartbeatInterval × 3.
	HeartbeatTimeout time.Duration
	// HeartbeatTTL is the time to live announced in our PINGs: the peer
	// drops us after that long without traffic (at most 6553.5s, what a
	// PING carries). Default: HeartbeatTimeout.
	HeartbeatTTL time.Duration

	// Security makes the mechanism for each new connection. Default: NULL.
	Security func() Mechanism

	// MaxPendingBytes bounds the bytes queued for one peer of a ROUTER, PUB
	// or XPUB socket, or for a REP's requester (what Send queued plus what
	// the writer holds and has not written yet). A message that would take
	// a peer with something already pending past it makes that peer a slow
	// consumer: the message is not queued, the connection is closed and
	// what it sent and was not received yet is discarded; the ROUTER's Send
	// (with RouterMandatory) returns ErrSlowConsumer. One message larger
	// than the budget to a peer with nothing pending is still queued.
	// Blocking patterns (PUSH, DEALER, REQ, PAIR) wait for room instead.
	// Default 8 MiB.
	MaxPendingBytes int64
	// MaxPendingTotal bounds the sum of the bytes pending for all of the
	// socket's peers: when a message would take it past, the peer with the
	// most pending is cut off as a slow consumer, even if it is under
	// MaxPendingBytes. Default 256 MiB.
	MaxPendingTotal int64
	// WriteTimeout bounds each write to a peer (at most writeChunk bytes
	// at a time, so a peer that reads slowly but steadily is not cut): one
	// that takes no bytes for WriteTimeout (up to half as long again, as
	// the deadline is moved in steps) is a slow consumer and its
	// connection is closed. Default 0: no deadline, as libzmq, since a blocking pattern's
	// peer may pause for as long as it likes.
	WriteTimeout time.Duration

	// RouterMandatory makes a ROUTER's Send fail with ErrHostUnreachable for
	// an unknown routing id, instead of dropping the message. Default false.
	RouterMandatory bool

	// zmtp30 makes the socket announce ZMTP 3.0 instead of 3.1, so that
	// tests can check how 3.1 peers treat a 3.0 one; export_test.go sets it.
	zmtp30 bool
}

// Defaults of Config fields.
const (
	DefaultHWM                  = 1000
	DefaultLinger               = 10 * time.Second
	DefaultMaxMsgSize           = 8 << 20
	DefaultMaxPendingBytes      = 8 << 20
	DefaultMaxPendingTotal      = 256 << 20
	DefaultHandshakeTimeout     = 10 * time.Second
	DefaultFrameTimeout         = 10 * time.Second
	DefaultMinRecvRate          = 16 << 10
	DefaultReconnectInterval    = 100 * time.Millisecond
	DefaultReconnectIntervalMax = 5 * time.Second
	// DefaultHeartbeatTimeoutFactor × HeartbeatInterval is the default
	// HeartbeatTimeout: two PINGs may go unanswered.
	DefaultHeartbeatTimeoutFactor = 3
)

const (
	frameOverhead       = 16 // per frame, counted against MaxMsgSize
	maxHandshakeCommand = 64 << 10
	maxRoutingID        = 255
)

// Validate reports the first field of c that cannot be used, by its Go
// field name. Zero fields are valid: they take their defaults.
func (c Config) Validate() error {
	if len(c.RoutingID) > maxRoutingID || len(c.RoutingID) > 0 && c.RoutingID[0] == 0 {
		return fmt.Errorf("zmtp: config: RoutingID must be 1 to %d bytes not starting with a zero byte", maxRoutingID)
	}
	for _, p := range c.Properties {
		if !validPropertyName(p.Name) {
			return fmt.Errorf("zmtp: config: Properties: invalid name %q", p.Name)
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"SendHWM", int64(c.SendHWM)}, {"RecvHWM", int64(c.RecvHWM)},
		{"SendTimeout", int64(c.SendTimeout)}, {"RecvTimeout", int64(c.RecvTimeout)},
		{"MaxMsgSize", c.MaxMsgSize}, {"HandshakeTimeout", int64(c.HandshakeTimeout)},
		{"FrameTimeout", int64(c.FrameTimeout)},
		{"ReconnectInterval", int64(c.ReconnectInterval)}, {"ReconnectIntervalMax", int64(c.ReconnectIntervalMax)},
		{"HeartbeatInterval", int64(c.HeartbeatInterval)}, {"HeartbeatTimeout", int64(c.HeartbeatTimeout)},
		{"HeartbeatTTL", int64(c.HeartbeatTTL)},
		{"MaxPendingBytes", c.MaxPendingBytes}, {"MaxPendingTotal", c.MaxPendingTotal},
		{"WriteTimeout", int64(c.WriteTimeout)},
	} {
		if f.v < 0 {
			return fmt.Errorf("zmtp: config: %s is negative", f.name)
		}
	}
	if c.ReconnectInterval > 0 && c.ReconnectIntervalMax > 0 && c.ReconnectIntervalMax < c.ReconnectInterval {
		return fmt.Errorf("zmtp: config: ReconnectIntervalMax %v is below ReconnectInterval %v", c.ReconnectIntervalMax, c.ReconnectInterval)
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SendHWM <= 0 {
		c.SendHWM = DefaultHWM
	}
	if c.RecvHWM <= 0 {
		c.RecvHWM = DefaultHWM
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.MaxMsgSize <= 0 {
		c.MaxMsgSize = DefaultMaxMsgSize
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.MaxPendingTotal <= 0 {
		c.MaxPendingTotal = DefaultMaxPendingTotal
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.FrameTimeout <= 0 {
		c.FrameTimeout = DefaultFrameTimeout
	}
	if c.MinRecvRate == 0 {
		c.MinRecvRate = DefaultMinRecvRate
	}
	if c.ReconnectInterval <= 0 {
		c.ReconnectInterval = DefaultReconnectInterval
	}
	if c.ReconnectIntervalMax < c.ReconnectInterval {
		c.ReconnectIntervalMax = max(DefaultReconnectIntervalMax, c.ReconnectInterval)
	}
	if c.HeartbeatInterval > 0 && c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeoutFactor * c.HeartbeatInterval
	}
	if c.HeartbeatTTL <= 0 {
		c.HeartbeatTTL = c.HeartbeatTimeout
	}
	if c.Security == nil {
		c.Security = Null
	}
	return c
}
