package registry

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Local is the in-process API of a Server for entries owned by the process
// that runs it (tunnel proxies, for one): no socket, no token, no
// heartbeats. Its calls run on the server's loop, like requests, and return
// the same *Error values (errors.Is with ErrBadRequest, ErrNotFound ...),
// or ErrClosed once the server is closed (Close, or Serve returned). Calls
// made before Serve starts wait for it (or for their ctx).
type Local struct{ s *Server }

// Local returns the server's in-process API.
func (s *Server) Local() *Local { return &Local{s} }

// maxLocalQueue bounds the events queued for one in-process watcher that
// does not keep up; beyond, the queue is replaced by one sync event with
// every current entry, as Client.Watch does after losing events.
const maxLocalQueue = 4096

// call runs fn on the loop and waits for it. The caller's ctx stops it
// only until fn starts, so that a registration is never made without its
// caller learning the instance id. Calls before Serve starts wait for it.
func (l *Local) call(ctx context.Context, fn func()) error {
	s := l.s
	done := make(chan struct{})
	var started atomic.Bool
	if !s.post(ctx.Done(), func() {
		if started.CompareAndSwap(false, true) {
			fn()
		}
		close(done)
	}) {
		if err := ctx.Err(); err != nil {
			return err
		}
		return ErrClosed
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		if started.CompareAndSwap(false, true) {
			return ctx.Err() // fn will not run
		}
		<-done // it runs: wait for it
		return nil
	case <-s.loopDone:
		select {
		case <-done:
			return nil
		default:
			return ErrClosed
		}
	}
}

// localService checks svc as a registration is checked; its TTL is
// ignored (an in-process entry never expires).
func (s *Server) localService(svc Service) (Service, *Error) {
	if svc.Proto == "" {
		svc.Proto = DefaultProto
	}
	svc.TTL = 0
	for _, err := range []*Error{checkName(svc.Name), checkHost(svc.Host), checkPort(int64(svc.Port)),
		checkProto(svc.Proto), checkMeta(svc.Meta, s.cfg.MaxMetadataBytes)} {
		if err != nil {
			return svc, err
		}
	}
	if len(svc.Meta) == 0 {
		svc.Meta = nil
	} else {
		svc.Meta = maps.Clone(svc.Meta)
	}
	return svc, nil
}

// Register adds an entry owned by this process; it never expires (no
// heartbeats) and lives until Deregister or the server stops. It returns
// the instance id.
func (l *Local) Register(ctx context.Context, svc Service) (instance string, err error) {
	s := l.s
	var e *Error
	if cerr := l.call(ctx, func() {
		var svc2 Service
		if svc2, e = s.localService(svc); e != nil {
			return
		}
		if s.localEntries() >= s.cfg.MaxEntries {
			e = &Error{Code: CodeLimit, Message: fmt.Sprintf("the server holds %d entries, its limit (max entries)", s.cfg.MaxEntries)}
			return
		}
		now := time.Now()
		id := ""
		for id == "" || s.st.entries[id] != nil || s.remote.copies[id] != nil {
			id = randomHex(8)
		}
		en := &entry{Entry: Entry{Service: svc2, Instance: id, Origin: s.cfg.ServerID, Version: 1}, hidx: -1}
		en.key = endpointKey(&en.Service)
		en.encode()
		s.st.add(en)
		s.local[id] = en
		s.stats.registered.Add(1)
		s.emit(EventRegister, en, now)
		s.localChanged(EventRegister, en, now)
		s.updateGauges()
		instance = id
	}); cerr != nil {
		return "", cerr
	}
	if e != nil {
		return "", e
	}
	return instance, nil
}

// Update replaces the service of an entry Register made.
func (l *Local) Update(ctx context.Context, instance string, svc Service) error {
	s := l.s
	var e *Error
	if cerr := l.call(ctx, func() {
		en := s.local[instance]
		if en == nil {
			e = &Error{Code: CodeNotFound, Message: fmt.Sprintf("no in-process instance %s", instance)}
			return
		}
		var svc2 Service
		if svc2, e = s.localService(svc); e != nil {
			return
		}
		s.apply(en, svc2, time.Now())
	}); cerr != nil {
		return cerr
	}
	if e != nil {
		return e
	}
	return nil
}

// Deregister removes an entry Register made.
func (l *Local) Deregister(ctx context.Context, instance string) error {
	s := l.s
	var e *Error
	if cerr := l.call(ctx, func() {
		en := s.local[instance]
		if en == nil {
			e = &Error{Code: CodeNotFound, Message: fmt.Sprintf("no in-process instance %s", instance)}
			return
		}
		delete(s.local, instance)
		now := time.Now()
		s.st.remove(en)
		s.stats.deregistered.Add(1)
		s.emit(EventDeregister, en, now)
		s.localChanged(EventDeregister, en, now)
		s.updateGauges()
	}); cerr != nil {
		return cerr
	}
	if e != nil {
		return e
	}
	return nil
}

// Watch delivers the same Event values Client.Watch(ctx, "") delivers (all
// names, the initial snapshot the same way), until ctx ends; the channel is
// then closed. It is closed too when the server stops.
func (l *Local) Watch(ctx context.Context) (<-chan Event, error) {
	s := l.s
	w := &localWatch{signal: make(chan struct{}, 1)}
	if err := l.call(ctx, func() {
		s.localWatches[w] = struct{}{}
		w.resync(s)
	}); err != nil {
		return nil, err
	}
	ch := make(chan Event)
	go w.forward(ctx, s, ch)
	return ch, nil
}

// localWatch is one in-process watcher: the loop queues its events without
// blocking, its goroutine hands them over.
type localWatch struct {
	mu     sync.Mutex
	queue  []Event
	seq    uint64 // loop-owned
	signal chan struct{}
}

// push queues ev (on the loop).
func (w *localWatch) push(s *Server, typ EventType, e *entry) {
	w.mu.Lock()
	full := len(w.queue) >= maxLocalQueue
	if !full {
		w.seq++
		w.queue = append(w.queue, Event{Type: typ, Entry: entryCopy(e), Seq: w.seq})
	}
	w.mu.Unlock()
	if full {
		w.resync(s)
		return
	}
	w.notify()
}

// resync replaces what is queued by one sync event with every current
// entry, ordered by name and instance as Client.Watch's snapshot (on the
// loop).
func (w *localWatch) resync(s *Server) {
	snap := make([]Entry, 0, len(s.st.entries))
	for _, e := range s.st.entries {
		snap = append(snap, entryCopy(e))
	}
	slices.SortFunc(snap, func(a, b Entry) int { // as LIST orders them
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Instance, b.Instance))
	})
	w.mu.Lock()
	clear(w.queue)
	w.queue = append(w.queue[:0], Event{Type: EventSync, Entries: snap})
	w.mu.Unlock()
	w.notify()
}

func (w *localWatch) notify() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func entryCopy(e *entry) Entry {
	c := e.Entry
	c.Meta = maps.Clone(c.Meta)
	return c
}

// forward is the watcher's goroutine: it hands queued events to ch until
// ctx ends or the server stops, then forgets the watch and closes ch.
func (w *localWatch) forward(ctx context.Context, s *Server, ch chan<- Event) {
	defer close(ch)
	defer s.post(nil, func() { delete(s.localWatches, w) })
	var batch []Event
	for {
		w.mu.Lock()
		batch, w.queue = w.queue, batch[:0]
		w.mu.Unlock()
		for i := range batch {
			select {
			case ch <- batch[i]:
			case <-ctx.Done():
				return
			case <-s.loopDone:
				return
			}
		}
		clear(batch)
		select {
		case <-w.signal:
		case <-ctx.Done():
			return
		case <-s.loopDone:
			return
		}
	}
}
