package zmtp

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
)

// HandshakeFailure is why a connection's handshake failed, as
// Socket.HandshakeFailures counts it.
type HandshakeFailure uint8

const (
	// FailTimeout: the handshake did not finish within HandshakeTimeout.
	FailTimeout HandshakeFailure = iota
	// FailClosed: the peer closed or reset the connection during it.
	FailClosed
	// FailGreeting: not a ZMTP 3.x greeting, or another mechanism.
	FailGreeting
	// FailSecurity: the mechanism's handshake failed (CURVE: a key not
	// allowed, a bad box).
	FailSecurity
	// FailSocketType: the peer's socket type cannot talk to this one.
	FailSocketType
	// FailOther: anything else (a write error, a malformed command).
	FailOther
	// FailLimit: refused or cut by a cap on connections (Config.Handshakes,
	// Config.Conns): too many from its source address, or in all.
	FailLimit

	numHandshakeFailures
)

var handshakeFailureNames = [numHandshakeFailures]string{"timeout", "closed", "greeting", "security", "socket_type", "other", "limit"}

// String is the reason's name, a Prometheus label value ("security").
func (f HandshakeFailure) String() string {
	if f < numHandshakeFailures {
		return handshakeFailureNames[f]
	}
	return "unknown"
}

// HandshakeFailures are a socket's failed handshakes by reason, indexed by
// HandshakeFailure.
type HandshakeFailures [numHandshakeFailures]int64

// hsCounters counts failed handshakes; the failing connection's goroutine
// adds, anybody reads.
type hsCounters [numHandshakeFailures]atomic.Int64

// HandshakeFailures returns how many handshakes failed on this socket since
// it was made, by reason; connections cut by Close are not counted.
func (s *Socket) HandshakeFailures() HandshakeFailures {
	var out HandshakeFailures
	for i := range s.hsCount {
		out[i] = s.hsCount[i].Load()
	}
	return out
}

// classifyHandshake names why err ended a handshake; mech tells whether it
// came from the security mechanism's part of it.
func classifyHandshake(err error, mech bool) HandshakeFailure {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return FailTimeout
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return FailClosed
	case errors.Is(err, ErrSocketType):
		return FailSocketType
	case errors.Is(err, ErrBadSignature) || errors.Is(err, ErrBadVersion) || errors.Is(err, ErrMechanism):
		return FailGreeting
	case mech:
		return FailSecurity
	}
	return FailOther
}
