package registry

import (
	"container/heap"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// entry is an Entry as the server's loop holds it.
type entry struct {
	Entry
	owner   *owner    // nil for static entries
	expires time.Time // zero for static entries
	hidx    int       // index in the expiry heap, -1 when not in it
	key     string    // the owner's dedupe key: name, host, port, proto
	ident   string    // who registered it, for the per-client quota (Server.identity)
	enc     []byte    // the entry's JSON, rebuilt when it changes
}

// owner is one client: the holder of a token.
type owner struct {
	token   string
	entries map[string]*entry // by instance
	byKey   map[string]*entry // by endpoint key
}

// nameSet is every instance of one name.
type nameSet struct {
	entries []*entry
	lookup  []byte   // cached LOOKUP reply body (without "id"); nil when stale
	sorted  []*entry // entries by instance, for LIST; nil when stale
}

// stale drops what is cached of the set: its entries changed.
func (ns *nameSet) stale() { ns.lookup, ns.sorted = nil, nil }

// byInstance returns the set's entries sorted by instance (cached).
func (ns *nameSet) byInstance() []*entry {
	if ns.sorted == nil {
		ns.sorted = slices.Clone(ns.entries)
		slices.SortFunc(ns.sorted, func(a, b *entry) int { return strings.Compare(a.Instance, b.Instance) })
	}
	return ns.sorted
}

func endpointKey(s *Service) string {
	return s.Name + "\x00" + s.Host + "\x00" + strconv.Itoa(s.Port) + "\x00" + s.Proto
}

func (e *entry) encode() {
	b, err := json.Marshal(e.Entry)
	if err != nil {
		b = []byte(`{}`)
	}
	e.enc = b
}

// expiryHeap orders entries by expiry time.
type expiryHeap []*entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.hidx = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.hidx = -1
	return e
}

// store is the registry's state. Only the server's loop touches it.
type store struct {
	entries map[string]*entry // by instance
	names   map[string]*nameSet
	owners  map[string]*owner
	quota   map[string]int // entries by identity (entry.ident)
	expiry  expiryHeap
	sorted  []string // sorted names for LIST; nil when stale
}

func newStore() *store {
	return &store{entries: map[string]*entry{}, names: map[string]*nameSet{}, owners: map[string]*owner{}, quota: map[string]int{}}
}

func (st *store) add(e *entry) {
	st.entries[e.Instance] = e
	ns := st.names[e.Name]
	if ns == nil {
		ns = &nameSet{}
		st.names[e.Name] = ns
		st.sorted = nil
	}
	ns.entries = append(ns.entries, e)
	ns.stale()
	if o := e.owner; o != nil {
		o.entries[e.Instance] = e
		o.byKey[e.key] = e
		heap.Push(&st.expiry, e)
		st.quota[e.ident]++
	}
}

func (st *store) remove(e *entry) {
	delete(st.entries, e.Instance)
	st.unlinkName(e)
	if o := e.owner; o != nil {
		delete(o.entries, e.Instance)
		if o.byKey[e.key] == e {
			delete(o.byKey, e.key)
		}
		if len(o.entries) == 0 {
			delete(st.owners, o.token)
		}
		if st.quota[e.ident]--; st.quota[e.ident] <= 0 {
			delete(st.quota, e.ident)
		}
	}
	if e.hidx >= 0 {
		heap.Remove(&st.expiry, e.hidx)
	}
}

func (st *store) unlinkName(e *entry) {
	ns := st.names[e.Name]
	if ns == nil {
		return
	}
	if i := slices.Index(ns.entries, e); i >= 0 {
		ns.entries = slices.Delete(ns.entries, i, i+1)
	}
	ns.stale()
	if len(ns.entries) == 0 {
		delete(st.names, e.Name)
		st.sorted = nil
	}
}

// changed re-indexes e after its fields changed from old.
func (st *store) changed(e *entry, old Service) {
	if old.Name != e.Name {
		saved := e.Name
		e.Name = old.Name
		st.unlinkName(e)
		e.Name = saved
		ns := st.names[e.Name]
		if ns == nil {
			ns = &nameSet{}
			st.names[e.Name] = ns
			st.sorted = nil
		}
		ns.entries = append(ns.entries, e)
	}
	if ns := st.names[e.Name]; ns != nil {
		ns.stale()
	}
	if o := e.owner; o != nil {
		if o.byKey[e.key] == e {
			delete(o.byKey, e.key)
		}
		e.key = endpointKey(&e.Service)
		o.byKey[e.key] = e
	}
	e.encode()
}

func (st *store) renew(e *entry, now time.Time) {
	if e.owner == nil {
		return
	}
	e.expires = now.Add(e.TTL)
	heap.Fix(&st.expiry, e.hidx)
}

// expired pops the next entry whose TTL has run out by now, or nil.
func (st *store) expired(now time.Time) *entry {
	if len(st.expiry) == 0 || st.expiry[0].expires.After(now) {
		return nil
	}
	e := st.expiry[0]
	st.remove(e)
	return e
}

func (st *store) sortedNames() []string {
	if st.sorted == nil {
		st.sorted = slices.Sorted(maps.Keys(st.names))
	}
	return st.sorted
}

// lookupBody returns the LOOKUP reply body for name.
func (st *store) lookupBody(name string) []byte {
	ns := st.names[name]
	if ns != nil && ns.lookup != nil {
		return ns.lookup
	}
	qn, _ := json.Marshal(name)
	b := make([]byte, 0, 32+len(qn))
	b = append(b, `{"name":`...)
	b = append(b, qn...)
	b = append(appendEntries(append(b, `,"entries":`...), ns), '}')
	if ns != nil {
		ns.lookup = b
	}
	return b
}

// appendEntries appends the JSON array of ns's entries (none for a nil
// ns), each as encoded: a marshal would re-validate every one.
func appendEntries(b []byte, ns *nameSet) []byte {
	b = append(b, '[')
	if ns != nil {
		for i, e := range ns.entries {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, e.enc...)
		}
	}
	return append(b, ']')
}
