package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/zmtp"
)

// Join: servers share their registries (PROTOCOL.md, "Join (server sync)").
//
// Every server is the origin of the entries registered with it and numbers
// the changes of its entries with a counter of its own, seq. A link between
// two servers is one ZMTP connection, a DEALER of the server that joined to
// the ROUTER of the other, carrying SYNC messages both ways. It starts with
// a hello from each side (what each holds: a digest of origin → seq), then
// each sends the snapshots of the origins the other lacks or holds older,
// and from then on only changes, each stamped (origin, seq, prev). A server
// applies a change only on top of prev and forwards what it applied to its
// other links: a change crosses each link at most once in each direction,
// never loops, and a gap (a message dropped) makes it ask for a snapshot.
//
// Liveness is per origin too: each server's beat, a counter it raises every
// interval, travels in the digest each link carries every interval. An
// origin whose beat has not risen for the grace period is gone: its entries
// expire on every server that stopped hearing it, whatever the path.
//
// All of this state is owned by the server's loop (Serve's goroutine), like
// the rest of the registry; the goroutines of links this server dialled only
// read and write their socket and hand messages to the loop.

// DefaultJoinPort is the port of a join address without one.
const DefaultJoinPort = 8420

// Defaults of JoinConfig's fields.
const (
	DefaultJoinInterval  = time.Second
	DefaultJoinGrace     = 30 * time.Second
	DefaultJoinRedialMax = 10 * time.Second
	DefaultJoinMaxPeers  = 64
)

// Fixed bounds of what links make a server hold.
const (
	maxJoinOrigins  = 4096     // origins known at once
	maxInboundLinks = 1024     // links other servers dialled to us
	maxLinkQueue    = 64 << 20 // bytes queued for one dialled link's writer
)

// JoinConfig configures how a server shares its registry with others
// (Config.Join). The zero value joins nobody but accepts links.
type JoinConfig struct {
	// Peers are the servers to join at start: HOST, HOST:PORT or
	// tcp://HOST:PORT (port 8420 when omitted). More can be joined at run
	// time with the JOIN verb.
	Peers []string

	// Interval is how often each link carries a digest and this server's
	// beat. Default 1s.
	Interval time.Duration
	// Timeout drops a link on which nothing arrived for this long; a link
	// this server dialled is then dialled again. Default 5 × Interval.
	Timeout time.Duration
	// Grace is how long the entries of an origin stay after its beat was
	// last heard (through any link): then they expire. It must be well over
	// Interval times the number of hops between the farthest servers.
	// Default 30s.
	Grace time.Duration
	// RedialMax caps the backoff between attempts to dial a peer; the
	// first wait is Interval, doubling after each failed attempt. Default 10s.
	RedialMax time.Duration
	// MaxPeers bounds the peers this server dials (Peers and JOIN).
	// Default 64.
	MaxPeers int

	// Security, if set, makes the ZMTP security mechanism of links this
	// server dials to addr (HOST:PORT): CURVE's client side with the peer's
	// public key (package secure). nil: NULL, for trusted networks. Links
	// other servers dial to this one use Config.Security like any client.
	Security func(addr string) func() zmtp.Mechanism

	// OnLink is called from the server's loop whenever a link this server
	// dialled comes up (the peer's initial state applied) or goes down. It
	// must return quickly.
	OnLink func(LinkEvent)
}

// LinkEvent reports a dialled link coming up or going down.
type LinkEvent struct {
	Addr   string // HOST:PORT as dialled
	Peer   string // the peer's server id
	Up     bool
	Reason string // why it went down
}

func (c JoinConfig) withDefaults() JoinConfig {
	setDefault(&c.Interval, DefaultJoinInterval)
	setDefault(&c.Timeout, 5*c.Interval)
	setDefault(&c.Grace, DefaultJoinGrace)
	setDefault(&c.RedialMax, DefaultJoinRedialMax)
	setDefault(&c.MaxPeers, DefaultJoinMaxPeers)
	return c
}

func (c JoinConfig) verify() error {
	c = c.withDefaults()
	switch {
	case c.Interval < 0 || c.Timeout < 0 || c.Grace < 0 || c.RedialMax < 0 || c.MaxPeers < 0:
		return fmt.Errorf("registry: config: a Join duration or MaxPeers is negative")
	case c.Timeout < 2*c.Interval:
		return fmt.Errorf("registry: config: Join.Timeout %v must be at least twice Join.Interval %v", c.Timeout, c.Interval)
	case c.Grace < c.Timeout:
		return fmt.Errorf("registry: config: Join.Grace %v must be at least Join.Timeout %v", c.Grace, c.Timeout)
	case len(c.Peers) > c.MaxPeers:
		return fmt.Errorf("registry: config: %d Join.Peers, more than Join.MaxPeers %d", len(c.Peers), c.MaxPeers)
	}
	for _, p := range c.Peers {
		if _, _, err := ParseJoinAddr(p); err != nil {
			return fmt.Errorf("registry: config: %v", err)
		}
	}
	return nil
}

// ParseJoinAddr parses a join address, HOST, HOST:PORT or tcp://HOST:PORT
// (IPv6 as [::1]:8420 or ::1), and returns the ZMTP endpoint to dial and the
// HOST:PORT to show.
func ParseJoinAddr(s string) (endpoint, addr string, err error) {
	in := s
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if scheme != "tcp" {
			return "", "", fmt.Errorf("join address %s: only tcp:// servers can be joined", quote(in))
		}
		s = rest
	}
	host, port := s, strconv.Itoa(DefaultJoinPort)
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	if e := checkHost(host); e != nil {
		return "", "", fmt.Errorf("join address %s: %s", quote(in), e.Message)
	}
	if host == "*" {
		return "", "", fmt.Errorf("join address %s: name the server's host", quote(in))
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("join address %s: port %s: want 1-65535", quote(in), quote(port))
	}
	addr = net.JoinHostPort(host, strconv.Itoa(n))
	return "tcp://" + addr, addr, nil
}

// joinState is the server's join machinery. The first group of fields is
// shared with link goroutines (the inbox, the wake-up context under mu,
// counters); the loop owns the rest.
type joinState struct {
	cfg JoinConfig
	log *slog.Logger

	inbox   chan joinEvent
	woken   atomic.Bool
	mu      sync.Mutex
	wakeCtx context.Context
	wakeFn  context.CancelFunc
	stopCh  chan struct{} // closed when the loop ends: link goroutines stop
	wg      sync.WaitGroup
	stats   joinCounters

	// Owned by the loop.
	self     string
	clock    uint64 // last value of the hybrid clock (µs) seq and beats come from
	seq      uint64 // this server's last change
	beat     uint64 // this server's last beat
	origins  map[string]*origin
	tombs    map[string]tomb
	copies   map[string][]*entry // instance → remote copies, any origin
	ncopies  int
	visible  int // remote copies in the store (shown by LOOKUP)
	links    map[*link]struct{}
	byRID    map[string]*link
	dialers  map[string]*dialer // by endpoint
	dirty    []*link            // links with queued changes
	wantAt   map[string]time.Time
	lastTick time.Time
	running  bool
	warned   map[string]time.Time // rate-limited warnings
	scratch  []byte
}

// origin is what this server holds of another server's entries.
type origin struct {
	id      string
	seq     uint64 // the last change applied
	beat    uint64 // the origin's last beat heard
	heard   time.Time
	entries map[string]*entry // by instance
}

// tomb remembers an origin that expired here, so that a stale copy of its
// state (the same beat) does not bring it back. Collected after 2 × Grace.
type tomb struct {
	beat uint64
	at   time.Time
}

type joinCounters struct {
	msgsOut, bytesOut, msgsIn, bytesIn      atomic.Int64
	deltaMsgsOut, deltaBytesOut, changesOut atomic.Int64
	snapsOut, snapPartsOut, snapBytesOut    atomic.Int64
	tickBytesOut, wantsOut, dropped         atomic.Int64
	changesIn, dupsIn, gapsIn, snapsIn      atomic.Int64
	originsExpired, entriesExpired, linksUp atomic.Int64
	linksDown, localChanges, protocolErrors atomic.Int64
}

// JoinStats are a server's join counters since it started.
type JoinStats struct {
	MsgsOut        int64 `json:"msgs_out"`        // SYNC messages sent
	BytesOut       int64 `json:"bytes_out"`       // their bytes on the wire (ZMTP frames, before CURVE)
	MsgsIn         int64 `json:"msgs_in"`         // SYNC messages received
	BytesIn        int64 `json:"bytes_in"`        // their bytes
	DeltaMsgsOut   int64 `json:"delta_msgs_out"`  // delta messages sent
	DeltaBytesOut  int64 `json:"delta_bytes_out"` // their bytes
	ChangesOut     int64 `json:"changes_out"`     // changes sent, counted once per link
	SnapsOut       int64 `json:"snaps_out"`       // origin snapshots sent
	SnapPartsOut   int64 `json:"snap_parts_out"`  // messages they took
	SnapBytesOut   int64 `json:"snap_bytes_out"`  // their bytes
	TickBytesOut   int64 `json:"tick_bytes_out"`  // bytes of hellos and ticks (digests)
	WantsOut       int64 `json:"wants_out"`       // snapshots asked for (a gap or a peer ahead)
	Dropped        int64 `json:"dropped"`         // messages a full or gone peer did not take
	ChangesIn      int64 `json:"changes_in"`      // changes applied
	DupsIn         int64 `json:"dups_in"`         // changes received that were already applied
	GapsIn         int64 `json:"gaps_in"`         // changes received out of order (a snapshot is asked for)
	SnapsIn        int64 `json:"snaps_in"`        // snapshots applied
	OriginsExpired int64 `json:"origins_expired"` // origins not heard for the grace period
	EntriesExpired int64 `json:"entries_expired"` // their entries
	LinksUp        int64 `json:"links_up"`        // links that came up
	LinksDown      int64 `json:"links_down"`      // links dropped
	LocalChanges   int64 `json:"local_changes"`   // changes of this server's own entries
	ProtocolErrors int64 `json:"protocol_errors"` // SYNC messages refused as malformed
}

// JoinStats returns the server's join counters; safe to call at any time.
func (s *Server) JoinStats() JoinStats {
	c := &s.j.stats
	return JoinStats{
		MsgsOut: c.msgsOut.Load(), BytesOut: c.bytesOut.Load(), MsgsIn: c.msgsIn.Load(), BytesIn: c.bytesIn.Load(),
		DeltaMsgsOut: c.deltaMsgsOut.Load(), DeltaBytesOut: c.deltaBytesOut.Load(), ChangesOut: c.changesOut.Load(),
		SnapsOut: c.snapsOut.Load(), SnapPartsOut: c.snapPartsOut.Load(), SnapBytesOut: c.snapBytesOut.Load(),
		TickBytesOut: c.tickBytesOut.Load(), WantsOut: c.wantsOut.Load(), Dropped: c.dropped.Load(),
		ChangesIn: c.changesIn.Load(), DupsIn: c.dupsIn.Load(), GapsIn: c.gapsIn.Load(), SnapsIn: c.snapsIn.Load(),
		OriginsExpired: c.originsExpired.Load(), EntriesExpired: c.entriesExpired.Load(),
		LinksUp: c.linksUp.Load(), LinksDown: c.linksDown.Load(), LocalChanges: c.localChanges.Load(),
		ProtocolErrors: c.protocolErrors.Load(),
	}
}

// JoinInfo is the "join" object of the INFO reply.
type JoinInfo struct {
	Links   []LinkInfo   `json:"links"`
	Origins []OriginInfo `json:"origins"`
	Remote  int          `json:"remote_entries"` // entries learned from other servers
	JoinStats
}

// LinkInfo describes one link (INFO).
type LinkInfo struct {
	Addr   string  `json:"addr,omitempty"`  // HOST:PORT, for links this server dialled
	Dir    string  `json:"dir"`             // "out" (dialled by this server) or "in"
	Peer   string  `json:"peer,omitempty"`  // the peer's server id, once known
	Up     bool    `json:"up"`              // hellos exchanged
	Synced bool    `json:"synced"`          // the peer's initial state applied
	Since  float64 `json:"since,omitempty"` // seconds since it came up
}

// OriginInfo describes one origin this server holds entries of (INFO).
type OriginInfo struct {
	Origin  string  `json:"origin"`
	Entries int     `json:"entries"`
	Heard   float64 `json:"heard"` // seconds since its beat was last heard
}

func init() {
	verbs = append(verbs, VerbJoin) // PROTOCOL.md section 5, JOIN
}

func newJoinState(cfg JoinConfig, log *slog.Logger, self string) *joinState {
	j := &joinState{
		cfg: cfg.withDefaults(), log: log, self: self,
		inbox: make(chan joinEvent, 1024), stopCh: make(chan struct{}),
		origins: map[string]*origin{}, tombs: map[string]tomb{}, copies: map[string][]*entry{},
		links: map[*link]struct{}{}, byRID: map[string]*link{}, dialers: map[string]*dialer{},
		wantAt: map[string]time.Time{}, warned: map[string]time.Time{},
	}
	j.wakeCtx, j.wakeFn = context.WithCancel(context.Background())
	j.seq = j.next()
	j.beat = j.next()
	return j
}

// next draws from the hybrid clock: the wall clock in microseconds, or one
// more than the last value if that is not behind it. So an origin's seq and
// beat keep growing across restarts of a server that keeps its id.
func (j *joinState) next() uint64 {
	now := uint64(time.Now().UnixMicro())
	if now <= j.clock {
		now = j.clock + 1
	}
	j.clock = now
	return now
}

// wake makes the loop's receive return, so that it reads the inbox.
func (j *joinState) wake() {
	if j.woken.Load() {
		return
	}
	j.mu.Lock()
	if !j.woken.Load() {
		j.woken.Store(true)
		j.wakeFn()
	}
	j.mu.Unlock()
}

// recvContext is the context the loop receives with: cancelled by wake.
func (j *joinState) recvContext() context.Context {
	if j.woken.Load() {
		j.mu.Lock()
		j.wakeCtx, j.wakeFn = context.WithCancel(context.Background())
		j.woken.Store(false)
		j.mu.Unlock()
	}
	return j.wakeCtx
}

// warnEvery logs a warning at most once a minute per key.
func (j *joinState) warnEvery(key, msg string, args ...any) {
	now := time.Now()
	if t, ok := j.warned[key]; ok && now.Sub(t) < time.Minute {
		return
	}
	if len(j.warned) > 256 {
		clear(j.warned)
	}
	j.warned[key] = now
	j.log.Warn(msg, args...)
}

// joinStart runs in Serve before the loop: the ticker and the dialers of
// Config.Join.Peers.
func (s *Server) joinStart(now time.Time) {
	j := s.j
	j.running = true
	j.lastTick = now
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		t := time.NewTicker(j.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				j.wake()
			case <-j.stopCh:
				return
			}
		}
	}()
	for _, p := range j.cfg.Peers {
		if _, _, err := s.joinPeer(p); err != nil {
			j.log.Error("join: cannot join", "peer", p, "err", err)
		}
	}
}

// joinStop runs when the loop ends: every link goroutine stops.
func (s *Server) joinStop() {
	j := s.j
	if !j.running {
		return
	}
	close(j.stopCh)
	for _, d := range j.dialers {
		d.close()
	}
	for l := range j.links {
		if l.sess != nil {
			l.sess.cancel()
		}
	}
	j.wg.Wait()
	for {
		select {
		case <-j.inbox:
		default:
			return
		}
	}
}

// joinPoll runs at the top of every loop iteration: it handles what link
// goroutines delivered, runs the tick when due, and returns the context
// the loop's receive is to use.
func (s *Server) joinPoll() context.Context {
	j := s.j
	if !j.woken.Load() {
		return j.wakeCtx // nothing new: the request path pays one atomic load
	}
	ctx := j.recvContext()
	busy := false
	if n := len(j.inbox); n > 0 {
		now := time.Now()
		for range n {
			s.joinEvent(<-j.inbox, now)
		}
		busy = true
	}
	if j.running {
		if now := time.Now(); now.Sub(j.lastTick) >= j.cfg.Interval {
			j.lastTick = now
			s.joinTick(now)
			busy = true
		}
	}
	if busy {
		s.joinFlush()
		s.updateGauges()
	}
	return ctx
}

// joinFlush sends the changes queued for links.
func (s *Server) joinFlush() {
	j := s.j
	for _, l := range j.dirty {
		s.linkFlush(l)
	}
	clear(j.dirty)
	j.dirty = j.dirty[:0]
}

// joinPeer starts dialling a peer; it reports the HOST:PORT and whether the
// peer is new.
func (s *Server) joinPeer(peer string) (addr string, isNew bool, err error) {
	j := s.j
	ep, addr, err := ParseJoinAddr(peer)
	if err != nil {
		return "", false, err
	}
	if j.dialers[ep] != nil {
		return addr, false, nil
	}
	if len(j.dialers) >= j.cfg.MaxPeers {
		return "", false, &Error{Code: CodeLimit, Message: fmt.Sprintf("this server already joins %d peers, its limit", j.cfg.MaxPeers)}
	}
	d := &dialer{addr: addr, ep: ep, stop: make(chan struct{})}
	j.dialers[ep] = d
	j.log.Info("join: joining", "peer", addr)
	j.wg.Add(1)
	go s.runDialer(d)
	return addr, true, nil
}

type joinReply struct {
	Peer string `json:"peer"`
	New  bool   `json:"new"`
}

// joinVerb answers JOIN {"peer":"HOST[:PORT]"}.
func (s *Server) joinVerb(frames [][]byte) (any, *Error) {
	var body struct {
		Peer *string `json:"peer"`
	}
	if len(frames) == 2 && len(frames[1]) > 0 {
		if err := json.Unmarshal(frames[1], &body); err != nil {
			return nil, badRequest("body: field \"peer\": want a string")
		}
	}
	if body.Peer == nil || *body.Peer == "" {
		return nil, badRequest("peer is missing: want HOST, HOST:PORT or tcp://HOST:PORT")
	}
	if !s.j.running {
		return nil, &Error{Code: CodeBadRequest, Message: "the server is not serving"}
	}
	addr, isNew, err := s.joinPeer(*body.Peer)
	if err != nil {
		if e, ok := err.(*Error); ok {
			return nil, e
		}
		return nil, badRequest("%v", err)
	}
	return joinReply{Peer: addr, New: isNew}, nil
}

// ---- Local entries: this server's origin ----

// joinLocal records a change of a local entry (op: set, deregister,
// expire) and queues it for every link. After a removal, a remote copy of
// the same instance may show again.
func (s *Server) joinLocal(op string, e *entry, now time.Time) {
	j := s.j
	prev := j.seq
	j.seq = j.next()
	j.stats.localChanges.Add(1)
	if len(j.links) > 0 {
		c := change{Origin: j.self, Seq: j.seq, Prev: prev, Op: op}
		if op == opSet {
			c.Entry = e.enc
		} else {
			c.Instance = e.Instance
		}
		s.joinForward(&c, nil)
	}
	if op != opSet && len(j.copies[e.Instance]) > 0 {
		s.joinRefresh(e.Instance, EventDeregister, now)
	}
}

// joinShadow hides a remote copy of instance from the store, silently: a
// local registration of the same instance takes its place.
func (s *Server) joinShadow(instance string) {
	if cur := s.st.entries[instance]; cur != nil && cur.Origin != s.cfg.ServerID {
		s.st.remove(cur)
		s.j.visible--
	}
}

// localEntries is the number of entries this server originates.
func (s *Server) localEntries() int { return len(s.st.entries) - s.j.visible }

// joinRefresh shows the best copy of instance: a local entry if there is
// one, else the remote copy with the highest version (then the highest
// origin id, so that every server picks the same). typ is the event for a
// copy that goes without a replacement.
func (s *Server) joinRefresh(instance string, typ EventType, now time.Time) {
	cur := s.st.entries[instance]
	if cur != nil && cur.Origin == s.cfg.ServerID {
		return
	}
	var best *entry
	for _, e := range s.j.copies[instance] {
		if best == nil || e.Version > best.Version || e.Version == best.Version && e.Origin > best.Origin {
			best = e
		}
	}
	switch {
	case best == cur:
	case cur == nil:
		s.st.add(best)
		s.j.visible++
		s.emit(EventRegister, best, now)
	case best == nil:
		s.st.remove(cur)
		s.j.visible--
		s.emit(typ, cur, now)
	default:
		s.st.remove(cur)
		s.st.add(best)
		s.emit(EventUpdate, best, now)
	}
}

// remoteSet stores e as origin o's copy of its instance.
func (s *Server) remoteSet(o *origin, e *entry, now time.Time) {
	j := s.j
	old := o.entries[e.Instance]
	if old != nil && string(old.enc) == string(e.enc) {
		return
	}
	cs := j.copies[e.Instance]
	if old == nil {
		if j.ncopies >= s.cfg.MaxEntries {
			j.warnEvery("full", "join: entries from other servers reach max entries; dropping the excess",
				"max_entries", s.cfg.MaxEntries, "origin", o.id)
			return
		}
		j.ncopies++
		cs = append(cs, e)
	} else {
		cs[slices.Index(cs, old)] = e
	}
	j.copies[e.Instance] = cs
	o.entries[e.Instance] = e
	s.joinRefresh(e.Instance, EventUpdate, now)
}

// remoteDel removes origin o's copy of instance.
func (s *Server) remoteDel(o *origin, instance string, typ EventType, now time.Time) {
	j := s.j
	old := o.entries[instance]
	if old == nil {
		return
	}
	delete(o.entries, instance)
	j.ncopies--
	cs := slices.DeleteFunc(j.copies[instance], func(x *entry) bool { return x == old })
	if len(cs) == 0 {
		delete(j.copies, instance)
	} else {
		j.copies[instance] = cs
	}
	s.joinRefresh(instance, typ, now)
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

// joinExpireOrigin drops every entry of an origin not heard for the grace
// period.
func (s *Server) joinExpireOrigin(o *origin, now time.Time) {
	j := s.j
	n := len(o.entries)
	for inst := range o.entries {
		s.remoteDel(o, inst, EventExpire, now)
	}
	delete(j.origins, o.id)
	delete(j.wantAt, o.id)
	j.tombs[o.id] = tomb{beat: o.beat, at: now}
	for l := range j.links {
		delete(l.peerSeq, o.id)
	}
	j.stats.originsExpired.Add(1)
	j.stats.entriesExpired.Add(int64(n))
	j.log.Info("join: origin lost: its entries expired", "origin", o.id, "entries", n,
		"silent", now.Sub(o.heard).Round(time.Millisecond))
}

// hear records an origin's beat, heard age ago.
func (o *origin) hear(beat uint64, age time.Duration, now time.Time) {
	at := now.Add(-age)
	switch {
	case beat > o.beat:
		o.beat, o.heard = beat, at
	case beat == o.beat && at.After(o.heard):
		o.heard = at
	}
}

// joinTick runs every Interval: this server's beat, link timeouts and
// digests, origin expiry.
func (s *Server) joinTick(now time.Time) {
	j := s.j
	j.beat = j.next()
	for l := range j.links {
		if now.Sub(l.heard) > l.timeout {
			s.linkDown(l, fmt.Sprintf("nothing heard for %v", now.Sub(l.heard).Round(time.Millisecond)))
		}
	}
	for _, o := range j.origins {
		if now.Sub(o.heard) > j.cfg.Grace {
			s.joinExpireOrigin(o, now)
		}
	}
	for id, t := range j.tombs {
		if now.Sub(t.at) > 2*j.cfg.Grace {
			delete(j.tombs, id)
		}
	}
	for id, t := range j.wantAt {
		if now.Sub(t) > j.cfg.Timeout {
			delete(j.wantAt, id)
		}
	}
	var tick [][]byte
	for l := range j.links {
		switch {
		case l.up:
			if tick == nil {
				tick = s.digestMsgs(msgTick, now)
			}
			for _, m := range tick {
				s.linkSend(l, m, &j.stats.tickBytesOut)
			}
		case l.rehello:
			s.sendHello(l, now)
		}
	}
}

// digestMsgs builds a hello or tick message with the digest of every
// origin held: one message, or several if it is too large for one (the
// first then carries the hello, the others are ticks).
func (s *Server) digestMsgs(t string, now time.Time) [][]byte {
	j := s.j
	// Small enough for every peer we know (hello: before we know).
	m := min(s.cfg.MaxRequestBytes, 64<<10)
	for l := range j.links {
		if l.max > 0 {
			m = min(m, l.max)
		}
	}
	budget := int(m) - 512
	var out [][]byte
	var b []byte
	n := 0
	open := func() {
		b = append(make([]byte, 0, 256), `{"t":"`...)
		b = append(b, t...)
		b = append(b, '"')
		if t == msgHello {
			b = appendIntField(b, "v", linkVersion)
			b = appendStringField(b, "server", j.self)
			b = appendStringField(b, "boot", s.boot)
			b = appendIntField(b, "max", s.cfg.MaxRequestBytes)
			b = append(b, `,"interval":`...)
			b = strconv.AppendFloat(b, j.cfg.Interval.Seconds(), 'g', -1, 64)
		}
		b = append(b, `,"digest":{`...)
		n = 0
	}
	add := func(id string, d digestItem) {
		if n > 0 && len(b) > budget {
			out = append(out, append(b, "}}"...))
			t = msgTick
			open()
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, id)
		b = append(b, ':')
		b = d.append(b)
		n++
	}
	open()
	add(j.self, digestItem{Seq: j.seq, Beat: j.beat})
	for id, o := range j.origins {
		add(id, digestItem{Seq: o.seq, Beat: o.beat, Age: uint64(max(now.Sub(o.heard), 0).Milliseconds())})
	}
	return append(out, append(b, "}}"...))
}

// joinInfo is INFO's "join" object.
func (s *Server) joinInfo(now time.Time) *JoinInfo {
	j := s.j
	if len(j.links) == 0 && len(j.dialers) == 0 && len(j.origins) == 0 {
		return nil
	}
	ji := &JoinInfo{Links: []LinkInfo{}, Origins: []OriginInfo{}, Remote: j.ncopies, JoinStats: s.JoinStats()}
	seen := map[*dialer]bool{}
	for l := range j.links {
		li := LinkInfo{Dir: "in", Peer: l.peer, Up: l.up, Synced: l.synced}
		if l.sess != nil {
			li.Dir, li.Addr = "out", l.sess.d.addr
			seen[l.sess.d] = true
		}
		if l.up {
			li.Since = now.Sub(l.since).Seconds()
		}
		ji.Links = append(ji.Links, li)
	}
	for _, d := range j.dialers {
		if !seen[d] && !d.closed {
			ji.Links = append(ji.Links, LinkInfo{Dir: "out", Addr: d.addr})
		}
	}
	slices.SortFunc(ji.Links, func(a, b LinkInfo) int {
		return strings.Compare(a.Dir+a.Addr+a.Peer, b.Dir+b.Addr+b.Peer)
	})
	for id, o := range j.origins {
		ji.Origins = append(ji.Origins, OriginInfo{Origin: id, Entries: len(o.entries), Heard: now.Sub(o.heard).Seconds()})
	}
	slices.SortFunc(ji.Origins, func(a, b OriginInfo) int { return strings.Compare(a.Origin, b.Origin) })
	return ji
}
