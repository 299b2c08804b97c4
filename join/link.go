package join

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

var syncFrame = []byte(registry.VerbSync)

// reasonLeft is why a link LEAVE dropped went down.
const reasonLeft = "left"

// maxRefused bounds INFO's join.refused.
const maxRefused = 64

// LinkState is where a link is in its life (PROTOCOL.md, "A link's life").
type LinkState uint8

// Link states.
const (
	// StateHello: waiting for the peer's hello (a dialled link sent its own).
	StateHello LinkState = iota
	// StateRehello: a reset came too soon after our hello; say it again
	// at the next tick.
	StateRehello
	// StateSyncing: hellos exchanged, changes flow; the peer's initial
	// state is still arriving.
	StateSyncing
	// StateSynced: the peer's ready arrived.
	StateSynced
	// StateDown: dropped; a dialled link is dialled again as a new link.
	StateDown
)

func (s LinkState) String() string {
	switch s {
	case StateHello:
		return "hello"
	case StateRehello:
		return "rehello"
	case StateSyncing:
		return "syncing"
	case StateSynced:
		return "synced"
	case StateDown:
		return "down"
	}
	return "LinkState(" + strconv.Itoa(int(s)) + ")"
}

// up reports whether hellos were exchanged: changes flow.
func (s LinkState) up() bool { return s == StateSyncing || s == StateSynced }

// transport is how a link's messages leave: the server's ROUTER for a link
// another server dialled (inbound), a DEALER session of its own for one
// this server dialled. The protocol is the same either way.
type transport interface {
	// send queues one SYNC body without blocking; zmtp.ErrHostUnreachable
	// when the peer is gone.
	send(body []byte) error
	// dialer is the dialler of a link this server dialled, nil for inbound.
	dialer() *dialer
	// hold reports whether the transport holds enough not yet written
	// that drain should wait; it then wakes the loop once it wrote it.
	hold() bool
	// end is called once when the link goes down.
	end()
}

// inbound is the transport of a link another server dialled: the server's
// ROUTER, addressed by the routing id.
type inbound struct {
	j   *Join
	env [][]byte // the envelope our messages carry (routing id)
	rid string
	l   *link
}

func (t *inbound) send(body []byte) error { return t.j.h.Send(t.env, syncFrame, body) }
func (t *inbound) dialer() *dialer        { return nil }
func (t *inbound) hold() bool             { return false } // the ROUTER's per-peer budget bounds it
func (t *inbound) end() {
	if t.j.byRID[t.rid] == t.l {
		delete(t.j.byRID, t.rid)
	}
}

// link is one link with a peer, as the loop holds it.
type link struct {
	tr      transport
	state   LinkState
	peer    string // the peer's server id, from its hello
	heard   time.Time
	since   time.Time
	helloAt time.Time
	timeout time.Duration
	max     int64             // the largest message the peer accepts
	peerSeq map[string]uint64 // what the peer holds of each origin, as far as we know
	snap    *snapBuild
	batch   []byte // the delta message being filled
	nbatch  int
	queued  bool // in Join.dirty
	// Messages waiting behind a snapshot that is sent a slice per loop
	// iteration (Join.drain), in order; snapshot parts are the shared
	// encodings, not copies. outBytes counts them, bounded by maxLinkQueue.
	out      []queuedMsg
	outBytes int
	inDrain  bool                // in Join.backlog
	snapAt   map[string]snapSent // the last snapshot of each origin sent: repeats merge
}

// queuedMsg is one message in a link's out queue.
type queuedMsg struct {
	body    []byte
	counter *atomic.Int64
	part    bool // a snapshot part
}

// snapSent is the version of an origin's snapshot a link got, and when.
type snapSent struct {
	seq uint64
	at  time.Time
}

type snapBuild struct {
	origin         string
	seq, beat, age uint64
	beatSig        []byte
	next           int64
	entries        map[string]registry.RemoteEntry
	parts          []Snap // as received: what this server passes on
	dropped        int
}

func (l *link) name() string {
	if d := l.tr.dialer(); d != nil {
		return d.addr
	}
	return "inbound"
}

// budget is the size of the messages we build for l.
func (l *link) budget(own int64) int {
	m := own
	if l.max > 0 && l.max < m {
		m = l.max
	}
	return int(max(m-512, 512))
}

func (j *Join) newLink(now time.Time) *link {
	return &link{heard: now, timeout: j.cfg.Timeout, peerSeq: map[string]uint64{}, snapAt: map[string]snapSent{}}
}

// addLink makes a link on tr, held by the loop.
func (j *Join) addLink(tr transport, now time.Time) *link {
	l := j.newLink(now)
	l.tr = tr
	j.links[l] = struct{}{}
	return l
}

// Sync handles a SYNC message of the ROUTER (registry.Replicator): link
// traffic from a server that joined us. On a connection that is no link,
// a hello starts one, any other link message gets reset, and what is no
// link message at all gets an ERR reply (a client sent SYNC).
func (j *Join) Sync(env [][]byte, frames [][]byte, now time.Time) *registry.Error {
	l := j.byRID[string(env[0])]
	if l != nil {
		if len(frames) != 1 {
			j.stats.protocolErrors.Add(1)
			return nil
		}
		j.linkRecv(l, frames[0], now)
		return nil
	}
	if len(frames) != 1 {
		j.stats.protocolErrors.Add(1)
		return &registry.Error{Code: registry.CodeBadRequest, Message: fmt.Sprintf("SYNC has %d frames after the verb: want 1 (join link traffic between servers, PROTOCOL.md \"Join\")", len(frames))}
	}
	m, _, err := ParseMsg(frames[0])
	if err != nil {
		j.stats.protocolErrors.Add(1)
		return &registry.Error{Code: registry.CodeBadRequest, Message: fmt.Sprintf("SYNC is join link traffic between servers: %v", err)}
	}
	h, ok := m.(Hello)
	if !ok {
		j.stats.protocolErrors.Add(1)
		switch m.(type) {
		case Reset, Refuse:
			// Answers themselves: answering them could ping-pong.
		default:
			j.h.Send(env, syncFrame, Reset{Error: "no such link: say hello"}.Append(nil))
		}
		return nil
	}
	if len(j.byRID) >= maxInboundLinks {
		j.h.Send(env, syncFrame, Refuse{Error: "too many links"}.Append(nil))
		return nil
	}
	t := &inbound{j: j, rid: string(env[0])}
	for _, f := range env {
		t.env = append(t.env, bytes.Clone(f))
	}
	l = j.addLink(t, now)
	t.l = l
	j.byRID[t.rid] = l
	j.linkHandle(l, h, len(frames[0]), now)
	return nil
}

func (j *Join) linkRecv(l *link, body []byte, now time.Time) {
	m, _, err := ParseMsg(body)
	if err != nil {
		j.stats.protocolErrors.Add(1)
		j.warnEvery("bad:"+l.peer, "join: malformed message from a peer", "peer", l.peer, "link", l.name(), "err", err)
		l.heard = now
		return
	}
	j.linkHandle(l, m, len(body), now)
}

func wireSize(n int) int64 {
	h := 2
	if n > 255 {
		h = 9
	}
	return int64(2 + len(syncFrame) + h + n)
}

// linkHandle handles one message of a link.
func (j *Join) linkHandle(l *link, m Msg, size int, now time.Time) {
	l.heard = now
	j.stats.msgsIn.Add(1)
	j.stats.bytesIn.Add(wireSize(size))
	switch m := m.(type) {
	case Hello:
		j.onHello(l, m, now)
	case Ready:
		if l.state == StateSyncing {
			l.state = StateSynced
			j.stats.linksUp.Add(1)
			if d := l.tr.dialer(); d != nil {
				d.up.Store(true) // the dialler's backoff starts over
				j.log.Info("join: linked", "peer", d.addr, "server", l.peer)
				if j.cfg.OnLink != nil {
					j.cfg.OnLink(LinkEvent{Addr: d.addr, Peer: l.peer, Up: true})
				}
			} else {
				j.log.Info("join: a server joined", "server", l.peer)
			}
		}
	case Tick:
		if l.state.up() {
			j.onDigest(l, m.Digest, true, now)
		}
	case Snap:
		if l.state.up() {
			j.onSnap(l, m, now)
		}
	case Delta:
		if l.state.up() {
			j.onDelta(l, m.Changes, now)
		}
	case Want:
		if l.state.up() {
			for i, o := range m.Origins {
				if i >= maxOrigins {
					break
				}
				j.askSnap(l, o, now)
			}
		}
	case Reset:
		// Only a dialler gets resets: the peer lost our link (it restarted).
		if l.tr.dialer() != nil {
			l.state, l.snap = StateHello, nil
			j.dropQueue(l) // queued for the link the peer lost
			clear(l.snapAt)
			if now.Sub(l.helloAt) >= j.cfg.Interval {
				j.sendHello(l, now)
			} else {
				l.state = StateRehello
			}
		}
	case Refuse:
		if d := l.tr.dialer(); d != nil {
			j.log.Error("join: the peer refused the link; not dialling it again", "peer", d.addr, "reason", m.Error)
			why := "the peer refused the link: " + m.Error
			if m.Error == "same server id "+j.self {
				why = "that is this server itself (the peer has its server id, " + j.self + ")"
			}
			j.giveUp(d, why)
		}
		j.linkDown(l, "refused: "+m.Error)
	}
}

// giveUp stops dialling d for good; INFO's join.refused says why.
func (j *Join) giveUp(d *dialer, why string) {
	if len(j.refused) >= maxRefused {
		clear(j.refused)
	}
	j.refused[d.addr] = why
	d.closed = true
	d.close()
	delete(j.dialers, d.addr)
}

func (j *Join) onHello(l *link, m Hello, now time.Time) {
	if !checkID(m.Server) {
		j.stats.protocolErrors.Add(1)
		j.linkDown(l, "hello without a valid server id")
		return
	}
	if m.Server == j.self {
		// Ourselves, through another address, or a server with our id.
		j.linkWrite(l, Refuse{Error: "same server id " + j.self}.Append(nil), nil)
		if d := l.tr.dialer(); d != nil {
			j.log.Error("join: the peer has this server's id (joined itself?); not dialling it again", "peer", d.addr, "server", m.Server)
			j.giveUp(d, "the peer is this server itself (same server id "+j.self+")")
		}
		j.linkDown(l, "same server id")
		return
	}
	if _, ok := j.trusted(m.Server); !ok {
		// With signing a server's id names its key: one we do not trust
		// could send nothing we would take.
		j.linkWrite(l, Refuse{Error: "server id " + m.Server + " names no trusted signing key"}.Append(nil), nil)
		j.linkDown(l, "untrusted server id")
		return
	}
	l.peer = m.Server
	l.max = m.Max
	if l.max != 0 && l.max < 1024 {
		l.max = 1024
	}
	if iv := secondsToDuration(m.Interval); iv > 0 {
		l.timeout = max(j.cfg.Timeout, 3*iv)
	}
	l.state, l.snap, l.since = StateSyncing, nil, now
	if d := l.tr.dialer(); d != nil {
		d.fails.OK(j.log, "join: reached the peer", "peer", d.addr)
	}
	clear(l.peerSeq)
	l.batch, l.nbatch = l.batch[:0], 0
	if l.tr.dialer() == nil { // the dialler speaks first; the other answers
		j.sendHello(l, now)
	}
	j.onDigest(l, m.Digest, false, now)
	// Send what the peer lacks or holds older; then say we are done.
	if ps, ok := l.peerSeq[j.self]; !ok || ps < j.seq {
		j.askSnap(l, j.self, now)
	}
	for id, o := range j.origins {
		if ps, ok := l.peerSeq[id]; !ok || ps < o.seq {
			j.askSnap(l, id, now)
		}
	}
	j.linkWrite(l, Ready{}.Append(nil), &j.stats.tickBytesOut)
}

func secondsToDuration(s float64) time.Duration {
	if s != s || s <= 0 {
		return 0
	}
	if s > float64(1<<62)/float64(time.Second) {
		return time.Duration(1 << 62)
	}
	return time.Duration(s * float64(time.Second))
}

func (j *Join) sendHello(l *link, now time.Time) {
	l.helloAt = now
	if l.state == StateRehello {
		l.state = StateHello
	}
	for _, m := range j.digestMsgs(TypeHello, now) {
		j.linkWrite(l, m, &j.stats.tickBytesOut)
	}
}

// onDigest takes a peer's digest: liveness of origins, what the peer holds,
// and (want) a request for the snapshots of origins it holds newer.
func (j *Join) onDigest(l *link, dg Digest, want bool, now time.Time) {
	var wants []string
	for id, d := range dg {
		if !checkID(id) || !plausible(d.Seq, now) || !plausible(d.Beat, now) {
			j.stats.protocolErrors.Add(1)
			continue
		}
		if id == j.self {
			if !j.signed() {
				j.selfSeen(d, now)
			} else if d.Beat > j.beat && j.verifyBeat(id, d.Beat, d.Sig) {
				j.selfSeen(DigestItem{Beat: d.Beat}, now) // only what we signed moves our clock
			}
			continue
		}
		l.peerSeq[id] = d.Seq
		if t, ok := j.tombs[id]; ok && t.blocks(d.Seq, d.Beat) {
			continue
		}
		if _, ok := j.trusted(id); !ok {
			continue // no origin of ours: never asked for
		}
		age := time.Duration(min(d.Age, uint64(time.Hour/time.Millisecond))) * time.Millisecond
		o := j.origins[id]
		if o != nil {
			j.hear(o, d.Beat, d.Sig, age, now)
		}
		if !want || age > j.cfg.Grace || o != nil && d.Seq <= o.seq {
			continue
		}
		if o == nil && len(j.origins) >= maxOrigins {
			j.warnEvery("origins", "join: too many origins; ignoring new ones", "limit", maxOrigins)
			continue
		}
		if t, ok := j.wantAt[id]; ok && now.Sub(t) < j.cfg.Timeout {
			continue
		}
		j.wantAt[id] = now
		wants = append(wants, id)
	}
	j.sendWant(l, wants)
}

func (j *Join) sendWant(l *link, wants []string) {
	if len(wants) == 0 {
		return
	}
	j.stats.wantsOut.Add(int64(len(wants)))
	j.linkSend(l, Want{Origins: wants}.Append(nil), &j.stats.tickBytesOut)
}

// selfSeen handles news of our own id from a peer: if it holds a higher
// seq or beat than ours, an earlier run of this server with the same id
// (and a clock set back), or another server with our id, left it: we move
// our clock past it and send our state again, which then wins. The values
// are plausible (not beyond maxAhead), so the clock cannot be pushed far
// nor overflow; with signing only our own signed records get here.
func (j *Join) selfSeen(d DigestItem, now time.Time) {
	if d.Seq <= j.seq && d.Beat <= j.beat {
		return
	}
	j.warnEvery("selfid", "join: peers hold a newer state under this server's id (another server with the same id, or a restart with the clock set back); taking the id over")
	j.clock = max(j.clock, d.Seq, d.Beat)
	j.beat = j.next()
	if j.signed() {
		j.beatSig = SignBeat(j.cfg.Signer, j.self, j.beat)
	}
	if d.Seq > j.seq {
		j.seq = j.next()
		for l := range j.links {
			if l.state.up() {
				j.sendSnap(l, j.self, now)
			}
		}
	}
}

func (j *Join) onSnap(l *link, m Snap, now time.Time) {
	if !checkID(m.Origin) || !plausible(m.Seq, now) || !plausible(m.Beat, now) {
		j.stats.protocolErrors.Add(1)
		l.snap = nil
		return
	}
	if m.Part == 0 {
		l.snap = &snapBuild{origin: m.Origin, seq: m.Seq, beat: m.Beat, beatSig: m.BeatSig, age: m.Age, next: 1,
			entries: map[string]registry.RemoteEntry{}}
	} else if sb := l.snap; sb == nil || sb.origin != m.Origin || sb.seq != m.Seq || sb.next != m.Part {
		j.stats.protocolErrors.Add(1)
		l.snap = nil
		return
	} else {
		sb.next++
	}
	sb := l.snap
	if !j.verifySnap(&m) {
		j.badRecord(l, "snapshot", m.Origin)
		l.snap = nil
		return
	}
	sb.parts = append(sb.parts, Snap{Origin: m.Origin, Seq: m.Seq, Part: m.Part, More: m.More, Entries: m.Entries, Sig: m.Sig})
	if m.Origin != j.self {
		for _, raw := range m.Entries {
			e, err := j.h.ParseEntry(raw, m.Origin)
			if err != nil {
				j.stats.protocolErrors.Add(1)
				j.warnEvery("entry:"+l.peer, "join: a peer sent an invalid entry; skipping it", "peer", l.peer, "err", err)
				continue
			}
			if len(sb.entries) >= j.h.MaxEntries() {
				sb.dropped++
				continue
			}
			sb.entries[e.Instance()] = e
		}
	}
	if m.More {
		return
	}
	l.snap = nil
	if sb.dropped > 0 {
		j.warnEvery("snapfull", "join: a snapshot holds more than max entries; dropping the excess", "origin", sb.origin, "dropped", sb.dropped)
	}
	j.applySnap(l, sb, now)
}

// applySnap takes a whole snapshot: one newer than what this server holds
// replaces the origin's entries; one at the same seq (the origin's
// checkpoint) becomes what this server passes on as its snapshot.
func (j *Join) applySnap(l *link, sb *snapBuild, now time.Time) {
	id := sb.origin
	if sb.seq > l.peerSeq[id] {
		l.peerSeq[id] = sb.seq
	}
	if id == j.self {
		// The parts are ours (checked); the beat is not covered by them.
		d := DigestItem{Seq: sb.seq, Beat: sb.beat}
		if !j.verifyBeat(id, sb.beat, sb.beatSig) {
			d.Beat = 0
		}
		j.selfSeen(d, now)
		return
	}
	if !j.verifyBeat(id, sb.beat, sb.beatSig) {
		j.badRecord(l, "snapshot beat", id)
		return
	}
	if t, ok := j.tombs[id]; ok && t.blocks(sb.seq, sb.beat) {
		return
	}
	age := time.Duration(min(sb.age, uint64(time.Hour/time.Millisecond))) * time.Millisecond
	o := j.origins[id]
	isNew := o == nil
	if isNew {
		if age > j.cfg.Grace {
			return
		}
		if len(j.origins) >= maxOrigins {
			j.warnEvery("origins", "join: too many origins; ignoring new ones", "limit", maxOrigins)
			return
		}
		at := now.Add(-age)
		o = &origin{id: id, beat: sb.beat, beatSig: sb.beatSig, seenAt: at, checked: sb.beat, chkSig: sb.beatSig, heard: at}
		j.origins[id] = o
		delete(j.tombs, id)
	} else {
		j.hear(o, sb.beat, sb.beatSig, age, now)
	}
	switch {
	case isNew || sb.seq > o.seq:
	case sb.seq == o.seq && (o.base == nil || o.baseSeq < sb.seq):
		// The origin's checkpoint: the same state, a shorter history.
		o.base, o.baseSeq, o.log = sb.parts, sb.seq, nil
		delete(j.encCache, id)
		for l2 := range j.links {
			if l2 != l && l2.state.up() {
				if ps, ok := l2.peerSeq[id]; !ok || ps <= o.seq {
					j.sendSnap(l2, id, now)
				}
			}
		}
		return
	default:
		return
	}
	var gone []string
	j.h.EachEntry(id, func(inst string, _ []byte) {
		if _, ok := sb.entries[inst]; !ok {
			gone = append(gone, inst)
		}
	})
	for _, inst := range gone {
		j.h.DeleteRemote(id, inst, registry.EventDeregister)
	}
	for _, e := range sb.entries {
		j.setRemote(e)
	}
	o.seq = sb.seq
	o.base, o.baseSeq, o.log = sb.parts, sb.seq, nil
	delete(j.encCache, id)
	delete(j.wantAt, id)
	j.stats.snapsIn.Add(1)
	for l2 := range j.links {
		if l2 != l && l2.state.up() {
			if ps, ok := l2.peerSeq[id]; !ok || ps < o.seq {
				j.sendSnap(l2, id, now)
			}
		}
	}
}

// setRemote stores a copy, warning when the registry is full.
func (j *Join) setRemote(e registry.RemoteEntry) {
	if err := j.h.SetRemote(e); err != nil {
		j.warnEvery("full", "join: entries from other servers reach max entries; dropping the excess",
			"max_entries", j.h.MaxEntries(), "origin", e.Origin())
	}
}

func (j *Join) onDelta(l *link, cs []Change, now time.Time) {
	var wants []string
	for i := range cs {
		c := &cs[i]
		if !checkID(c.Origin) || !plausible(c.Seq, now) || !plausible(c.Prev, now) {
			j.stats.protocolErrors.Add(1)
			continue
		}
		if c.Seq > l.peerSeq[c.Origin] {
			l.peerSeq[c.Origin] = c.Seq
		}
		if c.Origin == j.self {
			if c.Seq > j.seq && j.verifyChange(c) {
				j.selfSeen(DigestItem{Seq: c.Seq}, now)
			}
			continue
		}
		o := j.origins[c.Origin]
		if c.Op == OpLeave {
			j.onLeave(l, o, c, now)
			continue
		}
		switch {
		case o != nil && c.Seq <= o.seq:
			j.stats.dupsIn.Add(1)
			continue
		case o == nil || c.Prev != o.seq:
			j.stats.gapsIn.Add(1)
			if _, ok := j.trusted(c.Origin); !ok {
				j.badRecord(l, "change", c.Origin)
				continue
			}
			if t, ok := j.wantAt[c.Origin]; (!ok || now.Sub(t) >= j.cfg.Timeout) && !j.isTomb(c.Origin) {
				j.wantAt[c.Origin] = now
				wants = append(wants, c.Origin)
			}
			continue
		}
		if !j.verifyChange(c) {
			j.badRecord(l, "change", c.Origin)
			continue
		}
		switch c.Op {
		case OpSet:
			e, err := j.h.ParseEntry(c.Entry, o.id)
			if err != nil {
				j.stats.protocolErrors.Add(1)
				j.warnEvery("entry:"+l.peer, "join: a peer sent an invalid entry; skipping it", "peer", l.peer, "err", err)
				break
			}
			j.setRemote(e)
		case OpDeregister, OpExpire:
			typ := registry.EventDeregister
			if c.Op == OpExpire {
				typ = registry.EventExpire
			}
			if checkID(c.Instance) {
				j.h.DeleteRemote(o.id, c.Instance, typ)
			}
		}
		// Unknown operations move the seq on and are passed on: newer
		// servers further on may know them. The change goes on as it
		// came (its entry's bytes as signed).
		o.seq = c.Seq
		j.stats.changesIn.Add(1)
		enc := c.Append(nil)
		j.forwardEnc(c.Origin, c.Seq, enc, l)
		if o.base != nil {
			o.log = append(o.log, enc)
			if len(o.log) > 2*ckptEvery(j.h.Entries(o.id))+64 {
				// The origin sends no checkpoints: stop keeping its history
				// (others give its snapshot) rather than hold it all.
				o.base, o.log = nil, nil
				delete(j.encCache, o.id)
			}
		}
	}
	j.sendWant(l, wants)
}

// onLeave takes an origin's leave: newer than all we hold of it and its
// own, its entries go at once (their watchers get deregister events), and
// a tomb keeps older states of it out.
func (j *Join) onLeave(l *link, o *origin, c *Change, now time.Time) {
	if o == nil || c.Seq <= o.seq {
		j.stats.dupsIn.Add(1)
		return
	}
	if !j.verifyChange(c) {
		j.badRecord(l, "leave", c.Origin)
		return
	}
	j.forwardEnc(c.Origin, c.Seq, c.Append(nil), l)
	n := j.h.DeleteOrigin(o.id, registry.EventDeregister)
	delete(j.origins, o.id)
	delete(j.wantAt, o.id)
	j.tombs[o.id] = tomb{beat: o.checked, seq: c.Seq, left: true, at: now}
	for l2 := range j.links {
		delete(l2.peerSeq, o.id)
		delete(l2.snapAt, o.id)
	}
	delete(j.encCache, o.id)
	j.stats.originsLeft.Add(1)
	j.log.Info("join: origin left: its entries removed", "origin", o.id, "entries", n)
}

func (j *Join) isTomb(id string) bool {
	_, ok := j.tombs[id]
	return ok
}

// forwardEnc queues an encoded change of origin (at seq) for every up link
// but from (where it came from) and those whose peer already holds it.
func (j *Join) forwardEnc(origin string, seq uint64, enc []byte, from *link) {
	for l := range j.links {
		if l == from || !l.state.up() {
			continue
		}
		if ps, ok := l.peerSeq[origin]; ok && ps >= seq {
			continue
		}
		l.peerSeq[origin] = seq
		j.linkQueue(l, enc)
	}
}

// linkQueue adds an encoded change to l's delta message (Delta.Append's
// bytes, built piecewise), flushed at the end of the loop's iteration or
// when full.
func (j *Join) linkQueue(l *link, enc []byte) {
	if l.nbatch > 0 && len(l.batch)+len(enc)+3 > l.budget(j.h.MaxRequestBytes()) {
		j.linkFlush(l)
	}
	if l.nbatch == 0 {
		l.batch = append(l.batch[:0], `{"t":"delta","changes":[`...)
	} else {
		l.batch = append(l.batch, ',')
	}
	l.batch = append(l.batch, enc...)
	l.nbatch++
	if !l.queued {
		l.queued = true
		j.dirty = append(j.dirty, l)
	}
}

// linkFlush sends l's pending delta message.
func (j *Join) linkFlush(l *link) {
	l.queued = false
	if l.nbatch == 0 {
		return
	}
	n := l.nbatch
	l.batch = append(l.batch, "]}"...)
	l.nbatch = 0
	if j.linkWrite(l, l.batch, &j.stats.deltaBytesOut) {
		j.stats.deltaMsgsOut.Add(1)
		j.stats.changesOut.Add(int64(n))
	}
	l.batch = l.batch[:0]
}

// linkSend sends a message after the changes queued before it.
func (j *Join) linkSend(l *link, body []byte, counter *atomic.Int64) bool {
	j.linkFlush(l)
	return j.linkWrite(l, body, counter)
}

// linkWrite sends one message on l without blocking: a peer that is gone
// or too far behind does not get it (a gap it will ask to fill). Behind a
// snapshot still being sent it waits in l's queue (a copy: callers reuse
// body).
func (j *Join) linkWrite(l *link, body []byte, counter *atomic.Int64) bool {
	if l.state == StateDown || j.departed {
		return false
	}
	if len(l.out) > 0 {
		return j.linkPush(l, queuedMsg{body: bytes.Clone(body), counter: counter})
	}
	return j.linkSendNow(l, body, counter)
}

// linkSendNow hands one message to l's transport.
func (j *Join) linkSendNow(l *link, body []byte, counter *atomic.Int64) bool {
	if err := l.tr.send(body); err != nil {
		j.stats.dropped.Add(1)
		if errors.Is(err, zmtp.ErrHostUnreachable) {
			j.linkDown(l, "the peer disconnected")
		} else {
			j.warnEvery("drop:"+l.peer, "join: a peer is too slow: dropping link messages (it will ask again)", "peer", l.peer, "link", l.name())
		}
		return false
	}
	w := wireSize(len(body))
	j.stats.msgsOut.Add(1)
	j.stats.bytesOut.Add(w)
	if counter != nil {
		counter.Add(w)
	}
	return true
}

// linkPush queues a message for l, to go out at the end of the loop's
// iteration or later (drain); a queue full in bytes drops it, as a full
// transport would.
func (j *Join) linkPush(l *link, m queuedMsg) bool {
	if l.outBytes+len(m.body) > maxLinkQueue {
		j.stats.dropped.Add(1)
		j.warnEvery("drop:"+l.peer, "join: a peer is too slow: dropping link messages (it will ask again)", "peer", l.peer, "link", l.name())
		return false
	}
	l.out = append(l.out, m)
	l.outBytes += len(m.body)
	if !l.inDrain {
		l.inDrain = true
		j.backlog = append(j.backlog, l)
	}
	return true
}

// dropQueue forgets what waits in l's queue.
func (j *Join) dropQueue(l *link) {
	clear(l.out)
	l.out, l.outBytes = nil, 0
}

// drainBudget bounds the bytes of queued link messages one loop iteration
// hands to the transports, so that a large snapshot (or many) is sent a
// slice per iteration between other clients' requests.
const drainBudget = 256 << 10

// drain sends queued link messages, up to drainBudget in all, taking the
// links in turn (those not reached come first next time); with more left
// it wakes the loop for another iteration.
func (j *Join) drain() {
	cur := j.backlog
	var again []*link // visited, with messages left
	spent, held, i := 0, 0, 0
	for ; i < len(cur) && spent < drainBudget; i++ {
		l := cur[i]
		if l.state != StateDown && l.tr.hold() {
			held++ // its writer wakes the loop when it caught up
		} else {
			spent += j.drainLink(l, drainBudget-spent)
		}
		if len(l.out) > 0 && l.state != StateDown {
			again = append(again, l)
		} else {
			l.inDrain = false
		}
	}
	j.backlog = append(append(make([]*link, 0, len(cur)-i+len(again)), cur[i:]...), again...)
	if len(j.backlog) > held {
		j.h.Wake()
	}
}

// drainLink sends l's queued messages, budget bytes (at least one
// message); it returns the bytes sent.
func (j *Join) drainLink(l *link, budget int) int {
	sent, k := 0, 0
	for k < len(l.out) && (k == 0 || sent+len(l.out[k].body) <= budget) {
		m := l.out[k]
		k++
		sent += len(m.body)
		if l.state == StateDown || j.departed {
			j.dropQueue(l)
			return sent
		}
		if j.linkSendNow(l, m.body, m.counter) && m.part {
			j.stats.snapPartsOut.Add(1)
		}
		if l.state == StateDown {
			j.dropQueue(l)
			return sent
		}
	}
	clear(l.out[:k])
	l.out = l.out[k:]
	l.outBytes -= sent
	if len(l.out) == 0 {
		l.out, l.outBytes = nil, 0
	}
	return sent
}

// partBudget is the size of the snapshot parts this server makes of its
// own origin: relays pass them on as they are, to peers whose limits it
// does not know, so they fit the smallest a peer may have.
func partBudget(own int64) int { return int(max(min(own, 64<<10)-1024, 512)) }

// ownSnap is this server's snapshot at its seq, signed, in parts.
func (j *Join) ownSnap() []Snap {
	if j.selfSnap != nil && j.selfSnapSeq == j.seq {
		return j.selfSnap
	}
	budget := partBudget(j.h.MaxRequestBytes())
	var parts []Snap
	cur := Snap{Origin: j.self, Seq: j.seq}
	size := 0
	j.h.EachEntry(j.self, func(inst string, enc []byte) {
		if len(enc)+200 > budget {
			j.warnEvery("big:"+inst, "join: an entry is too large for a snapshot part; not sending it", "instance", inst, "bytes", len(enc))
			return
		}
		if len(cur.Entries) > 0 && size+len(enc)+16 > budget-400 {
			cur.More = true
			parts = append(parts, cur)
			cur = Snap{Origin: j.self, Seq: j.seq, Part: cur.Part + 1}
			size = 0
		}
		cur.Entries = append(cur.Entries, bytes.Clone(enc))
		size += len(enc) + 1
	})
	parts = append(parts, cur)
	if j.signed() {
		for i := range parts {
			SignSnap(j.cfg.Signer, &parts[i])
		}
	}
	j.selfSnap, j.selfSnapSeq = parts, j.seq
	return parts
}

// askSnap answers a peer's request for origin id's snapshot (a want, or a
// hello again on a live link): at most one per link and interval, however
// often or for whatever versions it asks, so that repeats cost a map
// lookup. A real gap is asked again after the peer's want timeout, well
// past the interval.
func (j *Join) askSnap(l *link, id string, now time.Time) {
	if s, ok := l.snapAt[id]; ok && now.Sub(s.at) < j.cfg.Interval {
		j.stats.snapsMerged.Add(1)
		return
	}
	j.sendSnap(l, id, now)
}

// sendSnap sends the whole state of origin id on l: for this server's
// origin, its snapshot now; for another, the origin's last snapshot this
// server took, as the origin made it, and the changes since. The same
// version goes to a link once per interval (what this server pushes of its
// own accord: checkpoints, relayed snapshots); the parts are encoded once
// per version and shared by every link (encodedSnap), and queued to go out
// a slice per loop iteration (drain).
func (j *Join) sendSnap(l *link, id string, now time.Time) {
	var parts []Snap
	var beat, age uint64
	var bsig []byte
	var o *origin
	seq := j.seq
	if id == j.self {
		parts, beat, bsig = j.ownSnap(), j.beat, j.beatSig
	} else {
		if o = j.origins[id]; o == nil || o.base == nil {
			return // none to give as its origin made it: the peer asks others
		}
		parts, beat, bsig, seq = o.base, o.checked, o.chkSig, o.seq // checked: the peer checks it at once
		age = uint64(max(now.Sub(o.heard), 0).Milliseconds())
	}
	if len(parts) == 0 {
		return
	}
	if s, ok := l.snapAt[id]; ok && s.seq == seq && now.Sub(s.at) < j.cfg.Interval {
		j.stats.snapsMerged.Add(1)
		return
	}
	es := j.encodedSnap(id, parts, beat, bsig)
	// The first part carries the beat and age the peer takes: encoded for
	// this send (the others' are not read).
	first := parts[0]
	first.Beat, first.BeatSig, first.Age = beat, bsig, age
	enc0 := first.Append(nil)
	if l.max > 0 && int64(max(len(enc0), es.largest)) > l.max {
		j.warnEvery("big:"+l.peer, "join: a snapshot part is larger than the peer's message limit; not sending it",
			"peer", l.peer, "origin", id, "bytes", max(len(enc0), es.largest))
		return
	}
	if l.outBytes+len(enc0)+es.bytes > maxLinkQueue {
		j.stats.dropped.Add(1)
		j.warnEvery("drop:"+l.peer, "join: a peer is too slow: dropping link messages (it will ask again)", "peer", l.peer, "link", l.name())
		return
	}
	j.linkFlush(l)
	if l.state == StateDown {
		return
	}
	j.linkPush(l, queuedMsg{body: enc0, counter: &j.stats.snapBytesOut, part: true})
	for _, b := range es.enc[1:] {
		j.linkPush(l, queuedMsg{body: b, counter: &j.stats.snapBytesOut, part: true})
	}
	j.stats.snapsOut.Add(1)
	l.snapAt[id] = snapSent{seq: seq, at: now}
	if len(l.snapAt) > 2*len(j.origins)+16 {
		j.pruneSnapAt(l, now)
	}
	if o != nil {
		for _, enc := range o.log {
			j.linkQueue(l, enc)
		}
	}
	if seq > l.peerSeq[id] {
		l.peerSeq[id] = seq
	}
}

// pruneSnapAt forgets the snapshots l got more than an interval ago.
func (j *Join) pruneSnapAt(l *link, now time.Time) {
	for id, s := range l.snapAt {
		if now.Sub(s.at) >= j.cfg.Interval {
			delete(l.snapAt, id)
		}
	}
}

// encSnap is one version of an origin's snapshot, encoded: what every link
// that wants it is sent.
type encSnap struct {
	parts   []Snap   // the parts encoded (their identity is the version)
	enc     [][]byte // enc[0] is nil: the first part is encoded per send
	bytes   int      // of enc
	largest int      // the largest of enc
}

// encodedSnap returns the encoding of origin id's snapshot parts, made
// once per version (a new parts slice) and kept until the next.
func (j *Join) encodedSnap(id string, parts []Snap, beat uint64, bsig []byte) *encSnap {
	if es := j.encCache[id]; es != nil && len(es.parts) == len(parts) && &es.parts[0] == &parts[0] {
		return es
	}
	es := &encSnap{parts: parts, enc: make([][]byte, len(parts))}
	for i := 1; i < len(parts); i++ {
		m := parts[i]
		m.Beat, m.BeatSig = beat, bsig
		es.enc[i] = m.Append(nil)
		es.bytes += len(es.enc[i])
		es.largest = max(es.largest, len(es.enc[i]))
	}
	j.encCache[id] = es
	j.stats.snapsEncoded.Add(1)
	return es
}

// linkDown drops a link; one this server dialled is dialled again. The
// entries learned through it stay: they expire when their origin's beat is
// not heard for the grace period, by this link or any other.
func (j *Join) linkDown(l *link, reason string) {
	if l.state == StateDown {
		return
	}
	wasUp, synced := l.state.up(), l.state == StateSynced
	l.state = StateDown
	delete(j.links, l)
	j.dropQueue(l)
	l.tr.end()
	d := l.tr.dialer()
	if !wasUp {
		j.log.Debug("join: link attempt ended", "link", l.name(), "reason", reason)
		if d != nil && !d.closed {
			cause := reason
			if ss, ok := l.tr.(*session); ok {
				cause = ss.cause(reason)
			}
			d.fails.Fail(j.log, "join: cannot reach the peer; dialling it again with backoff", cause, "peer", d.addr)
		}
		return
	}
	j.stats.linksDown.Add(1)
	lv := slog.LevelWarn
	if reason == reasonLeft {
		lv = slog.LevelInfo // asked for (LEAVE)
	}
	j.log.Log(context.Background(), lv, "join: link down", "link", l.name(), "server", l.peer, "reason", reason)
	if d != nil && synced && j.cfg.OnLink != nil {
		j.cfg.OnLink(LinkEvent{Addr: d.addr, Peer: l.peer, Up: false, Reason: reason})
	}
}
