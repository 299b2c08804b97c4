package dnsserver

import (
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkRespond is the answer path without the sockets: parse, look up
// (a cached view of the catalog), shuffle, pack into a reused buffer.
func BenchmarkRespond(b *testing.B) {
	cat := newCatalog(append(many("web", 3), many("big", 40)...)...)
	r := newResponder(b, cat, Config{})
	for _, bc := range []struct {
		name string
		q    []byte
	}{
		{"A-3", query("web.service.hydra.", dns.TypeA, 1232)},
		{"SRV-3", query("_web._tcp.service.hydra.", dns.TypeSRV, 1232)},
		{"A-40-truncated", query("big.service.hydra.", dns.TypeA, 0)},
		{"NXDOMAIN", query("nope.service.hydra.", dns.TypeA, 1232)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 8192)
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.q)))
			for b.Loop() {
				if out := r.Respond(buf, bc.q, true); len(out) < hdrLen {
					b.Fatal("no reply")
				}
			}
		})
	}
}
