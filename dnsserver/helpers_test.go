package dnsserver

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/hydra-net/hydra/registry"
)

// fakeCatalog is a Catalog the tests set by hand.
type fakeCatalog struct {
	mu     sync.Mutex
	index  uint64
	byName map[string][]registry.Entry
}

func newCatalog(es ...registry.Entry) *fakeCatalog {
	c := &fakeCatalog{byName: map[string][]registry.Entry{}}
	c.set(es...)
	return c
}

// set adds es (replacing nothing) and moves the index on.
func (c *fakeCatalog) set(es ...registry.Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range es {
		c.byName[e.Name] = append(c.byName[e.Name], e)
	}
	c.index++
}

func (c *fakeCatalog) remove(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byName, name)
	c.index++
}

func (c *fakeCatalog) Index() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.index
}

func (c *fakeCatalog) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.byName))
}

func (c *fakeCatalog) Instances(name string) []registry.Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.byName[name])
}

func entry(name, host string, port int, proto string) registry.Entry {
	return registry.Entry{Service: registry.Service{Name: name, Host: host, Port: port, Proto: proto},
		Instance: fmt.Sprintf("%s-%s-%d", name, host, port), Origin: "test", Version: 1}
}

// many returns n instances of name on 10.1.x.y.
func many(name string, n int) []registry.Entry {
	var es []registry.Entry
	for i := range n {
		es = append(es, entry(name, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), 8000+i%1000, "tcp"))
	}
	return es
}

func newResponder(t testing.TB, cat Catalog, cfg Config) *Responder {
	t.Helper()
	r, err := NewResponder(cat, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// query packs a question for name and type t, with EDNS0 of size edns when
// it is not 0.
func query(name string, t uint16, edns uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	if edns != 0 {
		m.SetEdns0(edns, false)
	}
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

// ask answers one question through r and parses the reply.
func ask(t testing.TB, r *Responder, name string, qt uint16, edns uint16, udp bool) (*dns.Msg, int) {
	t.Helper()
	out := r.Respond(nil, query(name, qt, edns), udp)
	if out == nil {
		t.Fatalf("%s %s: no reply", name, dns.TypeToString[qt])
	}
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		t.Fatalf("%s %s: reply does not parse: %v", name, dns.TypeToString[qt], err)
	}
	return m, len(out)
}
