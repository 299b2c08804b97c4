package catalog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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

// Snapshot is the catalog at one Index. It is immutable: its slices are
// shared by every reader and must not be modified (Catalog's methods hand
// out copies; Snapshot's do not, for readers that cannot afford one).
type Snapshot struct {
	index   uint64
	names   []string                    // sorted
	byName  map[string][]registry.Entry // sorted by instance
	nameIdx map[string]uint64           // index of each name's last change (kept after its last instance goes)
	changed chan struct{}               // closed when the next snapshot replaces this one

	allOnce sync.Once
	all     []registry.Entry
}

// New returns a catalog of w's entries, empty (Index 0) until Run has the
// first sync event.
func New(w Watcher) *Catalog {
	c := &Catalog{w: w, nameOf: map[string]string{}}
	c.snap.Store(&Snapshot{byName: map[string][]registry.Entry{}, nameIdx: map[string]uint64{}, changed: make(chan struct{})})
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
	byName  map[string][]registry.Entry // nil until the first change
	nameIdx map[string]uint64
	touched map[string]bool // names whose slice is already a private copy
	nameOf  map[string]string
	names   bool // the set of names changed
	dirty   bool
}

func (c *Catalog) newBatch() *batch { return &batch{prev: c.snap.Load(), nameOf: c.nameOf} }

func (b *batch) own() {
	if b.byName == nil {
		b.byName = maps.Clone(b.prev.byName)
		b.nameIdx = maps.Clone(b.prev.nameIdx)
		b.touched = map[string]bool{}
	}
	b.dirty = true
}

func (b *batch) apply(ev registry.Event) {
	idx := b.prev.index + 1
	switch ev.Type {
	case registry.EventSync:
		b.own()
		byName := make(map[string][]registry.Entry)
		for _, e := range ev.Entries {
			byName[e.Name] = append(byName[e.Name], e)
		}
		for name := range b.byName { // names gone wake their waiters
			if _, still := byName[name]; !still {
				b.nameIdx[name] = idx
			}
		}
		for name, es := range byName {
			slices.SortFunc(es, byInstance)
			if old, ok := b.byName[name]; !ok || !sameEntries(old, es) {
				b.nameIdx[name] = idx
			} // else unchanged: its waiters stay asleep
			b.touched[name] = true
		}
		b.byName = byName
		b.names = true
		clear(b.nameOf)
		for _, e := range ev.Entries {
			b.nameOf[e.Instance] = e.Name
		}
	case registry.EventRegister, registry.EventUpdate:
		if old, ok := b.nameOf[ev.Entry.Instance]; ok && old != ev.Entry.Name {
			b.remove(old, ev.Entry.Instance, idx) // renamed
		}
		b.nameOf[ev.Entry.Instance] = ev.Entry.Name
		b.own()
		es := b.private(ev.Entry.Name)
		i, found := slices.BinarySearchFunc(es, ev.Entry.Instance, func(e registry.Entry, inst string) int {
			return strings.Compare(e.Instance, inst)
		})
		if found {
			es[i] = ev.Entry
		} else {
			es = slices.Insert(es, i, ev.Entry)
			if len(es) == 1 {
				b.names = true
			}
		}
		b.byName[ev.Entry.Name] = es
		b.nameIdx[ev.Entry.Name] = idx
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
	es, ok := b.prev.byName[name]
	if b.byName != nil {
		es, ok = b.byName[name]
	}
	if !ok {
		return
	}
	i, found := slices.BinarySearchFunc(es, instance, func(e registry.Entry, inst string) int {
		return strings.Compare(e.Instance, inst)
	})
	if !found {
		return
	}
	b.own()
	es = b.private(name)
	es = slices.Delete(es, i, i+1)
	if len(es) == 0 {
		delete(b.byName, name)
		b.names = true
	} else {
		b.byName[name] = es
	}
	b.nameIdx[name] = idx
}

// private returns name's slice as a copy this batch may modify.
func (b *batch) private(name string) []registry.Entry {
	es := b.byName[name]
	if !b.touched[name] {
		es = slices.Clone(es)
		b.byName[name] = es
		b.touched[name] = true
	}
	return es
}

func (c *Catalog) publish(b *batch) {
	prev := b.prev
	s := &Snapshot{index: prev.index + 1, byName: b.byName, nameIdx: b.nameIdx, names: prev.names, changed: make(chan struct{})}
	if b.names {
		s.names = slices.Sorted(maps.Keys(b.byName))
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
func (c *Catalog) Names() []string { return slices.Clone(c.snap.Load().names) }

// Instances returns name's live instances sorted by instance, a copy (the
// entries' Meta maps are shared and must not be modified); nil if none.
func (c *Catalog) Instances(name string) []registry.Entry {
	return slices.Clone(c.snap.Load().byName[name])
}

// All returns every live entry, sorted by name and instance, a copy.
func (c *Catalog) All() []registry.Entry { return slices.Clone(c.snap.Load().All()) }

// Changed returns a channel that is closed once Index() > after.
func (c *Catalog) Changed(after uint64) <-chan struct{} { return c.snap.Load().Changed(after) }

var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// Index is the snapshot's index.
func (s *Snapshot) Index() uint64 { return s.index }

// Names is the sorted names, shared: do not modify.
func (s *Snapshot) Names() []string { return s.names }

// Instances is name's live instances sorted by instance, shared: do not
// modify.
func (s *Snapshot) Instances(name string) []registry.Entry { return s.byName[name] }

// NameIndex is the index of the last change of name's instances (its last
// instance going is a change too); 0 if name never had one.
func (s *Snapshot) NameIndex(name string) uint64 { return s.nameIdx[name] }

// All is every entry sorted by name and instance, shared: do not modify.
// It is built on first use.
func (s *Snapshot) All() []registry.Entry {
	s.allOnce.Do(func() {
		n := 0
		for _, es := range s.byName {
			n += len(es)
		}
		all := make([]registry.Entry, 0, n)
		for _, name := range s.names {
			all = append(all, s.byName[name]...)
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
