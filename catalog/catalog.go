package catalog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hydra-net/hydra/registry"
)

// Watcher is where a Catalog gets its events: registry.Local (and a fake in
// tests).
type Watcher interface {
	Watch(context.Context) (<-chan registry.Event, error)
}

// ErrWatchClosed is Run's error when the watch ended before its ctx did
// (the registry stopped).
var ErrWatchClosed = errors.New("catalog: the registry's watch ended")

// Catalog is the read model. Its zero value is not usable: use New.
type Catalog struct {
	w    Watcher
	snap atomic.Pointer[Snapshot]
	// nameOf is each instance's name, Run's alone (readers never see it):
	// an update event may rename an entry, and names the new one only.
	nameOf map[string]string
}

// shards split the names so that a change copies only its shard's maps,
// not every name's: 10 000 entries registered at full speed made
// whole-map copies cost more memory than the entries (bench/RESULTS.md,
// Footprint).
const shards = 64

var seed = maphash.MakeSeed()

func shardOf(name string) int { return int(maphash.String(seed, name) & (shards - 1)) }

type shard struct {
	byName  map[string][]registry.Entry // sorted by instance
	nameIdx map[string]uint64           // index of each name's last change (kept after its last instance goes)
}

// Snapshot is the catalog at one Index. It is immutable: its slices are
// shared by every reader and must not be modified (Catalog's methods hand
// out copies; Snapshot's do not, for readers that cannot afford one).
type Snapshot struct {
	index   uint64
	shards  [shards]*shard
	count   int           // names
	changed chan struct{} // closed when the next snapshot replaces this one

	names   atomic.Pointer[[]string] // sorted, built on first use
	allOnce sync.Once
	all     []registry.Entry
}

// New returns a catalog of w's entries, empty (Index 0) until Run has the
// first sync event.
func New(w Watcher) *Catalog {
	c := &Catalog{w: w, nameOf: map[string]string{}}
	s := &Snapshot{changed: make(chan struct{})}
	for i := range s.shards {
		s.shards[i] = &shard{byName: map[string][]registry.Entry{}, nameIdx: map[string]uint64{}}
	}
	c.snap.Store(s)
	return c
}

// Run follows the watch until ctx ends (then it returns nil), or returns
// the watch's error, or ErrWatchClosed when the registry stopped. Run may
// be called again after it returned: the next sync event replaces
// everything.
func (c *Catalog) Run(ctx context.Context) error {
	ch, err := c.w.Watch(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("catalog: watch: %w", err)
	}
	b := c.newBatch()
	for {
		var ev registry.Event
		var ok bool
		select {
		case ev, ok = <-ch:
		case <-ctx.Done():
			return nil
		}
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return ErrWatchClosed
		}
		b.apply(ev)
		// Apply what is already queued before publishing: one snapshot
		// per burst, not per event.
	drain:
		for range 256 {
			select {
			case ev, ok = <-ch:
				if !ok {
					break drain
				}
				b.apply(ev)
			default:
				break drain
			}
		}
		if b.dirty {
			c.publish(b)
			b = c.newBatch()
		}
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return ErrWatchClosed
		}
	}
}

// batch is the next snapshot being built from the current one.
type batch struct {
	prev    *Snapshot
	shards  [shards]*shard
	owned   [shards]bool    // shards already private copies
	touched map[string]bool // names whose slice is already a private copy
	nameOf  map[string]string
	count   int
	names   bool // the set of names changed
	dirty   bool
}

func (c *Catalog) newBatch() *batch {
	prev := c.snap.Load()
	return &batch{prev: prev, shards: prev.shards, count: prev.count, nameOf: c.nameOf, touched: map[string]bool{}}
}

// own returns name's shard as a private copy.
func (b *batch) own(name string) *shard {
	i := shardOf(name)
	if !b.owned[i] {
		old := b.shards[i]
		b.shards[i] = &shard{byName: maps.Clone(old.byName), nameIdx: maps.Clone(old.nameIdx)}
		b.owned[i] = true
	}
	b.dirty = true
	return b.shards[i]
}

func (b *batch) instances(name string) ([]registry.Entry, bool) {
	es, ok := b.shards[shardOf(name)].byName[name]
	return es, ok
}

func (b *batch) apply(ev registry.Event) {
	idx := b.prev.index + 1
	switch ev.Type {
	case registry.EventSync:
		byName := make(map[string][]registry.Entry)
		for _, e := range ev.Entries {
			byName[e.Name] = append(byName[e.Name], e)
		}
		for i := range b.shards { // names gone wake their waiters
			for name := range b.shards[i].byName {
				if _, still := byName[name]; !still {
					sh := b.own(name)
					delete(sh.byName, name)
					sh.nameIdx[name] = idx
				}
			}
		}
		for name, es := range byName {
			slices.SortFunc(es, byInstance)
			old, ok := b.instances(name)
			if ok && sameEntries(old, es) {
				continue // unchanged: its waiters stay asleep
			}
			sh := b.own(name)
			sh.byName[name] = es
			sh.nameIdx[name] = idx
			b.touched[name] = true
		}
		b.count = len(byName)
		b.names = true
		b.dirty = true
		clear(b.nameOf)
		for _, e := range ev.Entries {
			b.nameOf[e.Instance] = e.Name
		}
	case registry.EventRegister, registry.EventUpdate:
		if old, ok := b.nameOf[ev.Entry.Instance]; ok && old != ev.Entry.Name {
			b.remove(old, ev.Entry.Instance, idx) // renamed
		}
		b.nameOf[ev.Entry.Instance] = ev.Entry.Name
		sh := b.own(ev.Entry.Name)
		es := b.private(sh, ev.Entry.Name)
		i, found := slices.BinarySearchFunc(es, ev.Entry.Instance, func(e registry.Entry, inst string) int {
			return strings.Compare(e.Instance, inst)
		})
		if found {
			es[i] = ev.Entry
		} else {
			es = slices.Insert(es, i, ev.Entry)
			if len(es) == 1 {
				b.names = true
				b.count++
			}
		}
		sh.byName[ev.Entry.Name] = es
		sh.nameIdx[ev.Entry.Name] = idx
	case registry.EventDeregister, registry.EventExpire:
		name := ev.Entry.Name
		if n, ok := b.nameOf[ev.Entry.Instance]; ok {
			name = n
		}
		delete(b.nameOf, ev.Entry.Instance)
		b.remove(name, ev.Entry.Instance, idx)
	}
}

// remove takes instance out of name's slice, if it is there.
func (b *batch) remove(name, instance string, idx uint64) {
	es, ok := b.instances(name)
	if !ok {
		return
	}
	i, found := slices.BinarySearchFunc(es, instance, func(e registry.Entry, inst string) int {
		return strings.Compare(e.Instance, inst)
	})
	if !found {
		return
	}
	sh := b.own(name)
	es = b.private(sh, name)
	es = slices.Delete(es, i, i+1)
	if len(es) == 0 {
		delete(sh.byName, name)
		b.names = true
		b.count--
	} else {
		sh.byName[name] = es
	}
	sh.nameIdx[name] = idx
}

// private returns name's slice as a copy this batch may modify.
func (b *batch) private(sh *shard, name string) []registry.Entry {
	es := sh.byName[name]
	if !b.touched[name] {
		es = slices.Clone(es)
		sh.byName[name] = es
		b.touched[name] = true
	}
	return es
}

func (c *Catalog) publish(b *batch) {
	prev := b.prev
	s := &Snapshot{index: prev.index + 1, shards: b.shards, count: b.count, changed: make(chan struct{})}
	if !b.names {
		if p := prev.names.Load(); p != nil {
			s.names.Store(p)
		}
	}
	c.snap.Store(s)
	close(prev.changed)
}

func byInstance(a, b registry.Entry) int { return cmp.Compare(a.Instance, b.Instance) }

func sameEntries(a, b []registry.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y registry.Entry) bool {
		return x.Instance == y.Instance && x.Version == y.Version && x.Origin == y.Origin &&
			x.Host == y.Host && x.Port == y.Port && x.Proto == y.Proto && maps.Equal(x.Meta, y.Meta)
	})
}

// Snapshot returns the current snapshot (one atomic load).
func (c *Catalog) Snapshot() *Snapshot { return c.snap.Load() }

// Index is raised by every change; it is 0 until the first sync, >= 1
// after.
func (c *Catalog) Index() uint64 { return c.snap.Load().index }

// Names returns the names with at least one live instance, sorted (a
// copy).
func (c *Catalog) Names() []string { return slices.Clone(c.snap.Load().Names()) }

// Instances returns name's live instances sorted by instance, a copy (the
// entries' Meta maps are shared and must not be modified); nil if none.
func (c *Catalog) Instances(name string) []registry.Entry {
	return slices.Clone(c.snap.Load().Instances(name))
}

// All returns every live entry, sorted by name and instance, a copy.
func (c *Catalog) All() []registry.Entry { return slices.Clone(c.snap.Load().All()) }

// Changed returns a channel that is closed once Index() > after.
func (c *Catalog) Changed(after uint64) <-chan struct{} { return c.snap.Load().Changed(after) }

var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// Index is the snapshot's index.
func (s *Snapshot) Index() uint64 { return s.index }

// Len is the number of names.
func (s *Snapshot) Len() int { return s.count }

// Names is the sorted names, shared: do not modify. It is built on first
// use (nil when there is none).
func (s *Snapshot) Names() []string {
	if p := s.names.Load(); p != nil {
		return *p
	}
	var names []string
	if s.count > 0 {
		names = make([]string, 0, s.count)
		for _, sh := range s.shards {
			for name := range sh.byName {
				names = append(names, name)
			}
		}
		slices.Sort(names)
	}
	s.names.Store(&names)
	return names
}

// Instances is name's live instances sorted by instance, shared: do not
// modify.
func (s *Snapshot) Instances(name string) []registry.Entry {
	return s.shards[shardOf(name)].byName[name]
}

// NameIndex is the index of the last change of name's instances (its last
// instance going is a change too); 0 if name never had one.
func (s *Snapshot) NameIndex(name string) uint64 { return s.shards[shardOf(name)].nameIdx[name] }

// All is every entry sorted by name and instance, shared: do not modify.
// It is built on first use.
func (s *Snapshot) All() []registry.Entry {
	s.allOnce.Do(func() {
		names := s.Names()
		var all []registry.Entry
		for _, name := range names {
			all = append(all, s.Instances(name)...)
		}
		s.all = all
	})
	return s.all
}

// Changed returns a channel closed once the catalog's index is above
// after: already closed when this snapshot's is.
func (s *Snapshot) Changed(after uint64) <-chan struct{} {
	if s.index > after {
		return closedChan
	}
	return s.changed
}
