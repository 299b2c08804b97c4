package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextStaysInUpperHalfAndDoubles(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 800 * time.Millisecond}
	steps := []time.Duration{100, 200, 400, 800, 800, 800}
	for i, s := range steps {
		s *= time.Millisecond
		for range 50 {
			bb := b
			d := bb.Next()
			if d < s/2 || d > s {
				t.Fatalf("attempt %d: wait %v outside [%v, %v]", i, d, s/2, s)
			}
		}
		b.Next()
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Fatalf("after Reset: wait %v, want at most Min", d)
	}
}

func TestZeroValueUsesDefaults(t *testing.T) {
	var b Backoff
	if d := b.Next(); d < DefaultMin/2 || d > DefaultMin {
		t.Fatalf("first wait %v, want within [%v, %v]", d, DefaultMin/2, DefaultMin)
	}
	for range 20 {
		if d := b.Next(); d > DefaultMax {
			t.Fatalf("wait %v above DefaultMax", d)
		}
	}
}

func TestSleepStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported a full wait on a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep reported an interrupted wait")
	}
}
