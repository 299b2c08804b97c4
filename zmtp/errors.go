package zmtp

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrClosed is returned by operations on a closed socket.
	ErrClosed = errors.New("zmtp: socket closed")
	// ErrTimeout is returned when a send or receive timeout expires.
	ErrTimeout = errors.New("zmtp: timeout")
	// ErrState is returned when the socket's pattern forbids the operation
	// now, e.g. a REQ socket sending twice without receiving.
	ErrState = errors.New("zmtp: operation not valid in the current socket state")
	// ErrNotSupported is returned for an operation the socket type lacks,
	// e.g. Recv on PUSH.
	ErrNotSupported = errors.New("zmtp: operation not supported by this socket type")
	// ErrHostUnreachable is returned by a ROUTER with RouterMandatory set when
	// the routing id names no connected peer.
	ErrHostUnreachable = errors.New("zmtp: host unreachable")
	// ErrSlowConsumer is returned by a ROUTER's Send (with RouterMandatory)
	// when the message would take its peer past MaxPendingBytes, or the
	// socket past MaxPendingTotal with that peer holding the most: the peer
	// was cut off (see Config.MaxPendingBytes).
	ErrSlowConsumer = errors.New("zmtp: slow consumer cut off")
	// ErrBadEndpoint is returned for an endpoint that is not tcp://host:port
	// or ipc://path.
	ErrBadEndpoint = errors.New("zmtp: bad endpoint")

	// Protocol errors: a peer sent something a ZMTP 3.x peer may not. Each
	// costs the peer its connection, never the socket.
	ErrBadSignature    = errors.New("zmtp: bad greeting signature")
	ErrBadVersion      = errors.New("zmtp: unsupported ZMTP version")
	ErrMechanism       = errors.New("zmtp: security mechanism mismatch")
	ErrFrameTooLarge   = errors.New("zmtp: frame exceeds the maximum message size")
	ErrBadFlags        = errors.New("zmtp: reserved frame flag bits set")
	ErrBadCommand      = errors.New("zmtp: malformed command")
	ErrBadMetadata     = errors.New("zmtp: malformed metadata")
	ErrUnexpected      = errors.New("zmtp: unexpected frame")
	ErrSocketType      = errors.New("zmtp: incompatible socket type")
	ErrHandshake       = errors.New("zmtp: handshake failed")
	ErrPeerError       = errors.New("zmtp: peer sent ERROR")
	ErrHeartbeatExpiry = errors.New("zmtp: peer heartbeat timed out")
	// ErrTooSlow: a message's bytes arrived slower than
	// Config.MinRecvRate allows (Config.FrameTimeout).
	ErrTooSlow = errors.New("zmtp: message arriving below the minimum rate")
)

// PeerError carries the reason of an ERROR command received from a peer. It
// matches ErrPeerError with errors.Is.
type PeerError struct{ Reason string }

func (e *PeerError) Error() string        { return fmt.Sprintf("zmtp: peer sent ERROR: %q", e.Reason) }
func (e *PeerError) Is(target error) bool { return target == ErrPeerError }
