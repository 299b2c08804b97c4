package dnsserver

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func testCatalog() *fakeCatalog {
	return newCatalog(
		entry("web", "10.0.0.1", 8080, "http"),
		entry("web", "10.0.0.2", 8081, "http"),
		entry("web", "fd00::7", 8082, "tcp"),
		entry("web", "db.example.org", 8083, "tcp"),
		entry("Media", "10.0.0.9", 5004, "udp"),
		entry("Media", "10.0.0.10", 5005, "tcp"),
	)
}

func addrs(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	slices.Sort(out)
	return out
}

func TestAnswerA(t *testing.T) {
	r := newResponder(t, testCatalog(), Config{TTL: 30 * time.Second})
	m, _ := ask(t, r, "web.service.hydra.", dns.TypeA, 0, true)
	if m.Rcode != dns.RcodeSuccess || !m.Authoritative {
		t.Fatalf("rcode %s aa %v, want NOERROR aa", dns.RcodeToString[m.Rcode], m.Authoritative)
	}
	// The host name instance is left out of A (it has no address to give).
	if got := addrs(m.Answer); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Fatalf("A = %v, want 10.0.0.1 10.0.0.2", got)
	}
	if m.Answer[0].Header().Ttl != 30 {
		t.Errorf("TTL %d, want 30", m.Answer[0].Header().Ttl)
	}
	m, _ = ask(t, r, "web.service.hydra.", dns.TypeAAAA, 0, true)
	if got := addrs(m.Answer); !slices.Equal(got, []string{"fd00::7"}) {
		t.Fatalf("AAAA = %v, want fd00::7", got)
	}
}

func TestAnswerCaseInsensitive(t *testing.T) {
	r := newResponder(t, testCatalog(), Config{})
	for _, q := range []string{"MEDIA.service.hydra.", "media.SERVICE.Hydra.", "WeB.SeRvIcE.HYDRA."} {
		m, _ := ask(t, r, q, dns.TypeA, 0, true)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 {
			t.Errorf("%s: rcode %s, %d answers; want NOERROR, 2", q, dns.RcodeToString[m.Rcode], len(m.Answer))
		}
		if m.Question[0].Name != q {
			t.Errorf("question %q, want the client's spelling %q", m.Question[0].Name, q)
		}
	}
}

func TestAnswerShuffled(t *testing.T) {
	r := newResponder(t, newCatalog(many("web", 8)...), Config{})
	first := map[string]bool{}
	for range 200 {
		m, _ := ask(t, r, "web.service.hydra.", dns.TypeA, 0, true)
		if len(m.Answer) != 8 {
			t.Fatalf("%d answers, want 8", len(m.Answer))
		}
		first[m.Answer[0].(*dns.A).A.String()] = true
	}
	if len(first) < 2 {
		t.Fatalf("200 answers all start with %v: not shuffled", first)
	}
}

func TestAnswerSRV(t *testing.T) {
	r := newResponder(t, testCatalog(), Config{})
	for _, tc := range []struct {
		q     string
		ports []uint16
	}{
		{"web.service.hydra.", []uint16{8080, 8081, 8082, 8083}},
		{"_web._tcp.service.hydra.", []uint16{8080, 8081, 8082, 8083}}, // http is over TCP
		{"_media._udp.service.hydra.", []uint16{5004}},
		{"_media._tcp.service.hydra.", []uint16{5005}},
	} {
		m, _ := ask(t, r, tc.q, dns.TypeSRV, 0, true)
		var ports []uint16
		extra := map[string]string{}
		for _, rr := range m.Extra {
			switch rr := rr.(type) {
			case *dns.A:
				extra[rr.Hdr.Name] = rr.A.String()
			case *dns.AAAA:
				extra[rr.Hdr.Name] = rr.AAAA.String()
			}
		}
		for _, rr := range m.Answer {
			srv := rr.(*dns.SRV)
			ports = append(ports, srv.Port)
			want := map[uint16]string{8080: "10.0.0.1", 8081: "10.0.0.2", 8082: "fd00::7", 5004: "10.0.0.9", 5005: "10.0.0.10"}[srv.Port]
			if srv.Port == 8083 {
				if srv.Target != "db.example.org." {
					t.Errorf("%s: target of the host-name instance %q, want db.example.org.", tc.q, srv.Target)
				}
				continue
			}
			if extra[srv.Target] != want {
				t.Errorf("%s: port %d target %s resolves in additional to %q, want %s (its own address)", tc.q, srv.Port, srv.Target, extra[srv.Target], want)
			}
			// The target resolves to the same address when asked directly.
			qt := uint16(dns.TypeA)
			if strings.Contains(want, ":") {
				qt = dns.TypeAAAA
			}
			m2, _ := ask(t, r, strings.ToUpper(srv.Target), qt, 0, true)
			if got := addrs(m2.Answer); !slices.Equal(got, []string{want}) {
				t.Errorf("%s %s = %v, want %s", srv.Target, dns.TypeToString[qt], got, want)
			}
		}
		slices.Sort(ports)
		if !slices.Equal(ports, tc.ports) {
			t.Errorf("%s SRV ports %v, want %v", tc.q, ports, tc.ports)
		}
	}
}

func TestAnswerNegative(t *testing.T) {
	r := newResponder(t, testCatalog(), Config{TTL: 5 * time.Second})
	for _, tc := range []struct {
		q     string
		t     uint16
		rcode int
		soa   bool
	}{
		{"nope.service.hydra.", dns.TypeA, dns.RcodeNameError, true},
		{"_nope._tcp.service.hydra.", dns.TypeSRV, dns.RcodeNameError, true},
		{"_web._udp.service.hydra.", dns.TypeSRV, dns.RcodeNameError, true}, // no UDP instance
		{"web.nothing.hydra.", dns.TypeA, dns.RcodeNameError, true},
		{"zzzz.addr.hydra.", dns.TypeA, dns.RcodeNameError, true},
		{"web.service.hydra.", dns.TypeMX, dns.RcodeSuccess, true}, // known name, no such type
		{"_web._tcp.service.hydra.", dns.TypeA, dns.RcodeSuccess, true},
		{"0a000001.addr.hydra.", dns.TypeAAAA, dns.RcodeSuccess, true},
		{"service.hydra.", dns.TypeA, dns.RcodeSuccess, true},
		{"hydra.", dns.TypeA, dns.RcodeSuccess, true},
		{"web.service.example.", dns.TypeA, dns.RcodeRefused, false},
		{"xhydra.", dns.TypeA, dns.RcodeRefused, false},
		{".", dns.TypeNS, dns.RcodeRefused, false},
	} {
		m, _ := ask(t, r, tc.q, tc.t, 0, true)
		if m.Rcode != tc.rcode || len(m.Answer) != 0 {
			t.Errorf("%s %s: %s with %d answers, want %s and none", tc.q, dns.TypeToString[tc.t], dns.RcodeToString[m.Rcode], len(m.Answer), dns.RcodeToString[tc.rcode])
			continue
		}
		hasSOA := len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == dns.TypeSOA
		if hasSOA != tc.soa {
			t.Errorf("%s %s: SOA in authority %v, want %v", tc.q, dns.TypeToString[tc.t], hasSOA, tc.soa)
		}
		if hasSOA && m.Ns[0].(*dns.SOA).Minttl != 5 {
			t.Errorf("SOA minimum %d, want the TTL 5", m.Ns[0].(*dns.SOA).Minttl)
		}
	}
	m, _ := ask(t, r, "Hydra.", dns.TypeSOA, 0, true)
	if len(m.Answer) != 1 || m.Answer[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("apex SOA: %v", m.Answer)
	}
}

func TestAnswerFollowsCatalog(t *testing.T) {
	cat := testCatalog()
	r := newResponder(t, cat, Config{})
	if m, _ := ask(t, r, "late.service.hydra.", dns.TypeA, 0, true); m.Rcode != dns.RcodeNameError {
		t.Fatalf("before: %s", dns.RcodeToString[m.Rcode])
	}
	cat.set(entry("late", "10.9.9.9", 1, "tcp"))
	if m, _ := ask(t, r, "late.service.hydra.", dns.TypeA, 0, true); !slices.Equal(addrs(m.Answer), []string{"10.9.9.9"}) {
		t.Fatalf("after register: %v", m.Answer)
	}
	cat.remove("late")
	if m, _ := ask(t, r, "late.service.hydra.", dns.TypeA, 0, true); m.Rcode != dns.RcodeNameError {
		t.Fatalf("after deregister: %s %v", dns.RcodeToString[m.Rcode], m.Answer)
	}
}

func TestAnswerEDNSAndTruncation(t *testing.T) {
	r := newResponder(t, newCatalog(many("big", 300)...), Config{})
	// No EDNS0: 512 bytes at most, TC, no OPT.
	m, n := ask(t, r, "big.service.hydra.", dns.TypeA, 0, true)
	if n > 512 || !m.Truncated || m.IsEdns0() != nil {
		t.Fatalf("plain UDP: %d bytes, TC %v, OPT %v; want <= 512, TC, no OPT", n, m.Truncated, m.IsEdns0() != nil)
	}
	// EDNS0 1000: honoured, OPT in the reply.
	m, n = ask(t, r, "big.service.hydra.", dns.TypeA, 1000, true)
	if n > 1000 || !m.Truncated || m.IsEdns0() == nil {
		t.Fatalf("EDNS 1000: %d bytes, TC %v, OPT %v; want <= 1000, TC, OPT", n, m.Truncated, m.IsEdns0() != nil)
	}
	if got := m.IsEdns0().UDPSize(); got != DefaultMaxUDPSize {
		t.Errorf("our OPT advertises %d, want %d", got, DefaultMaxUDPSize)
	}
	// EDNS0 65000: capped at MaxUDPSize.
	if _, n = ask(t, r, "big.service.hydra.", dns.TypeA, 65000, true); n > DefaultMaxUDPSize {
		t.Errorf("EDNS 65000: %d bytes, want <= MaxUDPSize %d", n, DefaultMaxUDPSize)
	}
	// TCP: everything.
	m, _ = ask(t, r, "big.service.hydra.", dns.TypeA, 0, false)
	if len(m.Answer) != 300 || m.Truncated {
		t.Fatalf("TCP: %d answers TC %v, want 300, no TC", len(m.Answer), m.Truncated)
	}
	m, _ = ask(t, r, "big.service.hydra.", dns.TypeSRV, 0, false)
	if len(m.Answer) != 300 || len(m.Extra) != 300 || m.Truncated {
		t.Fatalf("TCP SRV: %d answers %d extra TC %v, want 300, 300, no TC", len(m.Answer), len(m.Extra), m.Truncated)
	}
}

func TestAnswerBadRequests(t *testing.T) {
	r := newResponder(t, testCatalog(), Config{})
	q := query("web.service.hydra.", dns.TypeA, 0)
	// A response is never answered.
	resp := slices.Clone(q)
	resp[2] |= bitQR
	if out := r.Respond(nil, resp, true); out != nil {
		t.Errorf("a response got a reply of %d bytes", len(out))
	}
	for _, tc := range []struct {
		name  string
		edit  func(*dns.Msg)
		rcode int
	}{
		{"opcode", func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }, dns.RcodeNotImplemented},
		{"two questions", func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, dns.RcodeFormatError},
		{"no question", func(m *dns.Msg) { m.Question = nil }, dns.RcodeFormatError},
		{"chaos", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }, dns.RcodeRefused},
		{"edns version 1", func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }, dns.RcodeBadVers},
	} {
		m := new(dns.Msg)
		m.SetQuestion("web.service.hydra.", dns.TypeA)
		tc.edit(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		out := r.Respond(nil, b, true)
		got := new(dns.Msg)
		if err := got.Unpack(out); err != nil {
			t.Fatalf("%s: reply does not parse: %v", tc.name, err)
		}
		if got.Rcode != tc.rcode || got.Id != m.Id {
			t.Errorf("%s: %s id %d, want %s id %d", tc.name, dns.RcodeToString[got.Rcode], got.Id, dns.RcodeToString[tc.rcode], m.Id)
		}
	}
}

// TestTruncatedPrefixes: every prefix of valid queries gets no reply or a
// well-formed one no longer than 512 bytes (the allowance of a query
// without EDNS0), never a panic. (A prefix may still parse: the parser
// forgives a cut additional section, and a cut name may be another name.)
func TestTruncatedPrefixes(t *testing.T) {
	r := newResponder(t, newCatalog(many("web", 100)...), Config{})
	for _, q := range [][]byte{
		query("web.service.hydra.", dns.TypeA, 0),
		query("_web._tcp.service.hydra.", dns.TypeSRV, 4096),
		query("nope.service.hydra.", dns.TypeAAAA, 1232),
	} {
		for i := range len(q) {
			out := r.Respond(nil, q[:i], true)
			if i < hdrLen && out != nil {
				t.Fatalf("prefix %d: a reply to less than a header", i)
			}
			if out == nil {
				continue
			}
			if len(out) > 512 {
				t.Fatalf("prefix %d: %d bytes, more than 512", i, len(out))
			}
			m := new(dns.Msg)
			if err := m.Unpack(out); err != nil {
				t.Fatalf("prefix %d: reply does not parse: %v", i, err)
			}
			if m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0 && len(m.Question) == 0 {
				t.Errorf("prefix %d: answers without the question", i)
			}
		}
	}
}

func TestAddrLabel(t *testing.T) {
	for _, s := range []string{"10.0.0.1", "fd00::7", "::1", "255.255.255.255"} {
		a := netip.MustParseAddr(s)
		b, ok := parseAddrLabel(addrLabel(a))
		if !ok || b != a {
			t.Errorf("%s -> %s -> %v %v", s, addrLabel(a), b, ok)
		}
	}
	for _, s := range []string{"", "0a00001", "0a00000g", "0a0000010"} {
		if _, ok := parseAddrLabel(s); ok {
			t.Errorf("parseAddrLabel(%q) ok", s)
		}
	}
}

func TestKindString(t *testing.T) {
	for k := kindOutside; k <= kindUnknown; k++ {
		if strings.HasPrefix(k.String(), "kind(") {
			t.Errorf("kind %d has no name", k)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Addr: "nope"}, "Addr"},
		{Config{Domain: "a..b"}, "Domain"},
		{Config{TTL: -time.Second}, "TTL"},
		{Config{TTL: 1500 * time.Millisecond}, "TTL"},
		{Config{MaxUDPSize: 100}, "MaxUDPSize"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// FuzzRespond: whatever the bytes, Respond never panics, never answers a
// response, and its reply parses and fits the request's allowance (512
// bytes over UDP, or the EDNS0 size up to MaxUDPSize; 65535 over TCP).
func FuzzRespond(f *testing.F) {
	for _, q := range [][]byte{
		query("web.service.hydra.", dns.TypeA, 0),
		query("_web._tcp.service.hydra.", dns.TypeSRV, 1232),
		query("big.service.hydra.", dns.TypeANY, 4096),
		query("0a000001.addr.hydra.", dns.TypeA, 0),
		query("nope.service.hydra.", dns.TypeAAAA, 512),
		query("example.com.", dns.TypeA, 0),
	} {
		f.Add(q, true)
		f.Add(q, false)
	}
	cat := newCatalog(append(many("big", 200), testCatalog().byName["web"]...)...)
	r := newResponder(f, cat, Config{})
	f.Fuzz(func(t *testing.T, req []byte, udp bool) {
		out := r.Respond(nil, req, udp)
		if out == nil {
			return
		}
		if len(req) < hdrLen || req[2]&bitQR != 0 {
			t.Fatalf("a reply to a response or to less than a header")
		}
		allow := maxTCPMsg
		if udp {
			allow = dns.MinMsgSize
			q := new(dns.Msg)
			if q.Unpack(req) == nil {
				if o := q.IsEdns0(); o != nil {
					allow = min(max(int(o.UDPSize()), dns.MinMsgSize), DefaultMaxUDPSize)
				}
			}
		}
		if len(out) > allow {
			t.Fatalf("%d-byte reply, allowance %d", len(out), allow)
		}
		m := new(dns.Msg)
		if err := m.Unpack(out); err != nil {
			t.Fatalf("reply does not parse: %v (%x)", err, out)
		}
		if m.Id != uint16(req[0])<<8|uint16(req[1]) || !m.Response {
			t.Fatalf("reply id %d qr %v for request id %x", m.Id, m.Response, req[:2])
		}
	})
}

// TestAnswerHugeSet: a name with more instances than 64 KiB can carry is
// answered within the allowance on both transports, TC set, from a random
// part of the set (not always the same records).
func TestAnswerHugeSet(t *testing.T) {
	r := newResponder(t, newCatalog(many("huge", 20000)...), Config{})
	seen := map[string]bool{}
	for _, udp := range []bool{true, false} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeSRV} {
			m, n := ask(t, r, "huge.service.hydra.", qt, 1232, udp)
			limit := map[bool]int{true: 1232, false: 65535}[udp]
			if n > limit || !m.Truncated || len(m.Answer) == 0 {
				t.Errorf("udp %v %s: %d bytes, TC %v, %d answers; want <= %d, TC, some", udp, dns.TypeToString[qt], n, m.Truncated, len(m.Answer), limit)
			}
			if qt == dns.TypeA {
				seen[m.Answer[0].(*dns.A).A.String()] = true
			}
		}
	}
	for range 20 {
		m, _ := ask(t, r, "huge.service.hydra.", dns.TypeA, 0, true)
		seen[m.Answer[0].(*dns.A).A.String()] = true
	}
	if len(seen) < 5 {
		t.Errorf("22 answers start with %d addresses: not spread over the set", len(seen))
	}
}

// TestAnswerSRVSharedHost: two instances on one host give two SRV records
// and one address record.
func TestAnswerSRVSharedHost(t *testing.T) {
	r := newResponder(t, newCatalog(entry("db", "10.0.0.3", 5432, "tcp"), entry("db", "10.0.0.3", 5433, "tcp")), Config{})
	m, _ := ask(t, r, "db.service.hydra.", dns.TypeSRV, 0, true)
	if len(m.Answer) != 2 || len(m.Extra) != 1 {
		t.Fatalf("%d SRV, %d additional; want 2 and 1:\n%v", len(m.Answer), len(m.Extra), m)
	}
}

// TestRespondConcurrent: answers from many goroutines while the catalog
// changes (run with -race): every reply parses, and the view follows.
func TestRespondConcurrent(t *testing.T) {
	cat := newCatalog(many("web", 10)...)
	r := newResponder(t, cat, Config{})
	done := make(chan struct{})
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			buf := make([]byte, 0, 4096)
			qs := [][]byte{query("web.service.hydra.", dns.TypeA, 1232), query("_web._tcp.service.hydra.", dns.TypeSRV, 0),
				query("new.service.hydra.", dns.TypeA, 0), query("WEB.service.hydra.", dns.TypeANY, 4096)}
			for i := 0; ; i++ {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				out := r.Respond(buf, qs[(i+g)%len(qs)], i%2 == 0)
				if err := new(dns.Msg).Unpack(out); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 200 {
		cat.set(entry("new", "10.5.0.1", 1000+i, "tcp"))
		if i%10 == 0 {
			cat.remove("new")
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	cat.remove("new")
	cat.set(entry("new", "10.5.0.9", 1, "tcp"))
	if m, _ := ask(t, r, "new.service.hydra.", dns.TypeA, 0, true); !slices.Equal(addrs(m.Answer), []string{"10.5.0.9"}) {
		t.Fatalf("after the changes: %v", m.Answer)
	}
}
