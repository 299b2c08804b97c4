package join

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp"
)

// Join is one server's replication: a registry.Replicator. Give it to
// registry.Config.Replicator; one Join serves one Server.
//
// Its state is owned by the server's loop, like the registry's: every
// method of registry.Replicator runs there. The goroutines of links this
// server dialled only read and write their socket and post what they
// received to the loop (registry.Host.Post). Stats may be called from any
// goroutine.
type Join struct {
	cfg Config
	log *slog.Logger
	h   *registry.Host
	// host is h for goroutines other than the loop's (Depart): set once
	// Start ran.
	host atomic.Pointer[registry.Host]

	stopCh chan struct{} // closed when the loop ends: link goroutines stop
	wg     sync.WaitGroup
	stats  counters

	// Owned by the loop.
	self    string
	clock   uint64 // last value of the hybrid clock (µs) seq and beats come from
	seq     uint64 // this server's last change
	beat    uint64 // this server's last beat
	beatSig []byte // its signature (with a Signer)
	// This origin's snapshot, signed, while seq is selfSnapSeq; and the
	// changes since the last one pushed to every link (a checkpoint).
	selfSnap    []Snap
	selfSnapSeq uint64
	sinceCkpt   int
	sigBuf      []byte
	origins     map[string]*origin
	tombs       map[string]tomb
	links       map[*link]struct{}
	byRID       map[string]*link
	dialers     map[string]*dialer  // by HOST:PORT
	dirty       []*link             // links with queued changes
	backlog     []*link             // links with messages queued behind a snapshot (drain)
	encCache    map[string]*encSnap // each origin's snapshot, encoded once per version
	wantAt      map[string]time.Time
	running     bool
	departed    bool                 // the leave was sent (Depart): nothing is sent any more
	warned      map[string]time.Time // rate-limited warnings
	refused     map[string]string    // peers no longer dialled as they refused, and why
	scratch     []byte
}

var _ registry.Replicator = (*Join)(nil)

// origin is what this server knows of another server's entries (the
// entries themselves are in the registry: registry.Host).
type origin struct {
	id  string
	seq uint64 // the last change applied
	// The origin's newest beat heard, its signature and when it was heard
	// (what digests pass on), and the newest of them checked (with
	// signing: its signature valid; without, the same) and when: liveness
	// goes by the checked beat. A beat is checked only when the origin
	// needs it, unheard for verifyEvery, so that a server checks one
	// signature per origin per verifyEvery, not one per digest, and a
	// relay passes on the newest beat at once (checked or not), so that
	// the checks of each hop do not add up.
	beat    uint64
	beatSig []byte
	seenAt  time.Time
	checked uint64
	chkSig  []byte
	heard   time.Time
	sigSent uint64 // the beat whose signature the last tick carried
	// What this server passes on as the origin's snapshot, as the origin
	// made it: its last snapshot taken (base, at baseSeq; nil when none
	// can be given) and the encoded changes applied since (log).
	base    []Snap
	baseSeq uint64
	log     [][]byte
}

// tomb remembers an origin that expired or left here, so that a stale copy
// of its state does not bring it back: after an expiry, one with the same
// beat; after a leave, one older than the leave. Collected after 2 × Grace.
type tomb struct {
	beat, seq uint64
	left      bool
	at        time.Time
}

// blocks reports whether a state of the origin at seq and beat is stale.
func (t tomb) blocks(seq, beat uint64) bool {
	if t.left {
		return seq <= t.seq
	}
	return beat <= t.beat
}

// Checkpoints: this server sends its whole signed snapshot to every link
// after ckptMin changes or as many as it has entries, whichever is more,
// so that relays' logs of its changes stay bounded (a relay with a log
// longer than twice that gives up passing on the origin's snapshots).
const ckptMin = 256

func ckptEvery(entries int) int { return max(ckptMin, entries) }

// New makes a Join from cfg, for one registry.Server.
func New(cfg Config) (*Join, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Join{
		cfg: cfg, log: slog.New(slog.DiscardHandler), stopCh: make(chan struct{}),
		origins: map[string]*origin{}, tombs: map[string]tomb{},
		links: map[*link]struct{}{}, byRID: map[string]*link{}, dialers: map[string]*dialer{},
		wantAt: map[string]time.Time{}, encCache: map[string]*encSnap{}, warned: map[string]time.Time{}, refused: map[string]string{},
	}, nil
}

// next draws from the hybrid clock: the wall clock in microseconds, or one
// more than the last value if that is not behind it. So an origin's seq and
// beat keep growing across restarts of a server that keeps its id.
func (j *Join) next() uint64 {
	now := uint64(time.Now().UnixMicro())
	if now <= j.clock {
		now = j.clock + 1
	}
	j.clock = now
	return now
}

// warnEvery logs a warning at most once a minute per key.
func (j *Join) warnEvery(key, msg string, args ...any) {
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

// Start dials Config.Peers (registry.Replicator).
func (j *Join) Start(h *registry.Host, now time.Time) {
	j.h = h
	j.host.Store(h)
	j.log = h.Logger()
	j.self = h.ID()
	j.seq = j.next()
	j.beat = j.next()
	if j.signed() {
		if want := OriginID(j.cfg.Signer.Public); j.self != want {
			j.log.Error("join: with signed records the server id must be its signing key's origin id: peers will refuse this server's records",
				"server_id", j.self, "want", want)
		}
		j.beatSig = SignBeat(j.cfg.Signer, j.self, j.beat)
	}
	j.running = true
	for _, p := range j.cfg.Peers {
		if _, _, err := j.joinPeer(p, nil); err != nil {
			j.log.Error("join: cannot join", "peer", p, "err", err)
		}
	}
}

// Interval is Config.Interval (registry.Replicator).
func (j *Join) Interval() time.Duration { return j.cfg.Interval }

// drainWait bounds how long Stop waits for the leave to be written on the
// links this server dialled.
const drainWait = time.Second

// Stop tells every peer that this server's origin leaves (a signed leave
// change: its entries go at once everywhere), then ends every link
// goroutine (registry.Replicator).
func (j *Join) Stop() {
	if !j.running {
		return
	}
	j.running = false
	if !j.departed {
		// Not told by Depart: the ROUTER may be closed already, but the
		// links this server dialled can still carry the leave.
		waitDrained(j.depart(true))
	}
	close(j.stopCh)
	for _, d := range j.dialers {
		d.close()
	}
	for l := range j.links {
		l.tr.end()
	}
	j.wg.Wait()
}

// Flush sends the changes queued for links, and the next slice of the
// snapshots queued (registry.Replicator).
func (j *Join) Flush() {
	for _, l := range j.dirty {
		j.linkFlush(l)
	}
	clear(j.dirty)
	j.dirty = j.dirty[:0]
	if len(j.backlog) > 0 {
		j.drain()
	}
}

// Depart tells every peer that this server's origin leaves (a leave
// change, signed with a Signer): their lookups lose its entries at once and
// their watchers get deregister events, rather than after the grace. Call
// it just before closing the server (node.Run does, on SIGTERM): from then
// on join sends its peers nothing. It returns when the links this server
// dialled wrote it, after drainWait at most, or when ctx ends; the ROUTER
// flushes the others as the server closes. Any goroutine may call it.
func (j *Join) Depart(ctx context.Context) {
	h := j.host.Load()
	if h == nil {
		return // never started
	}
	got := make(chan []*session, 1)
	if !h.Post(ctx.Done(), func() { got <- j.depart(false) }) {
		return
	}
	select {
	case ss := <-got:
		waitDrained(ss)
	case <-ctx.Done():
	}
}

// depart sends the leave on every link up (only on the links this server
// dialled if sessionsOnly), stops all further sends, and closes the queues
// of the dialled links' writers, which it returns: they end once they
// wrote what is queued.
func (j *Join) depart(sessionsOnly bool) []*session {
	if j.departed {
		return nil
	}
	c := Change{Origin: j.self, Seq: j.next(), Prev: j.seq, Op: OpLeave}
	j.seq = c.Seq
	if j.signed() {
		SignChange(j.cfg.Signer, &c)
	}
	var out []*session
	for l := range j.links {
		j.dropQueue(l) // the leave goes now; the rest no longer matters
	}
	for l := range j.links {
		ss, isSession := l.tr.(*session)
		if !l.state.up() || sessionsOnly && !isSession {
			continue
		}
		j.linkSend(l, Delta{Changes: []Change{c}}.Append(nil), &j.stats.deltaBytesOut)
		if isSession {
			ss.closed = true
			close(ss.out)
			out = append(out, ss)
		}
	}
	j.departed = true
	j.log.Info("join: leaving: told the peers", "links", len(j.links))
	return out
}

// waitDrained waits, up to drainWait, for the writers of ss to end.
func waitDrained(ss []*session) {
	if len(ss) == 0 {
		return
	}
	deadline := time.NewTimer(drainWait)
	defer deadline.Stop()
	for _, s := range ss {
		select {
		case <-s.wdone:
		case <-deadline.C:
			return
		}
	}
}

// joinPeer starts dialling a peer; it reports the HOST:PORT and whether the
// peer is new. sec, if set, is the link's mechanism (a JOIN with a key);
// else Config.Security's for the address.
func (j *Join) joinPeer(peer string, sec func() zmtp.Mechanism) (addr string, isNew bool, err error) {
	addr, err = ParseAddr(peer)
	if err != nil {
		return "", false, err
	}
	if j.dialers[addr] != nil {
		return addr, false, nil
	}
	if sec == nil && j.cfg.Security != nil {
		sec = j.cfg.Security(addr)
	}
	if sec == nil && j.cfg.CurveTo != nil {
		return "", false, &registry.Error{Code: registry.CodeBadRequest, Message: fmt.Sprintf("no public key for %s: this server runs CURVE, so its join links need the peer's key", addr)}
	}
	if len(j.dialers) >= j.cfg.MaxPeers {
		return "", false, &registry.Error{Code: registry.CodeLimit, Message: fmt.Sprintf("this server already joins %d peers, its limit", j.cfg.MaxPeers)}
	}
	delete(j.refused, addr)
	d := &dialer{addr: addr, stop: make(chan struct{}), sec: sec}
	j.dialers[addr] = d
	j.log.Info("join: joining", "peer", addr)
	j.wg.Add(1)
	go j.runDialer(d)
	return addr, true, nil
}

// peerOf reads the "peer" and "key" of a JOIN or LEAVE body.
func peerOf(body []byte) (peer, key string, _ *registry.Error) {
	var req struct {
		Peer *string `json:"peer"`
		Key  *string `json:"key"`
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return "", "", &registry.Error{Code: registry.CodeBadRequest, Message: "body: fields \"peer\" and \"key\": want strings"}
		}
	}
	if req.Peer == nil || *req.Peer == "" {
		return "", "", &registry.Error{Code: registry.CodeBadRequest, Message: "peer is missing: want HOST, HOST:PORT or tcp://HOST:PORT"}
	}
	if req.Key != nil {
		key = *req.Key
	}
	return *req.Peer, key, nil
}

type joinReply struct {
	Peer string `json:"peer"`
	New  bool   `json:"new"`
}

// Join answers JOIN {"peer":"HOST[:PORT]","key":"Z85"} (registry.Replicator).
// On a CURVE server (Config.CurveTo) "key", the peer's public key, is
// required and the link is CURVE with it: never a plaintext link.
func (j *Join) Join(body []byte) (any, *registry.Error) {
	peer, key, perr := peerOf(body)
	if perr != nil {
		return nil, perr
	}
	var sec func() zmtp.Mechanism
	switch {
	case j.cfg.CurveTo != nil && key == "":
		return nil, &registry.Error{Code: registry.CodeBadRequest, Message: "key is missing: this server runs CURVE, so JOIN needs the peer's public key (\"key\", Z85)"}
	case j.cfg.CurveTo == nil && key != "":
		return nil, &registry.Error{Code: registry.CodeBadRequest, Message: "key: this server does not run CURVE: its join links are NULL, so a key would not be used"}
	case key != "":
		pub, err := secure.ParsePublicKey(key)
		if err != nil {
			return nil, &registry.Error{Code: registry.CodeBadRequest, Message: fmt.Sprintf("key: %v", err)}
		}
		sec = j.cfg.CurveTo(pub)
	}
	addr, isNew, err := j.joinPeer(peer, sec)
	if err != nil {
		if e, ok := err.(*registry.Error); ok {
			return nil, e
		}
		return nil, &registry.Error{Code: registry.CodeBadRequest, Message: err.Error()}
	}
	return joinReply{Peer: addr, New: isNew}, nil
}

type leaveReply struct {
	Peer string `json:"peer"`
}

// Leave answers LEAVE {"peer":"HOST[:PORT]"} (registry.Leaver): this
// server stops dialling the peer and drops its link. The entries learned
// through it expire as usual, when their origins are heard by no other
// link for the grace period. A peer not joined is a not_found error.
func (j *Join) Leave(body []byte) (any, *registry.Error) {
	peer, _, perr := peerOf(body)
	if perr != nil {
		return nil, perr
	}
	addr, err := ParseAddr(peer)
	if err != nil {
		return nil, &registry.Error{Code: registry.CodeBadRequest, Message: err.Error()}
	}
	d := j.dialers[addr]
	if d == nil {
		return nil, &registry.Error{Code: registry.CodeNotFound, Message: fmt.Sprintf("this server does not join %s (its links: hydra-server join --list)", addr)}
	}
	d.closed = true
	d.close()
	delete(j.dialers, addr)
	for l := range j.links {
		if l.tr.dialer() == d {
			j.linkDown(l, reasonLeft)
		}
	}
	j.log.Info("join: left", "peer", addr)
	return leaveReply{Peer: addr}, nil
}

// ---- Local entries: this server's origin ----

// Changed records a change of a local entry and queues it for every link
// (registry.Replicator).
func (j *Join) Changed(typ registry.EventType, instance string, entry []byte, now time.Time) {
	prev := j.seq
	j.seq = j.next()
	j.stats.localChanges.Add(1)
	if len(j.links) == 0 {
		return
	}
	c := Change{Origin: j.self, Seq: j.seq, Prev: prev}
	switch typ {
	case registry.EventRegister, registry.EventUpdate:
		c.Op, c.Entry = OpSet, entry
	case registry.EventExpire:
		c.Op, c.Instance = OpExpire, instance
	default:
		c.Op, c.Instance = OpDeregister, instance
	}
	if j.signed() {
		SignChange(j.cfg.Signer, &c)
	}
	j.scratch = c.Append(j.scratch[:0])
	j.forwardEnc(c.Origin, c.Seq, j.scratch, nil)
	if j.sinceCkpt++; j.sinceCkpt >= ckptEvery(j.h.Entries(j.self)) {
		j.sinceCkpt = 0
		for l := range j.links {
			if l.state.up() {
				j.sendSnap(l, j.self, now)
			}
		}
	}
}

// expireOrigin drops every entry of an origin not heard for the grace
// period.
func (j *Join) expireOrigin(o *origin, now time.Time) {
	n := j.h.DeleteOrigin(o.id, registry.EventExpire)
	delete(j.origins, o.id)
	delete(j.wantAt, o.id)
	j.tombs[o.id] = tomb{beat: o.checked, seq: o.seq, at: now}
	for l := range j.links {
		delete(l.peerSeq, o.id)
		delete(l.snapAt, o.id)
	}
	delete(j.encCache, o.id)
	j.stats.originsExpired.Add(1)
	j.stats.entriesExpired.Add(int64(n))
	j.log.Info("join: origin lost: its entries expired", "origin", o.id, "entries", n,
		"silent", now.Sub(o.heard).Round(time.Millisecond))
}

// hear records an origin's beat, heard age ago. With signing only a new
// beat makes the origin heard (a relay cannot keep a silent origin alive
// by saying it heard the last beat again, later), and only once checked.
func (j *Join) hear(o *origin, beat uint64, sig []byte, age time.Duration, now time.Time) {
	at := now.Add(-age)
	switch {
	case beat > o.beat && j.signed():
		if len(sig) == 0 {
			return
		}
		o.beat, o.beatSig, o.seenAt = beat, sig, at
		if now.Sub(o.heard) >= j.verifyEvery() {
			j.checkBeat(o)
		}
	case beat > o.beat:
		o.beat, o.checked, o.seenAt, o.heard = beat, beat, at, at
	case beat == o.beat && !j.signed() && at.After(o.heard):
		o.seenAt, o.heard = at, at
	}
}

// verifyEvery is how stale an origin's last checked beat may get before
// its newest is checked: well within the grace.
func (j *Join) verifyEvery() time.Duration { return j.cfg.Grace / 4 }

// checkBeat checks o's newest beat: o is heard then if it is o's; if not,
// the newest falls back to the checked one (what a liar sent goes).
func (j *Join) checkBeat(o *origin) {
	if o.beat <= o.checked {
		return
	}
	if j.verifyBeat(o.id, o.beat, o.beatSig) {
		o.checked, o.chkSig, o.heard = o.beat, o.beatSig, o.seenAt
		return
	}
	j.stats.refusedIn.Add(1)
	o.beat, o.beatSig, o.seenAt = o.checked, o.chkSig, o.heard
}

// lastHeard is when o's newest beat was heard, checked or not (INFO).
func (o *origin) lastHeard() time.Time {
	if o.seenAt.After(o.heard) {
		return o.seenAt
	}
	return o.heard
}

// Tick runs every Interval: this server's beat, link timeouts and digests,
// origin expiry (registry.Replicator).
func (j *Join) Tick(now time.Time) {
	j.beat = j.next()
	if j.signed() {
		j.beatSig = SignBeat(j.cfg.Signer, j.self, j.beat)
	}
	for l := range j.links {
		if now.Sub(l.heard) > l.timeout {
			j.linkDown(l, fmt.Sprintf("nothing heard for %v", now.Sub(l.heard).Round(time.Millisecond)))
		}
	}
	for _, o := range j.origins {
		if _, ok := j.trusted(o.id); !ok {
			// Its key left the servers' list (a reload): its entries go now.
			j.log.Warn("join: an origin's key is no longer trusted: its entries removed", "origin", o.id)
			j.expireOrigin(o, now)
			continue
		}
		if o.beat > o.checked && now.Sub(o.heard) >= j.verifyEvery() {
			j.checkBeat(o)
		}
		if now.Sub(o.heard) > j.cfg.Grace {
			j.expireOrigin(o, now)
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
		switch l.state {
		case StateSyncing, StateSynced:
			if tick == nil {
				tick = j.digestMsgs(TypeTick, now)
			}
			for _, m := range tick {
				j.linkSend(l, m, &j.stats.tickBytesOut)
			}
		case StateRehello:
			j.sendHello(l, now)
		}
	}
}

// digestMsgs builds a hello or tick message with the digest of every
// origin held: one message, or several if it is too large for one (the
// first then carries the hello, the others are ticks). They are built
// piecewise, as Hello.Append and Tick.Append encode them, to split them.
func (j *Join) digestMsgs(t MsgType, now time.Time) [][]byte {
	hello := t == TypeHello
	// Small enough for every peer we know (hello: before we know).
	m := min(j.h.MaxRequestBytes(), 64<<10)
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
		b = openMsg(make([]byte, 0, 256), t)
		if t == TypeHello {
			b = appendIntField(b, "v", Version)
			b = appendStringField(b, "server", j.self)
			b = appendStringField(b, "boot", j.h.Boot())
			b = appendIntField(b, "max", j.h.MaxRequestBytes())
			b = append(b, `,"interval":`...)
			b = strconv.AppendFloat(b, j.cfg.Interval.Seconds(), 'g', -1, 64)
		}
		b = append(b, `,"digest":{`...)
		n = 0
	}
	add := func(id string, d DigestItem) {
		if n > 0 && len(b) > budget {
			out = append(out, append(b, "}}"...))
			t = TypeTick
			open()
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, id)
		b = append(b, ':')
		b = d.Append(b)
		n++
	}
	open()
	add(j.self, DigestItem{Seq: j.seq, Beat: j.beat, Sig: j.beatSig})
	for id, o := range j.origins {
		it := DigestItem{Seq: o.seq, Beat: o.beat, Age: uint64(max(now.Sub(o.seenAt), 0).Milliseconds())}
		// A tick carries a beat's signature once, when the beat is new; a
		// hello always (the peer knows nothing yet).
		if hello || o.sigSent != o.beat {
			it.Sig = o.beatSig
		}
		add(id, it)
	}
	if !hello {
		for _, o := range j.origins {
			o.sigSent = o.beat
		}
	}
	return append(out, append(b, "}}"...))
}

// ---- Stats and INFO ----

type counters struct {
	msgsOut, bytesOut, msgsIn, bytesIn      atomic.Int64
	deltaMsgsOut, deltaBytesOut, changesOut atomic.Int64
	snapsOut, snapPartsOut, snapBytesOut    atomic.Int64
	snapsMerged, snapsEncoded               atomic.Int64
	tickBytesOut, wantsOut, dropped         atomic.Int64
	changesIn, dupsIn, gapsIn, snapsIn      atomic.Int64
	originsExpired, entriesExpired, linksUp atomic.Int64
	linksDown, localChanges, protocolErrors atomic.Int64
	refusedIn, originsLeft                  atomic.Int64
}

// Stats are a server's join counters since it started.
type Stats struct {
	MsgsOut       int64 `json:"msgs_out"`        // SYNC messages sent
	BytesOut      int64 `json:"bytes_out"`       // their bytes on the wire (ZMTP frames, before CURVE)
	MsgsIn        int64 `json:"msgs_in"`         // SYNC messages received
	BytesIn       int64 `json:"bytes_in"`        // their bytes
	DeltaMsgsOut  int64 `json:"delta_msgs_out"`  // delta messages sent
	DeltaBytesOut int64 `json:"delta_bytes_out"` // their bytes
	ChangesOut    int64 `json:"changes_out"`     // changes sent, counted once per link
	SnapsOut      int64 `json:"snaps_out"`       // origin snapshots sent
	SnapPartsOut  int64 `json:"snap_parts_out"`  // messages they took
	SnapBytesOut  int64 `json:"snap_bytes_out"`  // their bytes
	// SnapsMerged are snapshots asked for that the link got within the
	// interval: not sent again.
	SnapsMerged int64 `json:"snaps_merged"`
	// SnapsEncoded are snapshot versions encoded, each shared by every
	// link sent it.
	SnapsEncoded   int64 `json:"snaps_encoded"`
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
	RefusedIn      int64 `json:"refused_in"`      // records not signed by their origin's trusted key
	OriginsLeft    int64 `json:"origins_left"`    // origins that said they leave (shut down)
}

// Stats returns the join counters; safe to call at any time.
func (j *Join) Stats() Stats {
	c := &j.stats
	return Stats{
		MsgsOut: c.msgsOut.Load(), BytesOut: c.bytesOut.Load(), MsgsIn: c.msgsIn.Load(), BytesIn: c.bytesIn.Load(),
		DeltaMsgsOut: c.deltaMsgsOut.Load(), DeltaBytesOut: c.deltaBytesOut.Load(), ChangesOut: c.changesOut.Load(),
		SnapsOut: c.snapsOut.Load(), SnapPartsOut: c.snapPartsOut.Load(), SnapBytesOut: c.snapBytesOut.Load(),
		SnapsMerged: c.snapsMerged.Load(), SnapsEncoded: c.snapsEncoded.Load(),
		TickBytesOut: c.tickBytesOut.Load(), WantsOut: c.wantsOut.Load(), Dropped: c.dropped.Load(),
		ChangesIn: c.changesIn.Load(), DupsIn: c.dupsIn.Load(), GapsIn: c.gapsIn.Load(), SnapsIn: c.snapsIn.Load(),
		OriginsExpired: c.originsExpired.Load(), EntriesExpired: c.entriesExpired.Load(),
		LinksUp: c.linksUp.Load(), LinksDown: c.linksDown.Load(), LocalChanges: c.localChanges.Load(),
		ProtocolErrors: c.protocolErrors.Load(), RefusedIn: c.refusedIn.Load(), OriginsLeft: c.originsLeft.Load(),
	}
}

// Info is the "join" object of the INFO reply (registry.Info.Join).
type Info struct {
	Links   []LinkInfo   `json:"links"`
	Origins []OriginInfo `json:"origins"`
	Remote  int          `json:"remote_entries"` // entries learned from other servers
	// Refused are the peers this server stopped dialling because they
	// refused the link (itself, joined by another address, among them),
	// by HOST:PORT, with why; a JOIN of the peer again clears it.
	Refused map[string]string `json:"refused,omitempty"`
	// Signed: this server signs its origin's records and takes others'
	// only signed by their trusted keys (Config.Signer).
	Signed bool `json:"signed,omitempty"`
	Stats
}

// LinkInfo describes one link (INFO).
type LinkInfo struct {
	Addr   string  `json:"addr,omitempty"`  // HOST:PORT, for links this server dialled
	Dir    string  `json:"dir"`             // "out" (dialled by this server) or "in"
	Peer   string  `json:"peer,omitempty"`  // the peer's server id, once known
	State  string  `json:"state"`           // "connecting", "hello", "syncing", "synced"
	Up     bool    `json:"up"`              // hellos exchanged
	Synced bool    `json:"synced"`          // the peer's initial state applied
	Since  float64 `json:"since,omitempty"` // seconds since it came up
	// Heard is the seconds since the link last carried a message.
	Heard float64 `json:"heard,omitempty"`
	// Lag is the seconds since the peer's own beat was last heard, by this
	// link or another: how stale its entries may be.
	Lag float64 `json:"lag,omitempty"`
	// Error is why the attempts to dial the peer fail (links this server
	// dialled, not up), and Failures how many failed in a row.
	Error    string `json:"error,omitempty"`
	Failures int    `json:"failures,omitempty"`
}

// OriginInfo describes one origin this server holds entries of (INFO).
type OriginInfo struct {
	Origin  string  `json:"origin"`
	Entries int     `json:"entries"`
	Heard   float64 `json:"heard"` // seconds since its beat was last heard
}

// ParseInfo decodes INFO's "join" object (registry.Info.Join), as a
// client sees it; nil when there is none.
func ParseInfo(raw json.RawMessage) (*Info, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var ji Info
	if err := json.Unmarshal(raw, &ji); err != nil {
		return nil, fmt.Errorf("join: INFO's join object: %w", err)
	}
	return &ji, nil
}

// Info is INFO's "join" object, nil while this server neither joins nor
// is joined (registry.Replicator).
func (j *Join) Info(now time.Time) any {
	if len(j.links) == 0 && len(j.dialers) == 0 && len(j.origins) == 0 && len(j.refused) == 0 {
		return nil
	}
	ji := &Info{Links: []LinkInfo{}, Origins: []OriginInfo{}, Remote: j.h.RemoteEntries(), Signed: j.signed(), Stats: j.Stats()}
	if len(j.refused) > 0 {
		ji.Refused = maps.Clone(j.refused)
	}
	seen := map[*dialer]bool{}
	for l := range j.links {
		li := LinkInfo{Dir: "in", Peer: l.peer, State: l.state.String(), Up: l.state.up(), Synced: l.state == StateSynced,
			Heard: max(now.Sub(l.heard), 0).Seconds()}
		if d := l.tr.dialer(); d != nil {
			li.Dir, li.Addr = "out", d.addr
			li.Failures, li.Error = d.fails.Failing()
			if ss, ok := l.tr.(*session); ok && !li.Up {
				if err := ss.sock.ConnectError(); err != nil {
					li.Error = err.Error() // the attempt under way, before the link times out
				}
			}
			seen[d] = true
		}
		if li.Up {
			li.Since = now.Sub(l.since).Seconds()
			li.Failures, li.Error = 0, ""
		}
		if o := j.origins[l.peer]; o != nil {
			li.Lag = max(now.Sub(o.lastHeard()), 0).Seconds()
		}
		ji.Links = append(ji.Links, li)
	}
	for _, d := range j.dialers {
		if !seen[d] && !d.closed {
			li := LinkInfo{Dir: "out", Addr: d.addr, State: "connecting"}
			li.Failures, li.Error = d.fails.Failing()
			ji.Links = append(ji.Links, li)
		}
	}
	slices.SortFunc(ji.Links, func(a, b LinkInfo) int {
		return strings.Compare(a.Dir+a.Addr+a.Peer, b.Dir+b.Addr+b.Peer)
	})
	for id, o := range j.origins {
		ji.Origins = append(ji.Origins, OriginInfo{Origin: id, Entries: j.h.Entries(id), Heard: now.Sub(o.lastHeard()).Seconds()})
	}
	slices.SortFunc(ji.Origins, func(a, b OriginInfo) int { return strings.Compare(a.Origin, b.Origin) })
	return ji
}
