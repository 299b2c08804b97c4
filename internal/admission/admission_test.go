package admission

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
)

func tcp(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestPerSourceAndTotal(t *testing.T) {
	l := New(Config{PerSource: 2, Total: 3})
	a1, err := l.Acquire(tcp("10.0.0.1:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(tcp("10.0.0.1:2"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(tcp("10.0.0.1:3"), nil); !errors.Is(err, ErrSourceFull) {
		t.Fatalf("third from one source: %v, want ErrSourceFull", err)
	}
	if _, err := l.Acquire(tcp("10.0.0.2:1"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(tcp("10.0.0.3:1"), nil); !errors.Is(err, ErrFull) {
		t.Fatalf("past the total: %v, want ErrFull", err)
	}
	a1.Release()
	a1.Release() // a second release must not free a second slot
	if n, srcs := l.Held(); n != 2 || srcs != 2 {
		t.Fatalf("held %d from %d sources, want 2 from 2", n, srcs)
	}
	if _, err := l.Acquire(tcp("10.0.0.3:1"), nil); err != nil {
		t.Fatal(err)
	}
}

// TestEvictTakesFromTheHeaviest: with the total reached, a newcomer from a
// source holding nothing takes the oldest slot of the source holding the
// most; a newcomer from that source itself is refused.
func TestEvictTakesFromTheHeaviest(t *testing.T) {
	l := New(Config{Total: 4, Evict: true})
	var mu sync.Mutex
	var evicted []int
	var slots []*Slot
	for i := range 3 {
		s, err := l.Acquire(tcp("10.0.0.1:1"), func() { mu.Lock(); evicted = append(evicted, i); mu.Unlock() })
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, s)
	}
	if _, err := l.Acquire(tcp("10.0.0.2:1"), func() { t.Error("the light source was evicted") }); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(tcp("10.0.0.1:9"), nil); !errors.Is(err, ErrFull) {
		t.Fatalf("heaviest source asking for more: %v, want ErrFull", err)
	}
	if _, err := l.Acquire(tcp("10.0.0.3:1"), nil); err != nil {
		t.Fatalf("newcomer not admitted: %v", err)
	}
	if len(evicted) != 1 || evicted[0] != 0 {
		t.Fatalf("evicted %v, want the oldest of the heaviest source ([0])", evicted)
	}
	slots[0].Release() // already released by the eviction: no effect
	if n, _ := l.Held(); n != 4 {
		t.Fatalf("held %d, want 4", n)
	}
	// Two sources of two each and a third with one: no source holds more
	// than a newcomer's would, so nobody is evicted.
	if _, err := l.Acquire(tcp("10.0.0.4:1"), nil); err != nil {
		t.Fatalf("10.0.0.4 against a source of 2: %v", err)
	}
	if _, err := l.Acquire(tcp("10.0.0.5:1"), nil); !errors.Is(err, ErrFull) {
		t.Fatalf("with every source at 1: %v, want ErrFull", err)
	}
}

func TestSource(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{tcp("192.0.2.7:80"), "192.0.2.7/32"},
		{tcp("[::ffff:192.0.2.7]:80"), "192.0.2.7/32"},
		{tcp("[2001:db8:1:2:3:4:5:6]:80"), "2001:db8:1:2::/64"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 53}, "2001:db8::/64"},
	} {
		p, ok := Source(c.addr)
		if !ok || p.String() != c.want {
			t.Errorf("Source(%v) = %v, %v; want %s", c.addr, p, ok, c.want)
		}
	}
	if _, ok := Source(&net.UnixAddr{Name: "/tmp/x", Net: "unix"}); ok {
		t.Error("a unix address has a source")
	}
	// Non-IP addresses share one source that only the total bounds.
	l := New(Config{PerSource: 1, Total: 2})
	for range 2 {
		if _, err := l.Acquire(&net.UnixAddr{Name: "@", Net: "unix"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Acquire(&net.UnixAddr{Name: "@", Net: "unix"}, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("third pipe: %v, want ErrFull", err)
	}
}

func TestNilLimiterAdmitsAll(t *testing.T) {
	var l *Limiter
	s, err := l.Acquire(tcp("10.0.0.1:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
}
