package testutil

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Logger logs through t at Debug when HYDRA_TEST_LOG is set, and is nil
// (the parts' default: discard) otherwise.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("HYDRA_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// LogSink collects log records as "LEVEL message key=value ..." lines, so a
// test can check that a failure was logged with its reason.
type LogSink struct {
	mu   sync.Mutex
	recs []string
	ch   chan struct{}
}

// NewLogSink returns an empty sink.
func NewLogSink() *LogSink { return &LogSink{ch: make(chan struct{}, 1)} }

// Logger logs into the sink, every level.
func (l *LogSink) Logger() *slog.Logger { return slog.New(sinkHandler{l: l}) }

// Lines returns the records so far.
func (l *LogSink) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.recs...)
}

// WaitFor waits up to 15s for a record containing every part, and returns it.
func (l *LogSink) WaitFor(t testing.TB, parts ...string) string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		for _, r := range l.Lines() {
			ok := true
			for _, p := range parts {
				if !strings.Contains(r, p) {
					ok = false
					break
				}
			}
			if ok {
				return r
			}
		}
		select {
		case <-l.ch:
		case <-deadline:
			t.Fatalf("no log record with %q; got:\n%s", parts, strings.Join(l.Lines(), "\n"))
		}
	}
}

type sinkHandler struct {
	l     *LogSink
	attrs []slog.Attr
}

func (sinkHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h sinkHandler) Handle(_ context.Context, r slog.Record) error {
	var b bytes.Buffer
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.l.mu.Lock()
	h.l.recs = append(h.l.recs, b.String())
	h.l.mu.Unlock()
	select {
	case h.l.ch <- struct{}{}:
	default:
	}
	return nil
}

func (h sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return sinkHandler{l: h.l, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h sinkHandler) WithGroup(string) slog.Handler { return h }
