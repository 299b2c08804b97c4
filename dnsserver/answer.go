package dnsserver

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/hydra-net/hydra/registry"
)

// Catalog is what the server reads: the live instances by name, every
// name, and an index that changes whenever they do (package catalog's
// read model of the registry satisfies it). Its methods must be safe for
// concurrent use and must not wait for the registry's loop.
type Catalog interface {
	Index() uint64
	Names() []string
	Instances(name string) []registry.Entry
}

// kind is what a query name designates in the domain.
type kind uint8

const (
	kindOutside kind = iota // not in the domain: REFUSED
	kindApex                // DOMAIN.: its SOA
	kindEmpty               // service.DOMAIN., addr.DOMAIN.: exist, hold nothing
	kindService             // NAME.service.DOMAIN.: A, AAAA, SRV
	kindSRV                 // _NAME._tcp.service.DOMAIN. (or _udp): SRV
	kindAddr                // HEX.addr.DOMAIN.: the address the hex spells (SRV targets)
	kindUnknown             // in the domain, nothing there: NXDOMAIN
)

func (k kind) String() string {
	switch k {
	case kindOutside:
		return "outside"
	case kindApex:
		return "apex"
	case kindEmpty:
		return "empty"
	case kindService:
		return "service"
	case kindSRV:
		return "srv"
	case kindAddr:
		return "addr"
	case kindUnknown:
		return "unknown"
	}
	return "kind(" + string(rune('0'+k)) + ")"
}

// Responder is the I/O-free core: Respond turns a query's bytes into the
// reply's. It is safe for concurrent use.
type Responder struct {
	cat        Catalog
	domain     string // canonical: "hydra."
	svcSuffix  string // ".service.hydra."
	addrSuffix string // ".addr.hydra."
	ttl        uint32
	maxUDP     int
	opt        *dns.OPT // our OPT record, shared and never changed
	view       atomic.Pointer[view]
}

// NewResponder answers from cat with cfg's Domain, TTL and MaxUDPSize.
func NewResponder(cat Catalog, cfg Config) (*Responder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &Responder{cat: cat, domain: cfg.Domain, svcSuffix: ".service." + cfg.Domain,
		addrSuffix: ".addr." + cfg.Domain, ttl: uint32(cfg.TTL.Seconds()), maxUDP: cfg.MaxUDPSize}
	r.opt = &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	r.opt.SetUDPSize(uint16(cfg.MaxUDPSize))
	return r, nil
}

// classify says what the lower-case name designates; for kindService and
// kindSRV it returns the service name too, for kindSRV the protocol label
// ("tcp" or "udp"), for kindAddr the address.
func (r *Responder) classify(lname string) (k kind, svc, proto string, addr netip.Addr) {
	switch {
	case lname == r.domain:
		return kindApex, "", "", addr
	case !strings.HasSuffix(lname, r.domain) || len(lname) == len(r.domain) || lname[len(lname)-len(r.domain)-1] != '.':
		return kindOutside, "", "", addr
	case lname == r.svcSuffix[1:] || lname == r.addrSuffix[1:]:
		return kindEmpty, "", "", addr
	case strings.HasSuffix(lname, r.svcSuffix):
		n := lname[:len(lname)-len(r.svcSuffix)]
		if len(n) > 6 && n[0] == '_' && (strings.HasSuffix(n, "._tcp") || strings.HasSuffix(n, "._udp")) {
			return kindSRV, n[1 : len(n)-5], n[len(n)-3:], addr
		}
		return kindService, n, "", addr
	case strings.HasSuffix(lname, r.addrSuffix):
		if a, ok := parseAddrLabel(lname[:len(lname)-len(r.addrSuffix)]); ok {
			return kindAddr, "", "", a
		}
	}
	return kindUnknown, "", "", addr
}

// addrLabel is the SRV target label of an address: 8 hex digits for IPv4,
// 32 for IPv6 (Consul's NAME.addr form).
func addrLabel(a netip.Addr) string {
	b := a.AsSlice()
	return hex.EncodeToString(b)
}

func parseAddrLabel(s string) (netip.Addr, bool) {
	if len(s) != 8 && len(s) != 32 {
		return netip.Addr{}, false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:len(s)/2], []byte(s)); err != nil {
		return netip.Addr{}, false
	}
	return netip.AddrFromSlice(b[:len(s)/2])
}

// udpProto lists the entry protocols carried over UDP, answered under
// _NAME._udp; every other protocol (tcp, http, zmtp, ...) is _tcp.
var udpProto = map[string]bool{"udp": true, "quic": true, "dtls": true, "coap": true, "dns": true}

// records are the answers of one query name, built once per catalog index.
type records struct {
	a, aaaa []dns.RR // NAME.service.DOMAIN.: instances whose host is an IP
	srv     []dns.RR
	extra   []dns.RR // A/AAAA of the SRV targets that are addresses, one per target
	srvX    []int32  // srvX[i]: index in extra of srv[i]'s target, -1 for a host name
	none    bool     // a known service without instances of the protocol asked: NXDOMAIN
}

// view is the catalog as of one index: the names folded to lower case and
// the records built so far (by lower-case query name).
type view struct {
	index uint64
	soa   *dns.SOA
	once  sync.Once
	names map[string][]string // lower case -> the catalog's names that fold to it
	recs  sync.Map            // lower-case query name -> *records
}

// current returns the view of the catalog's current index.
func (r *Responder) current() *view {
	idx := r.cat.Index()
	v := r.view.Load()
	if v != nil && v.index == idx {
		return v
	}
	nv := &view{index: idx, soa: &dns.SOA{
		Hdr: dns.RR_Header{Name: r.domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: r.ttl},
		Ns:  "ns." + r.domain, Mbox: "hostmaster." + r.domain, Serial: uint32(idx),
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: r.ttl}}
	if r.view.CompareAndSwap(v, nv) {
		return nv
	}
	if v = r.view.Load(); v != nil && v.index == idx {
		return v
	}
	return nv // a newer index won the race: answer from ours, unshared
}

// lookup returns the catalog names that name folds to.
func (r *Responder) lookup(v *view, name string) []string {
	v.once.Do(func() {
		v.names = map[string][]string{}
		for _, n := range r.cat.Names() {
			l := strings.ToLower(n)
			v.names[l] = append(v.names[l], n)
		}
	})
	return v.names[name]
}

// build makes the records of the lower-case query lname for the service
// names, keeping only the protocol label proto's instances when it is set.
func (r *Responder) build(lname string, names []string, proto string) *records {
	rs := &records{}
	targets := map[string]int32{}
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: r.ttl}
	}
	for _, n := range names {
		for _, e := range r.cat.Instances(n) {
			if proto != "" && (proto == "udp") != udpProto[e.Proto] {
				continue
			}
			if e.Port < 1 || e.Port > 65535 {
				continue
			}
			target := ""
			var addrRR dns.RR
			if a, err := netip.ParseAddr(e.Host); err == nil && a.Zone() == "" {
				a = a.Unmap()
				target = addrLabel(a) + r.addrSuffix
				if a.Is4() {
					rs.a = append(rs.a, &dns.A{Hdr: hdr(lname, dns.TypeA), A: a.AsSlice()})
					addrRR = &dns.A{Hdr: hdr(target, dns.TypeA), A: a.AsSlice()}
				} else {
					rs.aaaa = append(rs.aaaa, &dns.AAAA{Hdr: hdr(lname, dns.TypeAAAA), AAAA: a.AsSlice()})
					addrRR = &dns.AAAA{Hdr: hdr(target, dns.TypeAAAA), AAAA: a.AsSlice()}
				}
			} else if _, ok := dns.IsDomainName(e.Host); ok && !strings.ContainsAny(e.Host, ":%") {
				// A host name: SRV only, its target the name itself (resolved
				// elsewhere); A/AAAA cannot name it (a CNAME stands alone).
				target = dns.CanonicalName(e.Host)
			} else {
				continue
			}
			rs.srv = append(rs.srv, &dns.SRV{Hdr: hdr(lname, dns.TypeSRV), Priority: 1, Weight: 1,
				Port: uint16(e.Port), Target: target})
			x, ok := targets[target]
			if addrRR != nil && !ok {
				x = int32(len(rs.extra))
				targets[target] = x
				rs.extra = append(rs.extra, addrRR)
			}
			if addrRR == nil {
				x = -1
			}
			rs.srvX = append(rs.srvX, x)
		}
	}
	return rs
}

// records returns the records of lname, built on first use in v.
func (r *Responder) records(v *view, lname, svc, proto string) *records {
	if rs, ok := v.recs.Load(lname); ok {
		return rs.(*records)
	}
	names := r.lookup(v, svc)
	if names == nil {
		return nil // unknown: not cached, so that a flood of random names costs no memory
	}
	rs := r.build(lname, names, proto)
	rs.none = proto != "" && len(rs.srv) == 0 // the name does not exist
	if len(rs.srv) > maxRecords {
		// A/AAAA/SRV sets are cut to what 64 KiB could carry, and every
		// answer picks from them in O(what fits), however many there are.
		rs.a, rs.aaaa = rs.a[:min(len(rs.a), maxRecords)], rs.aaaa[:min(len(rs.aaaa), maxRecords)]
		rs.srv, rs.srvX = rs.srv[:maxRecords], rs.srvX[:maxRecords]
	}
	v.recs.Store(lname, rs)
	return rs
}

// work is one Respond's scratch, pooled.
type work struct {
	req, resp dns.Msg
	ans, ext  []dns.RR
	one       [1]dns.RR
	ns        [1]dns.RR
	opt       dns.OPT  // a copy of Responder.opt: packing writes its rcode bits
	idx       []int32  // the records chosen, in answer order
	seen      []uint32 // per extra record: gen when already added
	gen       uint32
}

// maxRecords bounds a record set: 4096 records of at least 16 bytes fill a
// 64 KiB TCP message.
const maxRecords = maxTCPMsg/16 + 1

// choose picks up to k of n records in random order: all of them when
// there are k or fewer, else k consecutive ones from a random start, so
// that an answer costs O(k) however large the set.
func (w *work) choose(n, k int) []int32 {
	w.idx = w.idx[:0]
	if n <= k {
		for i := range n {
			w.idx = append(w.idx, int32(i))
		}
	} else {
		o := rand.IntN(n)
		for i := range k {
			w.idx = append(w.idx, int32((o+i)%n))
		}
	}
	s := w.idx
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

// pick appends up to k of rrs, in random order, to w.ans.
func (w *work) pick(rrs []dns.RR, k int) {
	for _, i := range w.choose(len(rrs), k) {
		w.ans = append(w.ans, rrs[i])
	}
}

// pickSRV appends up to k SRV records of rs to w.ans, in random order, and
// their targets' addresses (once each) to w.ext.
func (w *work) pickSRV(rs *records, k int) {
	if len(w.seen) < len(rs.extra) {
		w.seen = make([]uint32, len(rs.extra))
		w.gen = 0
	}
	w.gen++
	if w.gen == 0 { // wrapped: old stamps could match
		clear(w.seen)
		w.gen = 1
	}
	for _, i := range w.choose(len(rs.srv), k) {
		w.ans = append(w.ans, rs.srv[i])
		if x := rs.srvX[i]; x >= 0 && w.seen[x] != w.gen {
			w.seen[x] = w.gen
			w.ext = append(w.ext, rs.extra[x])
		}
	}
}

var works = sync.Pool{New: func() any { return new(work) }}

// Header bits Respond reads before the message is parsed.
const (
	hdrLen    = 12
	bitQR     = 0x80 // in byte 2
	maxTCPMsg = dns.MaxMsgSize
)

// Respond answers the query req, appending the reply to dst[:0]. udp says
// the reply goes over UDP, bounded by what the request allows (512 bytes,
// or its EDNS0 size up to MaxUDPSize), with TC set when the answer did not
// fit; over TCP it is bounded by 65535. It returns nil when req deserves
// no reply: shorter than a header, or itself a response (never answer
// those: two servers would echo each other for ever).
func (r *Responder) Respond(dst, req []byte, udp bool) []byte {
	if len(req) < hdrLen || req[2]&bitQR != 0 {
		return nil
	}
	w := works.Get().(*work)
	defer func() {
		if cap(w.resp.Extra) > cap(w.ext) {
			w.ext = w.resp.Extra // grown by appending the OPT: keep the array
		}
		clear(w.ans)
		clear(w.ext[:cap(w.ext)])
		w.ans, w.ext = w.ans[:0], w.ext[:0]
		w.req, w.resp = dns.Msg{}, dns.Msg{}
		works.Put(w)
	}()
	if err := w.req.Unpack(req); err != nil {
		return errorReply(dst, req, dns.RcodeFormatError)
	}
	q := &w.req
	m := &w.resp
	m.Id, m.Response, m.Opcode, m.RecursionDesired = q.Id, true, q.Opcode, q.RecursionDesired
	m.Question = q.Question
	limit := maxTCPMsg
	var opt *dns.OPT
	if o := q.IsEdns0(); o != nil {
		if o.Version() != 0 {
			bad := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
			bad.SetUDPSize(uint16(r.maxUDP))
			bad.SetExtendedRcode(dns.RcodeBadVers)
			m.Rcode = dns.RcodeBadVers
			m.Extra = append(w.ext, bad)
			return r.pack(dst, m, dns.MinMsgSize)
		}
		w.opt = *r.opt
		opt = &w.opt
		if udp {
			limit = min(max(int(o.UDPSize()), dns.MinMsgSize), r.maxUDP)
		}
	} else if udp {
		limit = dns.MinMsgSize
	}
	switch {
	case q.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
	case len(q.Question) != 1:
		m.Rcode = dns.RcodeFormatError
	case q.Question[0].Qclass != dns.ClassINET && q.Question[0].Qclass != dns.ClassANY:
		m.Rcode = dns.RcodeRefused
	default:
		r.answer(w, q.Question[0], limit/16+1) // no more records than could fit
	}
	if opt != nil {
		if m.Extra == nil {
			m.Extra = w.ext[:0] // reuse the pooled array
		}
		m.Extra = append(m.Extra, opt)
	}
	return r.pack(dst, m, limit)
}

// answer fills w.resp for question qu of the domain.
func (r *Responder) answer(w *work, qu dns.Question, k int) {
	m := &w.resp
	lname := strings.ToLower(qu.Name)
	kd, svc, proto, addr := r.classify(lname)
	if kd == kindOutside {
		m.Rcode = dns.RcodeRefused
		return
	}
	m.Authoritative = true
	v := r.current()
	t := qu.Qtype
	switch kd {
	case kindApex:
		if t == dns.TypeSOA || t == dns.TypeANY {
			w.one[0] = v.soa
			m.Answer = w.one[:]
			return
		}
	case kindAddr:
		if addr.Is4() && (t == dns.TypeA || t == dns.TypeANY) {
			w.one[0] = &dns.A{Hdr: dns.RR_Header{Name: lname, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: r.ttl}, A: addr.AsSlice()}
			m.Answer = w.one[:]
			return
		}
		if addr.Is6() && (t == dns.TypeAAAA || t == dns.TypeANY) {
			w.one[0] = &dns.AAAA{Hdr: dns.RR_Header{Name: lname, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: r.ttl}, AAAA: addr.AsSlice()}
			m.Answer = w.one[:]
			return
		}
	case kindService, kindSRV:
		rs := r.records(v, lname, svc, proto)
		if rs == nil || rs.none {
			m.Rcode = dns.RcodeNameError
			break
		}
		switch {
		case t == dns.TypeSRV:
			w.pickSRV(rs, k)
			m.Extra = w.ext
		case kd == kindSRV:
		case t == dns.TypeA:
			w.pick(rs.a, k)
		case t == dns.TypeAAAA:
			w.pick(rs.aaaa, k)
		case t == dns.TypeANY:
			w.pick(rs.a, k)
			w.pick(rs.aaaa, k)
		}
		if len(w.ans) > 0 {
			m.Answer = w.ans
			return
		}
	case kindUnknown:
		m.Rcode = dns.RcodeNameError
	}
	// NXDOMAIN, or NOERROR without records of the type: the SOA says for
	// how long a resolver may remember that (RFC 2308).
	w.ns[0] = v.soa
	m.Ns = w.ns[:]
}

// pack packs m into dst[:0], truncated to limit bytes (TC set) if it is
// longer: answers never exceed what the transport or the client allows.
func (r *Responder) pack(dst []byte, m *dns.Msg, limit int) []byte {
	m.Truncate(limit) // compresses only what does not fit uncompressed
	// PackBuffer packs into the buffer's length, not its capacity.
	out, err := m.PackBuffer(dst[:cap(dst)])
	if err != nil || len(out) > limit {
		// Cannot happen with what answer builds; never send more than allowed.
		m.Answer, m.Ns, m.Extra, m.Truncated = nil, nil, nil, true
		if out, err = m.PackBuffer(dst[:cap(dst)]); err != nil {
			var h [hdrLen]byte
			binary.BigEndian.PutUint16(h[:], m.Id)
			return errorReply(dst, h[:], dns.RcodeServerFailure)
		}
	}
	return out
}

// errorReply is a bare header answering req with rcode: no question, so
// it is never longer than the request.
func errorReply(dst, req []byte, rcode int) []byte {
	var h [hdrLen]byte
	copy(h[:2], req)
	if len(req) > 2 {
		h[2] = bitQR | req[2]&0x79 // opcode and RD
	}
	h[3] = byte(rcode & 0xF)
	return append(dst[:0], h[:]...)
}
