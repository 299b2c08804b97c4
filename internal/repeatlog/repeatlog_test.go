package repeatlog

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/hydra-net/hydra/internal/testutil"
)

// TestOncePerCause: ten identical failures log one line; a new cause logs
// at once with the count of the previous one; OK says how many failed.
func TestOncePerCause(t *testing.T) {
	sink := testutil.NewLogSink()
	log := sink.Logger()
	var f Failures
	for range 10 {
		f.Fail(log, "dial failed", "connection refused", "peer", "x")
	}
	f.Fail(log, "dial failed", "no such host", "peer", "x")
	f.OK(log, "dial worked", "peer", "x")
	got := strings.Join(sink.Lines(), "\n")
	if n := strings.Count(got, " cause=connection refused"); n != 1 {
		t.Errorf("refused logged %d times, want 1:\n%s", n, got)
	}
	for _, want := range []string{"previous_failures=10", "cause=no such host", "after_failures=1"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}
	if n, _ := f.Failing(); n != 0 {
		t.Errorf("Failing after OK: %d", n)
	}
}

// TestHandler: a library's per-attempt record is passed once per err, the
// others always.
func TestHandler(t *testing.T) {
	sink := testutil.NewLogSink()
	log := slog.New(Handler(sink.Logger().Handler(), "handshake failed"))
	for i := range 5 {
		log.Info("handshake failed", "remote", i, "err", "not authorized")
		log.Info("handshake failed", "remote", i, "err", "does not decrypt")
		log.Info("accepted", "remote", i)
	}
	got := strings.Join(sink.Lines(), "\n")
	if n := strings.Count(got, "handshake failed"); n != 2 {
		t.Errorf("handshake failed logged %d times, want 2:\n%s", n, got)
	}
	if n := strings.Count(got, "accepted"); n != 5 {
		t.Errorf("accepted logged %d times, want 5:\n%s", n, got)
	}
}
