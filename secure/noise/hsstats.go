package noise

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"

	"github.com/hydra-net/hydra/secure"
)

// HandshakeFailure is why a Responder refused or failed a handshake, as
// Responder.HandshakeFailures counts it.
type HandshakeFailure uint8

const (
	FailRateLimited  HandshakeFailure = iota // its source is over HandshakeRate
	FailBusy                                 // MaxHandshakes were running (Listener)
	FailTimeout                              // not done within HandshakeTimeout
	FailClosed                               // the initiator hung up or reset
	FailPreamble                             // not a tunnel preamble (not hydra, a port scan)
	FailUnauthorized                         // a static key Peers does not allow
	FailHandshake                            // a message that does not decrypt or parse
	FailOther                                // anything else (cancelled by a stop is not counted)
	FailSourceBusy                           // MaxHandshakesPerSource were running for its source (Listener)
	FailEvicted                              // its slot went to a newcomer (ErrEvicted)

	numHandshakeFailures
)

var handshakeFailureNames = [numHandshakeFailures]string{"rate_limited", "busy", "timeout", "closed", "preamble", "unauthorized", "handshake", "other", "source_busy", "evicted"}

// String is the reason's name, a Prometheus label value ("unauthorized").
func (f HandshakeFailure) String() string {
	if f < numHandshakeFailures {
		return handshakeFailureNames[f]
	}
	return "unknown"
}

// HandshakeFailures are a Responder's failed handshakes, indexed by
// HandshakeFailure.
type HandshakeFailures [numHandshakeFailures]int64

type hsCounters [numHandshakeFailures]atomic.Int64

// HandshakeFailures returns the handshakes r (and its Listeners) refused
// or failed since it was made, by reason.
func (r *Responder) HandshakeFailures() HandshakeFailures {
	var out HandshakeFailures
	for i := range r.fails {
		out[i] = r.fails[i].Load()
	}
	return out
}

// classifyHandshake names why err ended a responder's handshake; the
// order matters: a timeout while reading the preamble is a timeout, a
// hang-up before it is closed, a handshake message cut short is a bad
// message.
func classifyHandshake(err error) HandshakeFailure {
	switch {
	case errors.Is(err, ErrEvicted):
		return FailEvicted
	case errors.Is(err, ErrRateLimited):
		return FailRateLimited
	case errors.Is(err, ErrHandshakeTimeout):
		return FailTimeout
	case errors.Is(err, secure.ErrUnauthorized):
		return FailUnauthorized
	case errors.Is(err, ErrHandshake): // a message too short included
		return FailHandshake
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return FailClosed
	case errors.Is(err, ErrPreamble):
		return FailPreamble
	}
	return FailOther
}
