package zmtp

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// msgQueue is a FIFO of received messages.
type msgQueue struct {
	q    [][][]byte
	head int
}

func (m *msgQueue) len() int { return len(m.q) - m.head }

func (m *msgQueue) push(msgs ...[][]byte) { m.q = append(m.q, msgs...) }

func (m *msgQueue) pop() [][]byte {
	msg := m.q[m.head]
	m.q[m.head] = nil
	m.head++
	if m.head == len(m.q) {
		m.q, m.head = m.q[:0], 0
	} else if m.head > 1024 && m.head > len(m.q)/2 {
		n := copy(m.q, m.q[m.head:])
		clear(m.q[n:])
		m.q, m.head = m.q[:n], 0
	}
	return msg
}

// deliver takes the messages a connection's reader parsed. It blocks (and
// so stops reading from that peer) while the pipe holds RecvHWM messages.
func (s *Socket) deliver(c *conn, batch [][][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := c.pipe
	if s.closed || p == nil || p.c != c {
		return
	}
	switch s.typ {
	case PUB, XPUB:
		// What a publisher receives are 3.0-style subscriptions.
		for _, m := range batch {
			if len(m) == 1 && len(m[0]) > 0 && m[0][0] <= 1 {
				s.subscriptionLocked(p, m[0][1:], m[0][0] == 1)
			}
		}
		return
	case REQ:
		if !s.reqPending || p != s.reqPipe {
			return // a reply nobody asked this peer for
		}
	}
	p.in.push(batch...)
	s.wakeReceivers()
	for p.in.len() >= s.cfg.RecvHWM && !s.closed && p.c == c {
		if p.roomWait == nil {
			p.roomWait = make(chan struct{})
		}
		ch := p.roomWait
		s.mu.Unlock()
		select {
		case <-ch:
		case <-c.stop:
		}
		s.mu.Lock()
		if c.stopping.Load() {
			return
		}
	}
}

// peerSubscription handles a SUBSCRIBE or CANCEL command from a peer.
func (s *Socket) peerSubscription(c *conn, topic []byte, on bool) {
	if s.typ != PUB && s.typ != XPUB {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := c.pipe; p != nil && p.c == c {
		s.subscriptionLocked(p, topic, on)
	}
}

func (s *Socket) subscriptionLocked(p *pipe, topic []byte, on bool) {
	if on {
		if p.peerSubBytes+len(topic) > maxPeerSubs {
			s.log.Warn("zmtp: peer exceeds the subscription limit; ignoring", "limit", maxPeerSubs)
			return
		}
		p.peerSubBytes += len(topic)
		p.peerSubs = append(p.peerSubs, bytes.Clone(topic))
	} else {
		for i, t := range p.peerSubs {
			if bytes.Equal(t, topic) {
				p.peerSubs = append(p.peerSubs[:i], p.peerSubs[i+1:]...)
				p.peerSubBytes -= len(topic)
				break
			}
		}
	}
	if s.typ == XPUB && p.in.len() < s.cfg.RecvHWM {
		flag := byte(0)
		if on {
			flag = 1
		}
		p.in.push([][]byte{append([]byte{flag}, topic...)})
		s.wakeReceivers()
	}
}

func matchAny(topics [][]byte, msg []byte) bool {
	for _, t := range topics {
		if bytes.HasPrefix(msg, t) {
			return true
		}
	}
	return false
}

// Send sends one message made of the given frames; see SendContext.
func (s *Socket) Send(frames ...[]byte) error {
	return s.SendContext(context.Background(), frames...)
}

// SendContext queues a message for a peer chosen by the socket's pattern
// and returns once it is queued; the frames are copied, so the caller may
// reuse them. Where the pattern blocks (PUSH, DEALER, REQ, PAIR with every
// peer at SendHWM, or no peer yet) it waits for ctx, SendTimeout or room.
func (s *Socket) SendContext(ctx context.Context, frames ...[]byte) error {
	if len(frames) == 0 {
		return fmt.Errorf("zmtp: send: empty message")
	}
	var timer *time.Timer
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return ErrClosed
		}
		done, err := s.trySend(frames)
		if s.prune {
			s.prunePipes()
		}
		if done || err != nil {
			return err
		}
		if timer == nil && s.cfg.SendTimeout > 0 {
			timer = s.sendTimer.get(s.cfg.SendTimeout)
			defer s.sendTimer.put(timer) // runs before s.mu.Unlock
		}
		if err := s.wait(ctx, s.sendWaitCh(), timer); err != nil {
			return err
		}
	}
}

// trySend does one attempt; done false with a nil error means wait.
func (s *Socket) trySend(frames [][]byte) (done bool, err error) {
	switch s.typ {
	case PUSH, DEALER, PAIR:
		p := s.nextOut()
		if p == nil {
			return false, nil
		}
		s.enqueue(p, nil, frames)
	case REQ:
		if s.reqPending {
			return false, fmt.Errorf("%w: REQ must receive the reply before sending again", ErrState)
		}
		p := s.nextOut()
		if p == nil {
			return false, nil
		}
		s.enqueue(p, [][]byte{nil}, frames)
		s.reqPipe, s.reqPending = p, true
	case REP:
		if !s.repPending {
			return false, fmt.Errorf("%w: REP must receive a request before replying", ErrState)
		}
		if p := s.repPipe; !p.dead && p.outMsgs < s.cfg.SendHWM &&
			s.makeRoom(p, encodedSize(s.repEnv, frames)) == nil {
			s.enqueue(p, s.repEnv, frames)
		} // else the requester is gone, stuck or cut off: the reply is dropped, as in libzmq
		s.repPipe, s.repEnv, s.repPending = nil, nil, false
	case ROUTER:
		if len(frames) < 2 {
			return false, fmt.Errorf("zmtp: ROUTER send: need a routing id frame and a body")
		}
		p := s.byID[string(frames[0])]
		if p == nil || p.c == nil {
			if s.cfg.RouterMandatory {
				return false, fmt.Errorf("%w: routing id %q", ErrHostUnreachable, frames[0])
			}
			return true, nil
		}
		if p.outMsgs >= s.cfg.SendHWM {
			if s.cfg.RouterMandatory {
				return false, nil
			}
			return true, nil
		}
		if err := s.makeRoom(p, encodedSize(nil, frames[1:])); err != nil {
			if s.cfg.RouterMandatory {
				return false, fmt.Errorf("%w: routing id %q", err, frames[0])
			}
			return true, nil
		}
		s.enqueue(p, nil, frames[1:])
	case PUB, XPUB:
		n := encodedSize(nil, frames)
		for _, p := range s.pipes { // a cut leaves its pipe here until prunePipes
			if p.c != nil && p.outMsgs < s.cfg.SendHWM && matchAny(p.peerSubs, frames[0]) &&
				s.makeRoom(p, n) == nil {
				s.enqueue(p, nil, frames)
			}
		}
	case XSUB:
		if len(frames) == 1 && len(frames[0]) > 0 && frames[0][0] <= 1 {
			s.subscribeLocked(frames[0][1:], frames[0][0] == 1)
			return true, nil
		}
		for _, p := range s.pipes {
			if p.c != nil && p.outMsgs < s.cfg.SendHWM {
				s.enqueue(p, nil, frames)
			}
		}
	default: // SUB, PULL
		return false, fmt.Errorf("%w: %s cannot send", ErrNotSupported, s.typ)
	}
	return true, nil
}

// nextOut picks the next pipe in round-robin order that has room.
func (s *Socket) nextOut() *pipe {
	n := len(s.pipes)
	for i := 0; i < n; i++ {
		p := s.pipes[(s.rr+i)%n]
		if !p.dead && p.hasRoom(s.cfg.SendHWM) {
			s.rr = (s.rr + i + 1) % n
			return p
		}
	}
	return nil
}

// maxPending bounds the bytes queued for a connected peer's writer
// before a blocking Send waits for it to catch up. Without it a fast sender
// grows one huge buffer while the writer is in a write call; with it the
// writer's buffers stay small enough to be reused and to stay in cache.
const maxPending = 512 << 10

// hasRoom reports whether a blocking send may queue on p: under the
// high-water mark, and, while connected, not too far ahead of the writer.
func (p *pipe) hasRoom(hwm int) bool {
	return p.outMsgs < hwm && (p.c == nil || len(p.out) < maxPending)
}

// enqueue encodes a message (envelope frames first) into p's output.
func (s *Socket) enqueue(p *pipe, envelope, frames [][]byte) {
	before := len(p.out)
	for _, f := range envelope {
		p.out = AppendFrame(p.out, FlagMore, f)
	}
	p.out = AppendMessage(p.out, frames)
	p.outMsgs++
	s.pending += int64(len(p.out) - before)
	s.kick(p)
}

// encodedSize is how many bytes enqueue adds for a message.
func encodedSize(envelope, frames [][]byte) int64 {
	var n int64
	for _, fs := range [2][][]byte{envelope, frames} {
		for _, f := range fs {
			n += int64(len(f)) + 2
			if len(f) > 255 {
				n += 7
			}
		}
	}
	return n
}

// Recv receives one message; see RecvContext.
func (s *Socket) Recv() ([][]byte, error) {
	return s.RecvContext(context.Background())
}

// RecvContext waits for the next message, fair-queued across peers. A
// ROUTER's messages start with the sender's routing id; REQ and REP strip
// and restore envelopes themselves. The returned slices belong to the
// caller.
func (s *Socket) RecvContext(ctx context.Context) ([][]byte, error) {
	switch s.typ {
	case PUSH, PUB:
		return nil, fmt.Errorf("%w: %s cannot receive", ErrNotSupported, s.typ)
	}
	var timer *time.Timer
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return nil, ErrClosed
		}
		msg, err := s.tryRecv()
		if msg != nil || err != nil {
			return msg, err
		}
		if timer == nil && s.cfg.RecvTimeout > 0 {
			timer = s.recvTimer.get(s.cfg.RecvTimeout)
			defer s.recvTimer.put(timer) // runs before s.mu.Unlock
		}
		if err := s.wait(ctx, s.recvWaitCh(), timer); err != nil {
			return nil, err
		}
	}
}

func (s *Socket) tryRecv() ([][]byte, error) {
	switch s.typ {
	case REQ:
		if !s.reqPending {
			return nil, fmt.Errorf("%w: REQ must send a request before receiving", ErrState)
		}
		for {
			msg := s.popFrom(s.reqPipe)
			if msg == nil {
				return nil, nil
			}
			if len(msg) >= 2 && len(msg[0]) == 0 {
				s.reqPipe, s.reqPending = nil, false
				return msg[1:], nil
			}
			// No empty delimiter: not a reply to us; drop it, as libzmq does.
		}
	case REP:
		if s.repPending {
			return nil, fmt.Errorf("%w: REP must send the reply before receiving again", ErrState)
		}
		for {
			msg, p := s.popAny()
			if msg == nil {
				return nil, nil
			}
			for i, f := range msg {
				if len(f) == 0 {
					s.repPipe, s.repEnv, s.repPending = p, msg[:i+1], true
					return msg[i+1:], nil
				}
			}
		}
	case SUB:
		for {
			msg, _ := s.popAny()
			if msg == nil || matchAny(s.subs, msg[0]) {
				return msg, nil
			}
		}
	}
	msg, _ := s.popAny()
	return msg, nil
}

// popAny takes the next message in fair-queue order.
func (s *Socket) popAny() ([][]byte, *pipe) {
	n := len(s.pipes)
	for i := 0; i < n; i++ {
		j := (s.fq + i) % n
		p := s.pipes[j]
		if p.in.len() > 0 {
			s.fq = (j + 1) % n
			return s.popFrom(p), p
		}
	}
	return nil, nil
}

func (s *Socket) popFrom(p *pipe) [][]byte {
	if p == nil || p.in.len() == 0 {
		return nil
	}
	msg := p.in.pop()
	if p.roomWait != nil && p.in.len() < s.cfg.RecvHWM {
		close(p.roomWait)
		p.roomWait = nil
	}
	s.dropPipe(p)
	return msg
}

// Subscribe asks publishers for messages whose first frame starts with
// prefix (SUB, XSUB); an empty prefix subscribes to everything.
func (s *Socket) Subscribe(prefix []byte) error { return s.setSubscription(prefix, true) }

// Unsubscribe cancels one earlier Subscribe of the same prefix.
func (s *Socket) Unsubscribe(prefix []byte) error { return s.setSubscription(prefix, false) }

func (s *Socket) setSubscription(prefix []byte, on bool) error {
	if s.typ != SUB && s.typ != XSUB {
		return fmt.Errorf("%w: %s has no subscriptions", ErrNotSupported, s.typ)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.subscribeLocked(prefix, on)
	return nil
}

func (s *Socket) subscribeLocked(prefix []byte, on bool) {
	if on {
		s.subs = append(s.subs, bytes.Clone(prefix))
	} else {
		found := false
		for i, t := range s.subs {
			if bytes.Equal(t, prefix) {
				s.subs = append(s.subs[:i], s.subs[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			return
		}
	}
	for _, p := range s.pipes {
		if p.c != nil {
			before := len(p.ctrl)
			p.ctrl = appendSubscription(p.ctrl, p.v31, prefix, on)
			s.pending += int64(len(p.ctrl) - before)
			s.kick(p)
		}
	}
}
