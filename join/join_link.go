package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/zmtp"
)

var (
	syncFrame = []byte(VerbSync)
	resetBody = []byte(`{"t":"reset","error":"no such link: say hello"}`)
)

// dialer dials one peer for as long as the server runs: one session (a
// fresh DEALER socket and routing id) at a time, with backoff between them.
type dialer struct {
	addr, ep string
	stop     chan struct{}
	once     sync.Once
	closed   bool // loop-owned: the peer refused us for good
}

func (d *dialer) close() { d.once.Do(func() { close(d.stop) }) }

// session is one attempt at a link to a dialled peer. Its reader hands
// messages to the loop, its writer sends what the loop queued; the loop
// ends it by cancelling ctx.
type session struct {
	d      *dialer
	sock   *zmtp.Socket
	ctx    context.Context
	cancel context.CancelFunc
	out    chan []byte
	queued atomic.Int64 // bytes in out
	up     atomic.Bool  // the link came up: the dialer's backoff starts over
	link   *link        // loop-owned
}

var errLinkFull = errors.New("registry: join link queue full")

// enqueue hands a message to the session's writer without blocking.
func (ss *session) enqueue(body []byte) error {
	if ss.queued.Load()+int64(len(body)) > maxLinkQueue {
		return errLinkFull
	}
	select {
	case ss.out <- bytes.Clone(body):
		ss.queued.Add(int64(len(body)))
		return nil
	default:
		return errLinkFull
	}
}

// joinEvent is what a dialled session hands the loop: a message, or (msg
// nil) the news that the session is open.
type joinEvent struct {
	sess *session
	msg  [][]byte
}

// link is one link with a peer, as the loop holds it.
type link struct {
	in      bool
	env     [][]byte // inbound: the envelope our messages carry (routing id)
	rid     string
	sess    *session // outbound
	peer    string   // the peer's server id, from its hello
	up      bool     // hellos exchanged: changes flow
	synced  bool     // the peer's initial state arrived
	dead    bool
	heard   time.Time
	since   time.Time
	helloAt time.Time
	timeout time.Duration
	max     int64             // the largest message the peer accepts
	peerSeq map[string]uint64 // what the peer holds of each origin, as far as we know
	snap    *snapBuild
	batch   []byte // the delta message being filled
	nbatch  int
	dirty   bool
	rehello bool // a reset came too soon after our hello: say it again at the next tick
}

type snapBuild struct {
	origin         string
	seq, beat, age uint64
	next           int64
	entries        map[string]*entry
	dropped        int
}

func (l *link) name() string {
	if l.sess != nil {
		return l.sess.d.addr
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

func (s *Server) newLink(now time.Time) *link {
	return &link{heard: now, timeout: s.j.cfg.Timeout, peerSeq: map[string]uint64{}}
}

// runDialer is a dialer's goroutine.
func (s *Server) runDialer(d *dialer) {
	j := s.j
	defer j.wg.Done()
	backoff := j.cfg.Interval
	for {
		more, wasUp := s.runSession(d)
		if !more {
			return
		}
		if wasUp {
			backoff = j.cfg.Interval // it worked a while: start over
		}
		// Wait, with jitter, then dial again.
		wait := backoff/2 + rand.N(backoff)
		select {
		case <-d.stop:
			return
		case <-j.stopCh:
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, j.cfg.RedialMax)
	}
}

// runSession runs one session to its end. more false: stop dialling.
func (s *Server) runSession(d *dialer) (more, wasUp bool) {
	j := s.j
	var sec func() zmtp.Mechanism
	if j.cfg.Security != nil {
		sec = j.cfg.Security(d.addr)
	}
	sock, err := zmtp.NewSocket(zmtp.DEALER, zmtp.Options{
		Logger:               slog.New(quieter{s.log.Handler()}),
		RoutingID:            []byte("hydra-join-" + randomHex(8)),
		MaxMsgSize:           s.cfg.MaxRequestBytes,
		SendHWM:              4096,
		Linger:               -1,
		HandshakeTimeout:     j.cfg.Timeout,
		ReconnectInterval:    min(100*time.Millisecond, j.cfg.Interval),
		ReconnectIntervalMax: j.cfg.Interval,
		Security:             sec,
	})
	if err == nil {
		err = sock.Connect(d.ep)
		if err != nil {
			sock.Close()
		}
	}
	if err != nil {
		j.log.Error("join: cannot dial", "peer", d.addr, "err", err)
		return false, false
	}
	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{d: d, sock: sock, ctx: ctx, cancel: cancel, out: make(chan []byte, 4096)}
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		for {
			select {
			case b := <-ss.out:
				err := sock.SendContext(ctx, syncFrame, b)
				ss.queued.Add(-int64(len(b)))
				if err != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	ok := s.joinPost(ss, nil, d.stop)
	for ok {
		msg, err := sock.RecvContext(ctx)
		if err != nil {
			break
		}
		ok = s.joinPost(ss, msg, ctx.Done())
	}
	cancel()
	<-wdone
	sock.Close()
	select {
	case <-d.stop:
		return false, false
	case <-j.stopCh:
		return false, false
	default:
	}
	return true, ss.up.Load()
}

// joinPost hands an event to the loop; false if done or the loop ended.
func (s *Server) joinPost(ss *session, msg [][]byte, done <-chan struct{}) bool {
	j := s.j
	select {
	case j.inbox <- joinEvent{ss, msg}:
		j.wake()
		return true
	case <-done:
		return false
	case <-j.stopCh:
		return false
	}
}

// joinEvent handles one event from a dialled session.
func (s *Server) joinEvent(ev joinEvent, now time.Time) {
	j := s.j
	ss := ev.sess
	if ev.msg == nil {
		if ss.d.closed || ss.ctx.Err() != nil {
			ss.cancel()
			return
		}
		l := s.newLink(now)
		l.sess = ss
		ss.link = l
		j.links[l] = struct{}{}
		s.sendHello(l, now)
		return
	}
	l := ss.link
	if l == nil || l.dead {
		return
	}
	msg := ev.msg
	if len(msg) != 2 || !bytes.EqualFold(msg[0], syncFrame) {
		// An ERR reply: the peer is a server without join, or refused.
		if len(msg) == 2 && string(msg[0]) == StatusError {
			j.warnEvery("err:"+ss.d.addr, "join: the peer does not speak join (an older hydra-server?)",
				"peer", ss.d.addr, "reply", quote(string(msg[1])))
		}
		j.stats.protocolErrors.Add(1)
		return
	}
	s.linkRecv(l, msg[1], now)
}

// joinInbound handles a message of the ROUTER if it is SYNC (link traffic
// from a server that joined us, never answered like a request).
func (s *Server) joinInbound(msg [][]byte, now time.Time) bool {
	env, frames := splitEnvelope(msg)
	if len(frames) == 0 || !bytes.EqualFold(frames[0], syncFrame) {
		return false
	}
	j := s.j
	l := j.byRID[string(env[0])]
	if len(frames) != 2 {
		j.stats.protocolErrors.Add(1)
		return true
	}
	if l == nil {
		m, err := parseLinkMsg(frames[1])
		if err != nil || m.T != msgHello {
			if err == nil && m.T != msgReset && m.T != msgRefuse {
				s.send(env, syncFrame, resetBody)
			}
			j.stats.protocolErrors.Add(1)
			return true
		}
		if len(j.byRID) >= maxInboundLinks {
			s.send(env, syncFrame, appendLinkMsg(nil, &linkMsg{T: msgRefuse, Error: "too many links"}))
			return true
		}
		l = s.newLink(now)
		l.in, l.rid = true, string(env[0])
		for _, f := range env {
			l.env = append(l.env, bytes.Clone(f))
		}
		j.byRID[l.rid] = l
		j.links[l] = struct{}{}
		s.linkHandle(l, m, len(frames[1]), now)
		s.updateGauges()
		return true
	}
	s.linkRecv(l, frames[1], now)
	s.updateGauges()
	return true
}

func (s *Server) linkRecv(l *link, body []byte, now time.Time) {
	m, err := parseLinkMsg(body)
	if err != nil {
		s.j.stats.protocolErrors.Add(1)
		s.j.warnEvery("bad:"+l.peer, "join: malformed message from a peer", "peer", l.peer, "link", l.name(), "err", err)
		l.heard = now
		return
	}
	s.linkHandle(l, m, len(body), now)
}

func wireSize(n int) int64 {
	h := 2
	if n > 255 {
		h = 9
	}
	return int64(2 + len(syncFrame) + h + n)
}

// linkHandle handles one message of a link.
func (s *Server) linkHandle(l *link, m *linkMsg, size int, now time.Time) {
	j := s.j
	l.heard = now
	j.stats.msgsIn.Add(1)
	j.stats.bytesIn.Add(wireSize(size))
	switch m.T {
	case msgHello:
		s.onHello(l, m, now)
	case msgReady:
		if l.up && !l.synced {
			l.synced = true
			j.stats.linksUp.Add(1)
			if l.sess != nil {
				l.sess.up.Store(true)
				j.log.Info("join: linked", "peer", l.sess.d.addr, "server", l.peer)
				if j.cfg.OnLink != nil {
					j.cfg.OnLink(LinkEvent{Addr: l.sess.d.addr, Peer: l.peer, Up: true})
				}
			} else {
				j.log.Info("join: a server joined", "server", l.peer)
			}
		}
	case msgTick:
		if l.up {
			s.onDigest(l, m.Digest, true, now)
		}
	case msgSnap:
		if l.up {
			s.onSnap(l, m, now)
		}
	case msgDelta:
		if l.up {
			s.onDelta(l, m.Changes, now)
		}
	case msgWant:
		if l.up {
			for i, o := range m.Origins {
				if i >= maxJoinOrigins {
					break
				}
				s.sendSnap(l, o, now)
			}
		}
	case msgReset:
		if !l.in {
			l.up, l.synced, l.snap = false, false, nil
			if now.Sub(l.helloAt) >= j.cfg.Interval {
				s.sendHello(l, now)
			} else {
				l.rehello = true
			}
		}
	case msgRefuse:
		if !l.in {
			j.log.Error("join: the peer refused the link; not dialling it again", "peer", l.sess.d.addr, "reason", m.Error)
			d := l.sess.d
			d.closed = true
			d.close()
			delete(j.dialers, d.ep)
		}
		s.linkDown(l, "refused: "+m.Error)
	}
}

func (s *Server) onHello(l *link, m *linkMsg, now time.Time) {
	j := s.j
	if checkID("server", m.Server) != nil {
		j.stats.protocolErrors.Add(1)
		s.linkDown(l, "hello without a valid server id")
		return
	}
	if m.Server == j.self {
		// Ourselves, through another address, or a server with our id.
		s.linkWrite(l, appendLinkMsg(nil, &linkMsg{T: msgRefuse, Error: "same server id " + j.self}), nil)
		if !l.in {
			j.log.Error("join: the peer has this server's id (joined itself?); not dialling it again", "peer", l.sess.d.addr, "server", m.Server)
			d := l.sess.d
			d.closed = true
			d.close()
			delete(j.dialers, d.ep)
		}
		s.linkDown(l, "same server id")
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
	l.up, l.synced, l.snap, l.since = true, false, nil, now
	clear(l.peerSeq)
	l.batch, l.nbatch = l.batch[:0], 0
	if l.in {
		s.sendHello(l, now)
	}
	s.onDigest(l, m.Digest, false, now)
	// Send what the peer lacks or holds older; then say we are done.
	if ps, ok := l.peerSeq[j.self]; !ok || ps < j.seq {
		s.sendSnap(l, j.self, now)
	}
	for id, o := range j.origins {
		if ps, ok := l.peerSeq[id]; !ok || ps < o.seq {
			s.sendSnap(l, id, now)
		}
	}
	s.linkWrite(l, []byte(`{"t":"ready"}`), &j.stats.tickBytesOut)
}

func (s *Server) sendHello(l *link, now time.Time) {
	l.helloAt, l.rehello = now, false
	for _, m := range s.digestMsgs(msgHello, now) {
		s.linkWrite(l, m, &s.j.stats.tickBytesOut)
	}
}

// onDigest takes a peer's digest: liveness of origins, what the peer holds,
// and (want) a request for the snapshots of origins it holds newer.
func (s *Server) onDigest(l *link, dg map[string]digestItem, want bool, now time.Time) {
	j := s.j
	var wants []string
	for id, d := range dg {
		if checkID("origin", id) != nil {
			j.stats.protocolErrors.Add(1)
			continue
		}
		if id == j.self {
			s.selfSeen(d, now)
			continue
		}
		l.peerSeq[id] = d.Seq
		if t, ok := j.tombs[id]; ok && d.Beat <= t.beat {
			continue
		}
		age := time.Duration(min(d.Age, uint64(time.Hour/time.Millisecond))) * time.Millisecond
		o := j.origins[id]
		if o != nil {
			o.hear(d.Beat, age, now)
		}
		if !want || age > j.cfg.Grace || o != nil && d.Seq <= o.seq {
			continue
		}
		if o == nil && len(j.origins) >= maxJoinOrigins {
			j.warnEvery("origins", "join: too many origins; ignoring new ones", "limit", maxJoinOrigins)
			continue
		}
		if t, ok := j.wantAt[id]; ok && now.Sub(t) < j.cfg.Timeout {
			continue
		}
		j.wantAt[id] = now
		wants = append(wants, id)
	}
	s.sendWant(l, wants)
}

func (s *Server) sendWant(l *link, wants []string) {
	if len(wants) == 0 {
		return
	}
	s.j.stats.wantsOut.Add(int64(len(wants)))
	s.linkSend(l, appendLinkMsg(nil, &linkMsg{T: msgWant, Origins: wants}), &s.j.stats.tickBytesOut)
}

// selfSeen handles news of our own id from a peer: if it holds a higher
// seq or beat than ours, an earlier run of this server with the same id
// (and a clock set back), or another server with our id, left it: we move
// our clock past it and send our state again, which then wins.
func (s *Server) selfSeen(d digestItem, now time.Time) {
	j := s.j
	if d.Seq <= j.seq && d.Beat <= j.beat {
		return
	}
	j.warnEvery("selfid", "join: peers hold a newer state under this server's id (another server with the same id, or a restart with the clock set back); taking the id over")
	j.clock = max(j.clock, d.Seq, d.Beat)
	j.beat = j.next()
	if d.Seq > j.seq {
		j.seq = j.next()
		for l := range j.links {
			if l.up {
				s.sendSnap(l, j.self, now)
			}
		}
	}
}

func (s *Server) onSnap(l *link, m *linkMsg, now time.Time) {
	j := s.j
	if checkID("origin", m.Origin) != nil {
		j.stats.protocolErrors.Add(1)
		l.snap = nil
		return
	}
	if m.Part == 0 {
		l.snap = &snapBuild{origin: m.Origin, seq: m.Seq, beat: m.Beat, age: m.Age, next: 1, entries: map[string]*entry{}}
	} else if sb := l.snap; sb == nil || sb.origin != m.Origin || sb.seq != m.Seq || sb.next != m.Part {
		j.stats.protocolErrors.Add(1)
		l.snap = nil
		return
	} else {
		sb.next++
	}
	sb := l.snap
	for _, raw := range m.Entries {
		e, err := s.parseRemoteEntry(raw, m.Origin)
		if err != nil {
			j.stats.protocolErrors.Add(1)
			j.warnEvery("entry:"+l.peer, "join: a peer sent an invalid entry; skipping it", "peer", l.peer, "err", err)
			continue
		}
		if len(sb.entries) >= s.cfg.MaxEntries {
			sb.dropped++
			continue
		}
		sb.entries[e.Instance] = e
	}
	if m.More {
		return
	}
	l.snap = nil
	if sb.dropped > 0 {
		j.warnEvery("snapfull", "join: a snapshot holds more than max entries; dropping the excess", "origin", sb.origin, "dropped", sb.dropped)
	}
	s.applySnap(l, sb, now)
}

func (s *Server) applySnap(l *link, sb *snapBuild, now time.Time) {
	j := s.j
	id := sb.origin
	if sb.seq > l.peerSeq[id] {
		l.peerSeq[id] = sb.seq
	}
	if id == j.self {
		s.selfSeen(digestItem{Seq: sb.seq, Beat: sb.beat}, now)
		return
	}
	if t, ok := j.tombs[id]; ok && sb.beat <= t.beat {
		return
	}
	age := time.Duration(min(sb.age, uint64(time.Hour/time.Millisecond))) * time.Millisecond
	o := j.origins[id]
	if o == nil {
		if age > j.cfg.Grace {
			return
		}
		if len(j.origins) >= maxJoinOrigins {
			j.warnEvery("origins", "join: too many origins; ignoring new ones", "limit", maxJoinOrigins)
			return
		}
		o = &origin{id: id, entries: map[string]*entry{}, beat: sb.beat, heard: now.Add(-age)}
		j.origins[id] = o
		delete(j.tombs, id)
	} else {
		o.hear(sb.beat, age, now)
		if sb.seq <= o.seq {
			return
		}
	}
	for inst := range o.entries {
		if sb.entries[inst] == nil {
			s.remoteDel(o, inst, EventDeregister, now)
		}
	}
	for _, e := range sb.entries {
		s.remoteSet(o, e, now)
	}
	o.seq = sb.seq
	delete(j.wantAt, id)
	j.stats.snapsIn.Add(1)
	for l2 := range j.links {
		if l2 != l && l2.up {
			if ps, ok := l2.peerSeq[id]; !ok || ps < o.seq {
				s.sendSnap(l2, id, now)
			}
		}
	}
}

func (s *Server) onDelta(l *link, cs []change, now time.Time) {
	j := s.j
	var wants []string
	for i := range cs {
		c := &cs[i]
		if checkID("origin", c.Origin) != nil {
			j.stats.protocolErrors.Add(1)
			continue
		}
		if c.Seq > l.peerSeq[c.Origin] {
			l.peerSeq[c.Origin] = c.Seq
		}
		if c.Origin == j.self {
			if c.Seq > j.seq {
				s.selfSeen(digestItem{Seq: c.Seq}, now)
			}
			continue
		}
		o := j.origins[c.Origin]
		switch {
		case o != nil && c.Seq <= o.seq:
			j.stats.dupsIn.Add(1)
			continue
		case o == nil || c.Prev != o.seq:
			j.stats.gapsIn.Add(1)
			if t, ok := j.wantAt[c.Origin]; (!ok || now.Sub(t) >= j.cfg.Timeout) && !isTomb(j, c.Origin) {
				j.wantAt[c.Origin] = now
				wants = append(wants, c.Origin)
			}
			continue
		}
		switch c.Op {
		case opSet:
			e, err := s.parseRemoteEntry(c.Entry, o.id)
			if err != nil {
				j.stats.protocolErrors.Add(1)
				j.warnEvery("entry:"+l.peer, "join: a peer sent an invalid entry; skipping it", "peer", l.peer, "err", err)
				break
			}
			s.remoteSet(o, e, now)
			c.Entry = e.enc
		case opDeregister, opExpire:
			typ := EventDeregister
			if c.Op == opExpire {
				typ = EventExpire
			}
			if checkID("instance", c.Instance) == nil {
				s.remoteDel(o, c.Instance, typ, now)
			}
		}
		// Unknown operations move the seq on and are passed on: newer
		// servers further on may know them.
		o.seq = c.Seq
		j.stats.changesIn.Add(1)
		s.joinForward(c, l)
	}
	s.sendWant(l, wants)
}

func isTomb(j *joinState, id string) bool {
	_, ok := j.tombs[id]
	return ok
}

// joinForward queues a change for every up link but from (where it came
// from) and those whose peer already holds it.
func (s *Server) joinForward(c *change, from *link) {
	j := s.j
	var enc []byte
	for l := range j.links {
		if l == from || !l.up {
			continue
		}
		if ps, ok := l.peerSeq[c.Origin]; ok && ps >= c.Seq {
			continue
		}
		if enc == nil {
			enc = appendChange(j.scratch[:0], c)
			j.scratch = enc
		}
		l.peerSeq[c.Origin] = c.Seq
		s.linkQueue(l, enc)
	}
}

// linkQueue adds an encoded change to l's delta message, flushed at the
// end of the loop's iteration or when full.
func (s *Server) linkQueue(l *link, enc []byte) {
	if l.nbatch > 0 && len(l.batch)+len(enc)+3 > l.budget(s.cfg.MaxRequestBytes) {
		s.linkFlush(l)
	}
	if l.nbatch == 0 {
		l.batch = append(l.batch[:0], `{"t":"delta","changes":[`...)
	} else {
		l.batch = append(l.batch, ',')
	}
	l.batch = append(l.batch, enc...)
	l.nbatch++
	if !l.dirty {
		l.dirty = true
		s.j.dirty = append(s.j.dirty, l)
	}
}

// linkFlush sends l's pending delta message.
func (s *Server) linkFlush(l *link) {
	l.dirty = false
	if l.nbatch == 0 {
		return
	}
	j := s.j
	n := l.nbatch
	l.batch = append(l.batch, "]}"...)
	l.nbatch = 0
	if s.linkWrite(l, l.batch, &j.stats.deltaBytesOut) {
		j.stats.deltaMsgsOut.Add(1)
		j.stats.changesOut.Add(int64(n))
	}
	l.batch = l.batch[:0]
}

// linkSend sends a message after the changes queued before it.
func (s *Server) linkSend(l *link, body []byte, counter *atomic.Int64) bool {
	s.linkFlush(l)
	return s.linkWrite(l, body, counter)
}

// linkWrite sends one message on l without blocking: a peer that is gone
// or too far behind does not get it (a gap it will ask to fill).
func (s *Server) linkWrite(l *link, body []byte, counter *atomic.Int64) bool {
	if l.dead {
		return false
	}
	j := s.j
	var err error
	if l.in {
		err = s.send(l.env, syncFrame, body)
	} else {
		err = l.sess.enqueue(body)
	}
	if err != nil {
		j.stats.dropped.Add(1)
		if errors.Is(err, zmtp.ErrHostUnreachable) {
			s.linkDown(l, "the peer disconnected")
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

// sendSnap sends the whole state of origin id on l, in parts that fit the
// peer's message size limit.
func (s *Server) sendSnap(l *link, id string, now time.Time) {
	j := s.j
	var seq, beat, age uint64
	var list []*entry
	if id == j.self {
		seq, beat = j.seq, j.beat
		for _, e := range s.st.entries {
			if e.Origin == j.self {
				list = append(list, e)
			}
		}
	} else {
		o := j.origins[id]
		if o == nil {
			return
		}
		seq, beat = o.seq, o.beat
		age = uint64(max(now.Sub(o.heard), 0).Milliseconds())
		for _, e := range o.entries {
			list = append(list, e)
		}
	}
	s.linkFlush(l)
	budget := l.budget(s.cfg.MaxRequestBytes)
	var part int64
	head := func(b []byte) []byte {
		b = append(b[:0], `{"t":"snap","origin":`...)
		b = appendJSONString(b, id)
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, `,"beat":`...)
		b = strconv.AppendUint(b, beat, 10)
		b = append(b, `,"age":`...)
		b = strconv.AppendUint(b, age, 10)
		b = append(b, `,"part":`...)
		b = strconv.AppendInt(b, part, 10)
		return append(b, `,"entries":[`...)
	}
	write := func(b []byte) bool {
		if !s.linkWrite(l, b, &j.stats.snapBytesOut) {
			return false
		}
		j.stats.snapPartsOut.Add(1)
		return true
	}
	b := head(j.scratch)
	n := 0
	for _, e := range list {
		if len(e.enc)+200 > budget {
			j.warnEvery("big:"+l.peer, "join: an entry is too large for the peer's message limit; not sending it",
				"peer", l.peer, "instance", e.Instance, "bytes", len(e.enc))
			continue
		}
		if n > 0 && len(b)+len(e.enc)+16 > budget {
			b = append(b, `],"more":true}`...)
			if !write(b) {
				j.scratch = b
				return
			}
			part++
			b = head(b)
			n = 0
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, e.enc...)
		n++
	}
	b = append(b, "]}"...)
	ok := write(b)
	j.scratch = b
	if ok {
		j.stats.snapsOut.Add(1)
		if seq > l.peerSeq[id] {
			l.peerSeq[id] = seq
		}
	}
}

// linkDown drops a link; one this server dialled is dialled again. The
// entries learned through it stay: they expire when their origin's beat is
// not heard for the grace period, by this link or any other.
func (s *Server) linkDown(l *link, reason string) {
	if l.dead {
		return
	}
	j := s.j
	l.dead = true
	delete(j.links, l)
	if l.in {
		if j.byRID[l.rid] == l {
			delete(j.byRID, l.rid)
		}
	} else {
		l.sess.cancel()
	}
	if !l.up {
		j.log.Debug("join: link attempt ended", "link", l.name(), "reason", reason)
		if l.sess != nil && !l.sess.d.closed {
			j.warnEvery("unreachable:"+l.sess.d.addr, "join: no answer from the peer; dialling it again with backoff",
				"peer", l.sess.d.addr, "reason", reason)
		}
		return
	}
	j.stats.linksDown.Add(1)
	j.log.Warn("join: link down", "link", l.name(), "server", l.peer, "reason", reason)
	if l.sess != nil && l.synced && j.cfg.OnLink != nil {
		j.cfg.OnLink(LinkEvent{Addr: l.sess.d.addr, Peer: l.peer, Up: false, Reason: reason})
	}
}
