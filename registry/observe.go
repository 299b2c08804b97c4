package registry

import (
	"context"
	"sync/atomic"

	"github.com/hydra-net/hydra/zmtp"
)

// countedVerbs are the verbs Server.Requests counts by name; a request
// whose verb is none of them (or is missing) counts as "other", so that a
// client sending garbage cannot grow the set.
var countedVerbs = [...]string{VerbPing, VerbInfo, VerbRegister, VerbUpdate, VerbHeartbeat,
	VerbDeregister, VerbLookup, VerbList, VerbWatch, VerbUnwatch, VerbJoin, VerbLeave, "other"}

// verbCounters are requests by verb (countedVerbs' index) and result
// (0 ok, 1 error): atomic adds on the loop, read by anybody.
type verbCounters [len(countedVerbs)][2]atomic.Int64

func verbIndex(verb string) int {
	for i, v := range countedVerbs[:len(countedVerbs)-1] {
		if v == verb {
			return i
		}
	}
	return len(countedVerbs) - 1
}

// countRequest counts one answered request (SYNC link traffic is not one).
func (s *Server) countRequest(verb string, failed bool) {
	r := 0
	if failed {
		r = 1
	}
	s.stats.verbs[verbIndex(verb)][r].Add(1)
}

// VerbCount is how many requests of one verb a server answered, by result.
type VerbCount struct {
	Verb   string // a Verb* constant, or "other" (unknown or missing)
	OK     int64  // answered with OK
	Errors int64  // answered with ERR
}

// Requests returns the requests answered since the server started, by
// verb, every counted verb included (zeros too); safe to call at any time.
func (s *Server) Requests() []VerbCount {
	out := make([]VerbCount, len(countedVerbs))
	for i, v := range countedVerbs {
		out[i] = VerbCount{Verb: v, OK: s.stats.verbs[i][0].Load(), Errors: s.stats.verbs[i][1].Load()}
	}
	return out
}

// HandshakeFailures are the failed ZMTP handshakes on the server's port
// (zmtp.Socket.HandshakeFailures): a client refused by CURVE, a port scan.
func (s *Server) HandshakeFailures() zmtp.HandshakeFailures { return s.sock.HandshakeFailures() }

// Info returns what INFO answers, made on the loop like a request (join's
// state lives there). It fails with ctx's error when the loop does not
// take it in time, and with ErrClosed once the server is closed.
func (l *Local) Info(ctx context.Context) (Info, error) {
	var in Info
	err := l.call(ctx, func() { in = l.s.info() })
	return in, err
}

// Ping returns once the loop ran a no-op: the loop is alive and keeps up.
// It fails with ctx's error when the loop does not answer in time (or has
// not started serving), and with ErrClosed once the server is closed.
func (l *Local) Ping(ctx context.Context) error { return l.call(ctx, func() {}) }
