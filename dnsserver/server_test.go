package dnsserver

import (
	"context"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hydra-net/hydra/internal/testutil"
)

// startServer serves cat on a free loopback port until the test ends.
func startServer(t testing.TB, cat Catalog, cfg Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Logger = testutil.Logger(t)
	s, err := Listen(cat, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// field returns the i-th space-separated field of each record line.
func field(lines []string, i int) []string {
	var out []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > i {
			out = append(out, f[i])
		}
	}
	slices.Sort(out)
	return out
}

func TestDigA(t *testing.T) {
	s := startServer(t, testCatalog(), Config{})
	d := testutil.Dig(t, s.Addr(), "web.service.hydra", "A")
	if d.Status != "NOERROR" || !d.HasFlag("aa") {
		t.Fatalf("status %s flags %v, want NOERROR aa:\n%s", d.Status, d.Flags, d.Out)
	}
	if got := field(d.Answer, 4); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Fatalf("A %v, want 10.0.0.1 10.0.0.2:\n%s", got, d.Out)
	}
	d = testutil.Dig(t, s.Addr(), "WEB.service.hydra", "AAAA")
	if got := field(d.Answer, 4); !slices.Equal(got, []string{"fd00::7"}) {
		t.Fatalf("AAAA %v, want fd00::7:\n%s", got, d.Out)
	}
	if !strings.Contains(d.Out, "; EDNS: version: 0") {
		t.Errorf("dig's EDNS0 query got no OPT back:\n%s", d.Out)
	}
	d = testutil.Dig(t, s.Addr(), "+tcp", "web.service.hydra", "A")
	if got := field(d.Answer, 4); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) || !strings.Contains(d.Out, "(TCP)") {
		t.Fatalf("+tcp A %v, want 10.0.0.1 10.0.0.2 over TCP:\n%s", got, d.Out)
	}
}

// TestDigSRV: both forms; each target is in the additional section with
// the instance's own address (not the server's: consul#832).
func TestDigSRV(t *testing.T) {
	s := startServer(t, testCatalog(), Config{})
	for _, q := range []string{"web.service.hydra", "_web._tcp.service.hydra"} {
		d := testutil.Dig(t, s.Addr(), q, "SRV")
		if d.Status != "NOERROR" || len(d.Answer) != 4 {
			t.Fatalf("%s SRV: %s with %d answers, want NOERROR, 4:\n%s", q, d.Status, len(d.Answer), d.Out)
		}
		addr := map[string]string{}
		for _, l := range d.Additional {
			if f := strings.Fields(l); len(f) == 5 && (f[3] == "A" || f[3] == "AAAA") {
				addr[f[0]] = f[4]
			}
		}
		got := map[string]string{}
		for _, l := range d.Answer {
			f := strings.Fields(l) // name ttl IN SRV prio weight port target
			if a, ok := addr[f[7]]; ok {
				got[f[6]] = a
			} else {
				got[f[6]] = f[7]
			}
		}
		want := map[string]string{"8080": "10.0.0.1", "8081": "10.0.0.2", "8082": "fd00::7", "8083": "db.example.org."}
		for p, a := range want {
			if got[p] != a {
				t.Errorf("%s SRV port %s -> %q, want %s:\n%s", q, p, got[p], a, d.Out)
			}
		}
	}
	d := testutil.Dig(t, s.Addr(), "_media._udp.service.hydra", "SRV")
	if got := field(d.Answer, 6); !slices.Equal(got, []string{"5004"}) {
		t.Errorf("_media._udp SRV ports %v, want 5004:\n%s", got, d.Out)
	}
}

func TestDigNegative(t *testing.T) {
	s := startServer(t, testCatalog(), Config{})
	d := testutil.Dig(t, s.Addr(), "nope.service.hydra", "A")
	if d.Status != "NXDOMAIN" || len(d.Authority) != 1 || !strings.Contains(d.Authority[0], " SOA ") {
		t.Fatalf("unknown: %s, authority %v; want NXDOMAIN with the SOA:\n%s", d.Status, d.Authority, d.Out)
	}
	d = testutil.Dig(t, s.Addr(), "web.service.hydra", "TXT")
	if d.Status != "NOERROR" || len(d.Answer) != 0 || len(d.Authority) != 1 {
		t.Fatalf("known name, no TXT: %s with %d answers, want NOERROR, none, SOA:\n%s", d.Status, len(d.Answer), d.Out)
	}
	d = testutil.Dig(t, s.Addr(), "example.com", "A")
	if d.Status != "REFUSED" {
		t.Fatalf("outside the domain: %s, want REFUSED:\n%s", d.Status, d.Out)
	}
}

// TestDigTruncation: 300 instances do not fit in UDP: TC and at most the
// allowance over UDP; dig's retry over TCP gets every one.
func TestDigTruncation(t *testing.T) {
	s := startServer(t, newCatalog(many("big", 300)...), Config{})
	d := testutil.Dig(t, s.Addr(), "+ignore", "+bufsize=1232", "big.service.hydra", "A")
	if !d.HasFlag("tc") || len(d.Answer) >= 300 {
		t.Fatalf("UDP: flags %v, %d answers; want tc and fewer than 300:\n%s", d.Flags, len(d.Answer), d.Out)
	}
	if !strings.Contains(d.Out, "MSG SIZE  rcvd: ") {
		t.Fatalf("no size in:\n%s", d.Out)
	}
	d = testutil.Dig(t, s.Addr(), "big.service.hydra", "A")
	if d.HasFlag("tc") || len(d.Answer) != 300 || !strings.Contains(d.Out, "(TCP)") {
		t.Fatalf("retry: flags %v, %d answers; want all 300 over TCP:\n%s", d.Flags, len(d.Answer), d.Out)
	}
	d = testutil.Dig(t, s.Addr(), "big.service.hydra", "SRV")
	if len(d.Answer) != 300 || len(d.Additional) < 300 {
		t.Fatalf("SRV retry: %d answers, %d additional; want 300 each:\n%s", len(d.Answer), len(d.Additional), d.Out)
	}
}

// TestUDPAllowance: over UDP a reply is never longer than the request
// allows (512 without EDNS0, its size up to MaxUDPSize with), whatever
// the answer; garbage gets nothing or a bare header and costs nothing.
func TestUDPAllowance(t *testing.T) {
	s := startServer(t, newCatalog(many("big", 300)...), Config{MaxUDPSize: 1400})
	c, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 65536)
	roundTrip := func(q []byte) []byte {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(q); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
	for _, tc := range []struct {
		edns uint16
		max  int
	}{{0, 512}, {100, 512}, {1000, 1000}, {4096, 1400}, {65535, 1400}} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypeANY} {
			out := roundTrip(query("big.service.hydra.", qt, tc.edns))
			if len(out) > tc.max {
				t.Errorf("EDNS %d %s: %d bytes, allowance %d", tc.edns, dns.TypeToString[qt], len(out), tc.max)
			}
			m := new(dns.Msg)
			if err := m.Unpack(out); err != nil || !m.Truncated {
				t.Errorf("EDNS %d %s: %v, TC %v; want a truncated reply", tc.edns, dns.TypeToString[qt], err, m.Truncated)
			}
		}
	}
	// Garbage: a header with nonsense counts gets FORMERR of 12 bytes.
	g := []byte{1, 2, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}
	if out := roundTrip(g); len(out) != 12 || out[3]&0xf != dns.RcodeFormatError {
		t.Fatalf("garbage: %x, want a 12-byte FORMERR", out)
	}
	// The server still answers.
	if out := roundTrip(query("big.service.hydra.", dns.TypeA, 0)); len(out) < 12 {
		t.Fatal("no answer after garbage")
	}
}

// TestTCPBounds: a connection that sends nothing is closed after TCPIdle;
// queries on one connection are answered in order; Close ends everything.
func TestTCPBounds(t *testing.T) {
	base := runtime.NumGoroutine()
	cat := testCatalog()
	s, err := Listen(cat, Config{Addr: "127.0.0.1:0", TCPIdle: 200 * time.Millisecond, MaxTCPConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()

	idle, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatal("an idle connection got bytes")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("an idle connection was not closed by the server")
	}

	conn, err := dns.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"web.service.hydra.", "media.service.hydra.", "nope.service.hydra."} {
		m := new(dns.Msg)
		m.SetQuestion(q, dns.TypeA)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if err := conn.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
		r, err := conn.ReadMsg()
		if err != nil || r.Id != m.Id || r.Question[0].Name != q {
			t.Fatalf("%s: %v %v", q, r, err)
		}
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	conn.Close()
	idle.Close()
	testutil.CheckGoroutines(t, base)
}

// TestServeIPv6: the batched UDP path on an IPv6 socket.
func TestServeIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback")
	} else {
		ln.Close()
	}
	s := startServer(t, testCatalog(), Config{Addr: "[::1]:0"})
	m := new(dns.Msg)
	m.SetQuestion("web.service.hydra.", dns.TypeAAAA)
	for _, proto := range []string{"udp", "tcp"} {
		r, _, err := (&dns.Client{Net: proto, Timeout: 5 * time.Second}).Exchange(m, s.Addr())
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("%s: %v %v", proto, r, err)
		}
	}
}
