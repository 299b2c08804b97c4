package zmtp

import (
	"log/slog"
	"time"
)

// Options configures a socket. The zero value is usable: every field says
// its default, applied when the field is zero.
type Options struct {
	// Logger receives connection-level events (peer connected, dropped,
	// refused). Default: discard; libraries stay silent unless asked.
	Logger *slog.Logger

	// RoutingID is sent to peers as this socket's Identity/Routing-Id
	// (ROUTER peers address us by it). At most 255 bytes, not starting with
	// a zero byte. Default: none, the peer picks one.
	RoutingID []byte

	// Properties are extra metadata sent in READY (names of 1 to 255
	// characters from [A-Za-z0-9-_.+], "X-" prefixed by convention).
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
	// connection. Default 10s.
	HandshakeTimeout time.Duration

	// ReconnectInterval is the first wait before redialling a dropped or
	// refused connect endpoint; it doubles up to ReconnectIntervalMax.
	// Defaults 100ms and 5s.
	ReconnectInterval    time.Duration
	ReconnectIntervalMax time.Duration

	// HeartbeatInterval, when set, sends a PING to ZMTP 3.1 peers at this
	// interval. Default 0: no heartbeats.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout drops a peer from which nothing arrived for this
	// long while heartbeats are on. Default: HeartbeatInterval × 3.
	HeartbeatTimeout time.Duration
	// HeartbeatTTL is the time to live announced in our PINGs: the peer
	// drops us after that long without traffic. Default: HeartbeatTimeout.
	HeartbeatTTL time.Duration

	// Security makes the mechanism for each new connection. Default: NULL.
	Security func() Mechanism

	// RouterMandatory makes a ROUTER's Send fail with ErrHostUnreachable for
	// an unknown routing id, instead of dropping the message. Default false.
	RouterMandatory bool

	// ZMTP30 makes the socket announce version 3.0 instead of 3.1 (for
	// testing 3.0 interoperability). Default false.
	ZMTP30 bool
}

const (
	defaultHWM          = 1000
	defaultLinger       = 10 * time.Second
	defaultMaxMsgSize   = 8 << 20
	defaultHandshake    = 10 * time.Second
	defaultReconnect    = 100 * time.Millisecond
	defaultReconnectMax = 5 * time.Second
	frameOverhead       = 16 // per frame, counted against MaxMsgSize
	maxHandshakeCommand = 64 << 10
)

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SendHWM <= 0 {
		o.SendHWM = defaultHWM
	}
	if o.RecvHWM <= 0 {
		o.RecvHWM = defaultHWM
	}
	if o.Linger == 0 {
		o.Linger = defaultLinger
	}
	if o.MaxMsgSize <= 0 {
		o.MaxMsgSize = defaultMaxMsgSize
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = defaultHandshake
	}
	if o.ReconnectInterval <= 0 {
		o.ReconnectInterval = defaultReconnect
	}
	if o.ReconnectIntervalMax < o.ReconnectInterval {
		o.ReconnectIntervalMax = max(defaultReconnectMax, o.ReconnectInterval)
	}
	if o.HeartbeatInterval > 0 && o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 3 * o.HeartbeatInterval
	}
	if o.HeartbeatTTL <= 0 {
		o.HeartbeatTTL = o.HeartbeatTimeout
	}
	if o.Security == nil {
		o.Security = Null
	}
	return o
}
