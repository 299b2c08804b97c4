package mux

import (
	"errors"
	"fmt"
)

// Errors returned by sessions and streams. Test them with errors.Is: a
// session's close error wraps ErrSessionClosed together with its cause
// (ErrPeerTimeout, ErrProtocol, ErrOpenTimeout or the connection's error).
var (
	// ErrSessionClosed: the session is closed; every stream of it fails.
	ErrSessionClosed = errors.New("mux: session closed")

	// ErrPeerTimeout: nothing was read from the peer for LivenessTimeout.
	ErrPeerTimeout = errors.New("mux: peer silent past the liveness timeout")

	// ErrOpenTimeout: the peer neither accepted nor refused a stream within
	// OpenTimeout.
	ErrOpenTimeout = errors.New("mux: peer did not answer a stream open")

	// ErrProtocol: the peer sent something yamux does not allow (bad
	// version or type, a frame larger than the window, a stream id of the
	// wrong side or already in use).
	ErrProtocol = errors.New("mux: protocol error")

	// ErrTooManyStreams: OpenStream at the MaxStreams cap.
	ErrTooManyStreams = errors.New("mux: too many concurrent streams")

	// ErrStreamReset: the peer reset the stream (it refused it, gave up on
	// it, or its side of a proxied connection was reset).
	ErrStreamReset = errors.New("mux: stream reset by peer")

	// ErrBadHeader: a stream header (see spec.md) is malformed.
	ErrBadHeader = errors.New("mux: bad stream header")

	// ErrUnknownTarget is what a DialFunc returns for a target it does not
	// serve; the opener then sees a DialError with StatusUnknownTarget.
	ErrUnknownTarget = errors.New("mux: unknown target")
)

// protocolError describes a bad frame header, quoting it.
func protocolError(reason string, hdr []byte) error {
	return fmt.Errorf("%w: %s (frame header % x)", ErrProtocol, reason, hdr)
}
