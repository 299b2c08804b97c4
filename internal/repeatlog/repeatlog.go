// Package repeatlog logs a failure that repeats (a redial that fails the
// same way every time) once per cause, with a count, instead of at every
// attempt.
package repeatlog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Every is how often a cause that keeps repeating is said again, with its
// count so far.
const Every = time.Minute

// Failures is the failure state of one thing that is retried (one peer).
// Its zero value is ready; it is not safe for concurrent use: its owner
// (a dialling goroutine, a loop) calls it.
type Failures struct {
	cause string
	count int // failures with cause since it was last logged
	total int // failures with cause in all
	at    time.Time
}

// Fail records a failure with cause (the error text, the part that stays
// the same from one attempt to the next). The first failure of a cause is
// logged at Warn as msg with args and cause; the same cause again is only
// counted, and said again (with "repeated") once Every while it lasts. A new
// cause is logged at once, and says how often the previous one repeated.
// It reports whether it logged.
func (f *Failures) Fail(log *slog.Logger, msg, cause string, args ...any) bool {
	now := time.Now()
	if cause == f.cause && f.total > 0 {
		f.count++
		f.total++
		if now.Sub(f.at) < Every {
			return false
		}
		log.Warn(msg, append(args, "cause", cause, "repeated", f.count, "failures", f.total)...)
		f.count, f.at = 0, now
		return true
	}
	if f.total > 1 {
		args = append(args, "previous_cause", f.cause, "previous_failures", f.total)
	}
	f.cause, f.count, f.total, f.at = cause, 0, 1, now
	log.Warn(msg, append(args, "cause", cause)...)
	return true
}

// Failing reports how many failures in a row there were with the current
// cause, and the cause; 0 once OK is called.
func (f *Failures) Failing() (int, string) { return f.total, f.cause }

// OK ends a run of failures: if there was one, msg is logged at Info with
// args and the number of failures, and the state is reset.
func (f *Failures) OK(log *slog.Logger, msg string, args ...any) {
	if f.total == 0 {
		return
	}
	log.Info(msg, append(args, "after_failures", f.total, "last_cause", f.cause)...)
	*f = Failures{}
}

// Handler wraps h so that records whose message is one of msgs are logged
// once per cause (the message and its "err" attribute), as Failures.Fail
// does: a cause seen again is counted and said again, with "repeated", once
// Every. Other records pass through. For a library's per-attempt failure
// logs (noise's "handshake failed" at a tunnel's responder, one per dial of
// a misconfigured peer). It keeps at most 256 causes.
func Handler(h slog.Handler, msgs ...string) slog.Handler {
	return &handler{h: h, st: &handlerState{msgs: msgs, seen: map[string]*seen{}}}
}

type handler struct {
	h  slog.Handler
	st *handlerState
}

type handlerState struct {
	mu   sync.Mutex
	msgs []string
	seen map[string]*seen
}

type seen struct {
	at    time.Time
	count int // since last logged
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if !slices.Contains(h.st.msgs, r.Message) {
		return h.h.Handle(ctx, r)
	}
	cause := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			cause += "\x00" + a.Value.String()
			return false
		}
		return true
	})
	now := time.Now()
	st := h.st
	st.mu.Lock()
	s := st.seen[cause]
	if s != nil && now.Sub(s.at) < Every {
		s.count++
		st.mu.Unlock()
		return nil
	}
	repeated := 0
	if s != nil {
		repeated = s.count
	} else {
		if len(st.seen) >= 256 {
			clear(st.seen)
		}
		s = &seen{}
		st.seen[cause] = s
	}
	s.at, s.count = now, 0
	st.mu.Unlock()
	if repeated > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", repeated))
	}
	return h.h.Handle(ctx, r)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{h: h.h.WithAttrs(as), st: h.st}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h: h.h.WithGroup(name), st: h.st}
}
