package registry

import (
	"context"
	"log/slog"
	"time"
)

// Replicator shares this server's entries with other servers and applies
// theirs (package join implements it). The server knows nothing of how: it
// tells the replicator what changed, hands it the messages that are link
// traffic, and gives it a Host to act on the registry.
//
// Contract: every method runs on the server's loop (Serve's goroutine), one
// at a time, and none may block (no I/O that waits, no lock a peer can
// hold): the loop serves every client. A replicator that dials other
// servers does that on goroutines of its own, which only move bytes and
// hand what they received to the loop with Host.Post. Start is called
// first, Stop last; after Stop nothing is called again.
type Replicator interface {
	// Start is called once when Serve starts, before any other method.
	// The Host is valid until Stop returns.
	Start(h *Host, now time.Time)
	// Interval is how often Tick is called. It is asked once, after Start.
	Interval() time.Duration
	// Tick is called every Interval (liveness, digests, timeouts).
	Tick(now time.Time)
	// Changed reports a change of an entry this server originates: typ is
	// EventRegister or EventUpdate (entry is the entry's JSON, valid
	// during the call only) or EventDeregister or EventExpire.
	Changed(typ EventType, instance string, entry []byte, now time.Time)
	// Sync handles a SYNC message the ROUTER received: env is its envelope
	// (routing id first), frames what follows the SYNC frame. A non-nil
	// error is sent back as the ERR reply (for a SYNC that is not link
	// traffic); otherwise the replicator answers, or not, as its protocol
	// says.
	Sync(env [][]byte, frames [][]byte, now time.Time) *Error
	// Join answers the JOIN verb; body is its JSON body (maybe empty).
	// The result is marshalled as the OK reply.
	Join(body []byte) (any, *Error)
	// Flush is called at the end of every loop iteration: send what the
	// iteration queued.
	Flush()
	// Info is INFO's "join" object, marshalled with encoding/json; nil
	// (untyped) leaves it out.
	Info(now time.Time) any
	// Stop is called once when the loop ends; it may wait for the
	// replicator's own goroutines, which must not wait for the loop (Post
	// returns false from then on).
	Stop()
}

// Host is what a Replicator may do to the server that runs it. Its methods
// run on the server's loop only (inside Replicator calls or functions given
// to Post), except Post, and the getters, which any goroutine may call.
type Host struct{ s *Server }

// ID is the server's id (Config.ServerID): the origin of its own entries.
func (h *Host) ID() string { return h.s.cfg.ServerID }

// Boot is the server's boot id, new at every start (PING's "boot").
func (h *Host) Boot() string { return h.s.boot }

// MaxRequestBytes is the largest message the server accepts.
func (h *Host) MaxRequestBytes() int64 { return h.s.cfg.MaxRequestBytes }

// MaxEntries bounds the entries the server holds from other servers.
func (h *Host) MaxEntries() int { return h.s.cfg.MaxEntries }

// Logger is the server's logger.
func (h *Host) Logger() *slog.Logger { return h.s.log }

// SocketLogger is the logger the server gives its ZMTP sockets: their
// per-peer news one level lower, as for the server's own socket.
func (h *Host) SocketLogger() *slog.Logger { return slog.New(quieter{h.s.log.Handler()}) }

// Send sends verb and body to the peer of env on the server's ROUTER
// without blocking: a peer that is gone (zmtp.ErrHostUnreachable) or whose
// queue is full does not get it.
func (h *Host) Send(env [][]byte, verb, body []byte) error { return h.s.send(env, verb, body) }

// Post hands fn to the server's loop, which runs it soon, and wakes the
// loop. It waits while the loop's inbox is full (backpressure on the
// caller) and gives up, false, when done is closed or the server is closed
// (then fn never runs; nor does it when the loop ends before taking it).
// Posted before Serve, fn runs when Serve starts. Any goroutine may call
// it.
func (h *Host) Post(done <-chan struct{}, fn func()) bool { return h.s.post(done, fn) }

// Wake makes the loop run another iteration soon, and so call Flush, even
// when no message arrives: a replicator that left work for later (a large
// snapshot sent a slice per iteration) calls it from Flush. It never
// blocks; any goroutine may call it.
func (h *Host) Wake() {
	select {
	case h.s.inbox <- func() {}:
		h.s.wake()
	default:
		// The inbox is full: the loop runs it, and flushes, anyway.
	}
}

// RemoteEntry is an entry another server originates, checked by
// ParseEntry and ready for SetRemote.
type RemoteEntry struct{ e *entry }

// Instance is the entry's instance id.
func (r RemoteEntry) Instance() string { return r.e.Instance }

// Origin is the id of the server the entry lives on.
func (r RemoteEntry) Origin() string { return r.e.Origin }

// JSON is the entry's JSON as this server encodes it (read-only).
func (r RemoteEntry) JSON() []byte { return r.e.enc }

// ParseEntry decodes an entry (PROTOCOL.md, "Entries") that a peer sent as
// one of origin's, and checks it as a registration is checked.
func (h *Host) ParseEntry(raw []byte, origin string) (RemoteEntry, error) {
	e, err := h.s.parseRemoteEntry(raw, origin)
	return RemoteEntry{e}, err
}

// SetRemote stores e as its origin's copy of its instance (replacing the
// previous copy), and shows it if it is the best copy (Server docs, "join").
// It refuses a new copy with a CodeLimit *Error when the server holds
// MaxEntries copies already.
func (h *Host) SetRemote(e RemoteEntry) error {
	if err := h.s.remoteSet(e.e, time.Now()); err != nil {
		return err
	}
	return nil
}

// DeleteRemote removes origin's copy of instance; typ (EventDeregister or
// EventExpire) is the event watchers get if no other copy replaces it.
func (h *Host) DeleteRemote(origin, instance string, typ EventType) {
	h.s.remoteDel(origin, instance, typ, time.Now())
}

// DeleteOrigin removes every copy of origin's entries (typ as for
// DeleteRemote) and returns how many there were.
func (h *Host) DeleteOrigin(origin string, typ EventType) int {
	return h.s.remoteDelOrigin(origin, typ, time.Now())
}

// EachEntry calls fn with the instance and JSON (read-only, valid during
// the call) of every entry of origin the server holds: its own entries
// (static ones included) when origin is ID(), else the copies of origin's.
// fn must not change the registry.
func (h *Host) EachEntry(origin string, fn func(instance string, entry []byte)) {
	s := h.s
	if origin == s.cfg.ServerID {
		for _, e := range s.st.entries {
			if e.Origin == origin {
				fn(e.Instance, e.enc)
			}
		}
		return
	}
	for _, e := range s.remote.origins[origin] {
		fn(e.Instance, e.enc)
	}
}

// Entries is the number of entries of origin the server holds.
func (h *Host) Entries(origin string) int {
	s := h.s
	if origin == s.cfg.ServerID {
		return len(s.st.entries) - s.remote.visible
	}
	return len(s.remote.origins[origin])
}

// RemoteEntries is the number of copies of other servers' entries held.
func (h *Host) RemoteEntries() int { return h.s.remote.ncopies }

// ---- The loop's inbox: functions other goroutines run on the loop ----

// post queues fn for the loop (Host.Post, and Local's calls).
func (s *Server) post(done <-chan struct{}, fn func()) bool {
	if s.closed.Load() {
		return false
	}
	select {
	case <-s.loopDone:
		return false
	default:
	}
	select {
	case s.inbox <- fn:
		s.wake()
		return true
	case <-done:
		return false
	case <-s.loopDone:
		return false
	}
}

// wake makes the loop's receive return, so that it reads the inbox.
func (s *Server) wake() {
	if s.woken.Load() {
		return
	}
	s.wakeMu.Lock()
	if !s.woken.Load() {
		s.woken.Store(true)
		s.wakeFn()
	}
	s.wakeMu.Unlock()
}

// recvContext is the context the loop receives with: cancelled by wake.
func (s *Server) recvContext() context.Context {
	if s.woken.Load() {
		s.wakeMu.Lock()
		s.wakeCtx, s.wakeFn = context.WithCancel(context.Background())
		s.woken.Store(false)
		s.wakeMu.Unlock()
	}
	return s.wakeCtx
}

// loopStart runs in Serve before the loop: the replicator and its ticker.
func (s *Server) loopStart(now time.Time) {
	if s.repl == nil {
		return
	}
	s.repl.Start(s.host, now)
	s.tickEvery = s.repl.Interval()
	if s.tickEvery <= 0 {
		s.tickEvery = time.Second
	}
	s.lastTick = now
	s.tickerDone = make(chan struct{})
	go func() {
		defer close(s.tickerDone)
		t := time.NewTicker(s.tickEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.wake()
			case <-s.loopDone:
				return
			}
		}
	}()
}

// loopStop runs when the loop ends: Post refuses from now on, the
// replicator stops, and what is left in the inbox is dropped (its posters
// see the loop gone).
func (s *Server) loopStop() {
	s.endLoop()
	if s.repl != nil {
		<-s.tickerDone
		s.repl.Stop()
	}
	for {
		select {
		case <-s.inbox:
		default:
			return
		}
	}
}

// endLoop closes loopDone once: the loop ended, or will never run.
func (s *Server) endLoop() { s.loopOnce.Do(func() { close(s.loopDone) }) }

// poll runs at the top of every loop iteration: it runs what was posted,
// ticks the replicator when due, and returns the context the loop's
// receive is to use.
func (s *Server) poll() context.Context {
	if !s.woken.Load() {
		return s.wakeCtx // nothing new: the request path pays one atomic load
	}
	ctx := s.recvContext()
	busy := false
	if n := len(s.inbox); n > 0 {
		for range n {
			(<-s.inbox)()
		}
		busy = true
	}
	if s.repl != nil {
		if now := time.Now(); now.Sub(s.lastTick) >= s.tickEvery {
			s.lastTick = now
			s.repl.Tick(now)
			busy = true
		}
	}
	if busy {
		s.flush()
		s.updateGauges()
	}
	return ctx
}

// flush lets the replicator send what this iteration queued.
func (s *Server) flush() {
	if s.repl != nil {
		s.repl.Flush()
	}
}
