package registry

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// remoteCopies are the copies of other servers' entries that a Replicator
// stored (Host.SetRemote). The same instance can have copies from several
// origins (a client that moved to another server registered again with its
// instance id); the store shows one per instance: this server's own entry
// if it holds one, else the copy with the highest version (then the
// highest origin id, so that every server picks the same). Owned by the
// loop.
type remoteCopies struct {
	origins map[string]map[string]*entry // origin → instance → copy
	copies  map[string][]*entry          // instance → its copies, any origin
	ncopies int
	visible int // copies in the store (shown by LOOKUP)
}

func newRemoteCopies() remoteCopies {
	return remoteCopies{origins: map[string]map[string]*entry{}, copies: map[string][]*entry{}}
}

// localEntries is the number of entries this server originates.
func (s *Server) localEntries() int { return len(s.st.entries) - s.remote.visible }

// shadow hides a remote copy of instance from the store, silently: a local
// registration of the same instance takes its place.
func (s *Server) shadow(instance string) {
	if cur := s.st.entries[instance]; cur != nil && cur.Origin != s.cfg.ServerID {
		s.st.remove(cur)
		s.remote.visible--
	}
}

// refresh shows the best copy of instance. typ is the event for a copy
// that goes without a replacement.
func (s *Server) refresh(instance string, typ EventType, now time.Time) {
	cur := s.st.entries[instance]
	if cur != nil && cur.Origin == s.cfg.ServerID {
		return
	}
	var best *entry
	for _, e := range s.remote.copies[instance] {
		if best == nil || e.Version > best.Version || e.Version == best.Version && e.Origin > best.Origin {
			best = e
		}
	}
	switch {
	case best == cur:
	case cur == nil:
		s.st.add(best)
		s.remote.visible++
		s.emit(EventRegister, best, now)
	case best == nil:
		s.st.remove(cur)
		s.remote.visible--
		s.emit(typ, cur, now)
	default:
		s.st.remove(cur)
		s.st.add(best)
		s.emit(EventUpdate, best, now)
	}
}

// remoteSet stores e as its origin's copy of its instance.
func (s *Server) remoteSet(e *entry, now time.Time) *Error {
	r := &s.remote
	o := r.origins[e.Origin]
	old := o[e.Instance]
	if old != nil && string(old.enc) == string(e.enc) {
		return nil
	}
	cs := r.copies[e.Instance]
	if old == nil {
		if r.ncopies >= s.cfg.MaxEntries {
			return &Error{Code: CodeLimit, Message: fmt.Sprintf("entries from other servers reach max entries (%d)", s.cfg.MaxEntries)}
		}
		r.ncopies++
		cs = append(cs, e)
	} else {
		cs[slices.Index(cs, old)] = e
	}
	if o == nil {
		o = map[string]*entry{}
		r.origins[e.Origin] = o
	}
	r.copies[e.Instance] = cs
	o[e.Instance] = e
	s.refresh(e.Instance, EventUpdate, now)
	return nil
}

// remoteDel removes origin's copy of instance.
func (s *Server) remoteDel(origin, instance string, typ EventType, now time.Time) {
	r := &s.remote
	o := r.origins[origin]
	old := o[instance]
	if old == nil {
		return
	}
	delete(o, instance)
	if len(o) == 0 {
		delete(r.origins, origin)
	}
	r.ncopies--
	cs := slices.DeleteFunc(r.copies[instance], func(x *entry) bool { return x == old })
	if len(cs) == 0 {
		delete(r.copies, instance)
	} else {
		r.copies[instance] = cs
	}
	s.refresh(instance, typ, now)
}

// remoteDelOrigin removes every copy of origin's entries.
func (s *Server) remoteDelOrigin(origin string, typ EventType, now time.Time) int {
	o := s.remote.origins[origin]
	n := len(o)
	for _, inst := range slices.Collect(maps.Keys(o)) {
		s.remoteDel(origin, inst, typ, now)
	}
	return n
}

// parseRemoteEntry decodes and checks an entry a peer sent for origin.
func (s *Server) parseRemoteEntry(raw []byte, origin string) (*entry, error) {
	var e Entry
	if err := e.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	if e.Proto == "" {
		e.Proto = DefaultProto
	}
	for _, err := range []*Error{checkName(e.Name), checkHost(e.Host), checkPort(int64(e.Port)),
		checkProto(e.Proto), checkMeta(e.Meta, int(s.cfg.MaxRequestBytes)), checkID("instance", e.Instance)} {
		if err != nil {
			return nil, err
		}
	}
	if e.Origin != origin {
		return nil, fmt.Errorf("entry %s has origin %s in a message about origin %s", e.Instance, quote(e.Origin), origin)
	}
	if origin == s.cfg.ServerID {
		return nil, fmt.Errorf("entry %s has this server's own id as origin", e.Instance)
	}
	if e.Version == 0 {
		return nil, fmt.Errorf("entry %s has version 0", e.Instance)
	}
	if len(e.Meta) == 0 {
		e.Meta = nil
	}
	en := &entry{Entry: e, hidx: -1}
	en.encode()
	return en, nil
}
