package zmtp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/internal/admission"
)

// conn is one ZMTP connection. Its life: handshake (greeting, then the
// mechanism's commands, under a deadline), then attached to a pipe of the
// socket with one reader (serve's goroutine) and one writer goroutine, then
// detached. The writer owns every write after the handshake.
type conn struct {
	s      *Socket
	nc     net.Conn
	log    *slog.Logger
	pipe   *pipe // set before serve for connect-side pipes, by attach otherwise
	fr     *frameReader
	peer   Greeting
	v31    bool // both sides speak ZMTP 3.1: PING, SUBSCRIBE/CANCEL commands
	meta   Metadata
	cipher MessageCipher
	userID string // the mechanism's authenticated identity (Session.UserID)
	// closeFlushed: Disconnect asked to close once the queue is written.
	closeFlushed atomic.Bool
	inMech       bool // the handshake reached the mechanism's part (a failure's reason)
	cut          bool // cut off as a slow consumer (under s.mu)
	accepted     bool // accepted by a listener, not dialled by Connect

	// Admission (Config.Handshakes, Config.Conns) of an accepted
	// connection: nil slots when there is no cap.
	hsSlot, connSlot *admission.Slot
	evicted          atomic.Bool // a newcomer took its handshake slot

	readDeadline  time.Time // the read deadline set now (armDeadline)
	writeDeadline time.Time // the write deadline set now (write; the writer's own)
	msgDeadline   bool      // it is a message's progress deadline

	wake       chan struct{} // cap 1: the pipe has something to write
	stop       chan struct{} // closed to stop the writer
	stopOnce   sync.Once
	writerDone chan struct{}
	stopping   atomic.Bool
	ready      atomic.Bool  // attached, writer running
	peerTTL    atomic.Int64 // ns; the peer's PING TTL

	// Receive assembly. Messages are slices of slab (a shared array of
	// frame headers) whose frames are slices of the read buffers.
	slab     [][]byte
	msgStart int
	msgSize  int64
	batch    [][][]byte
	routerID []byte // ROUTER sockets prefix each message with the peer's id
}

func newConn(s *Socket, nc net.Conn, p *pipe) *conn {
	c := &conn{
		s: s, nc: nc, pipe: p,
		log:        s.log.With("peer", nc.RemoteAddr().String()),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	c.fr = newFrameReader(nc)
	return c
}

// serve runs the connection to its end and returns why it ended.
func (c *conn) serve() error {
	defer c.nc.Close()
	defer c.wipeCipher()
	err := c.handshake()
	c.hsSlot.Release()
	if err != nil {
		close(c.writerDone) // no writer was started
		if !c.stopping.Load() {
			reason := classifyHandshake(err, c.inMech)
			if c.evicted.Load() {
				reason = FailLimit
				err = fmt.Errorf("zmtp: handshake cut for a newcomer (too many handshakes): %w", err)
			}
			c.s.hsCount[reason].Add(1)
			c.logHandshakeFailure(err, reason)
		}
		return err
	}
	if err := c.admit(); err != nil {
		close(c.writerDone)
		c.sendErrorNow(err.Error())
		return err
	}
	defer c.connSlot.Release()
	if err := c.s.attach(c); err != nil {
		close(c.writerDone)
		c.logRefusal(err)
		c.sendErrorNow(err.Error())
		return err
	}
	c.ready.Store(true)
	c.log.Debug("zmtp: peer ready", "socket_type", c.peerType(), "zmtp", fmt.Sprintf("%d.%d", c.peer.Major, c.peer.Minor))
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		c.writeLoop()
	}()
	c.fr.beforeRead = c.beforeRead
	err = c.readLoop()
	c.s.detach(c)
	c.stopWriter()
	<-c.writerDone
	if c.stopping.Load() || errors.Is(err, net.ErrClosed) {
		c.log.Debug("zmtp: connection closed", "err", err)
	} else {
		c.log.Info("zmtp: peer dropped", "err", err)
	}
	return err
}

// admit takes an established connection's slot (Config.Conns) for an
// accepted connection; a refusal is counted and logged as a handshake
// failure (FailLimit) and its error is what the peer is told.
func (c *conn) admit() error {
	if !c.accepted {
		return nil
	}
	var err error
	if c.connSlot, err = c.s.cfg.Conns.Acquire(c.nc.RemoteAddr(), nil); err != nil {
		c.s.hsCount[FailLimit].Add(1)
		c.logHandshakeFailure(err, FailLimit)
		return err
	}
	return nil
}

// logRefusal logs why attach refused a connection; an accepted peer's
// refusals are said once per source like its handshake failures.
func (c *conn) logRefusal(err error) {
	level := slog.LevelWarn
	if c.accepted {
		level, _ = c.s.acceptedFailure(c.nc.RemoteAddr(), FailOther, c.cause(err))
	}
	c.log.Log(context.Background(), level, "zmtp: peer refused", "err", err)
}

// evict closes a connection whose handshake slot a newcomer took
// (admission's Evict); the handshake then fails as FailLimit.
func (c *conn) evict() {
	c.evicted.Store(true)
	c.nc.Close()
}

// wipeCipher lets a cipher that can (see MessageCipher) zero its keys,
// once neither the reader nor the writer can use them any more.
func (c *conn) wipeCipher() {
	if w, ok := c.cipher.(interface{ Wipe() }); ok {
		w.Wipe()
	}
}

// logHandshakeFailure logs why a handshake failed: at Warn, except when
// this socket's connection to the same peer failed the same way last time
// (a server refusing our keys, retried every ReconnectIntervalMax): that
// goes to Debug, with a reminder at Warn every handshakeWarnEvery, until the
// attempts succeed or fail differently. An accepted connection's failure is
// kept by source and reason (acceptedFailure): the first at Warn, the same
// again at Debug, with a count at the next Warn a handshakeWarnEvery later,
// so that a flood of them from a few addresses is a few lines.
func (c *conn) logHandshakeFailure(err error, reason HandshakeFailure) {
	if !c.accepted {
		level := slog.LevelWarn
		if p := c.pipe; p != nil && p.persistent {
			now := time.Now()
			if msg := err.Error(); msg == p.lastHandshakeErr && now.Sub(p.lastHandshakeWarn) < handshakeWarnEvery {
				level = slog.LevelDebug
			} else {
				p.lastHandshakeErr, p.lastHandshakeWarn = msg, now
			}
		}
		c.log.Log(context.Background(), level, "zmtp: handshake failed", "err", err)
		return
	}
	level, repeated := c.s.acceptedFailure(c.nc.RemoteAddr(), reason, c.cause(err))
	args := []any{"err", err, "reason", reason.String()}
	if repeated > 0 {
		args = append(args, "repeated", repeated)
	}
	c.log.Log(context.Background(), level, "zmtp: handshake failed", args...)
}

// cause is err's text without the connection's addresses, the part that
// stays the same from one connection of a source to the next.
func (c *conn) cause(err error) string {
	msg := err.Error()
	for _, a := range []net.Addr{c.nc.RemoteAddr(), c.nc.LocalAddr()} {
		if a != nil {
			msg = strings.ReplaceAll(msg, a.String(), "")
		}
	}
	return msg
}

// hsFail counts a repeated handshake failure of one source and reason.
type hsFail struct {
	warned time.Time // when it was last logged at Warn
	count  int       // failures since, not logged at Warn
	causes []string  // the causes logged at Warn since, at most maxCauses
}

// maxCauses bounds the distinct causes of one source and reason logged at
// Warn each handshakeWarnEvery: a new cause (another key refused) is worth
// saying, but a peer can vary its errors without end.
const maxCauses = 4

// acceptedFailure says at which level to log an accepted connection's
// handshake failure for reason and cause from addr: Warn the first time,
// and for each new cause up to maxCauses, then once every
// handshakeWarnEvery with the number of failures of that reason from that
// source in between (repeated), Debug otherwise. A source is an address,
// an IPv6 /64 (admission.Source).
func (s *Socket) acceptedFailure(addr net.Addr, reason HandshakeFailure, cause string) (level slog.Level, repeated int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repeatedLocked(addr, reason.String(), cause)
}

// repeatedLocked is acceptedFailure for any kind of failure of a peer from
// addr (a handshake failure's reason, a slow consumer's cut).
func (s *Socket) repeatedLocked(addr net.Addr, kind, cause string) (level slog.Level, repeated int) {
	key := addr.String()
	if src, ok := admission.Source(addr); ok {
		key = src.String()
	} else if h, _, err := net.SplitHostPort(key); err == nil {
		key = h
	}
	key += "\x00" + kind
	now := time.Now()
	if s.hsFails == nil {
		s.hsFails = map[string]*hsFail{}
	}
	f := s.hsFails[key]
	if f == nil {
		if len(s.hsFails) >= maxHandshakeFailures {
			for k, old := range s.hsFails { // forget the stale ones
				if now.Sub(old.warned) >= handshakeWarnEvery {
					delete(s.hsFails, k)
				}
			}
			if len(s.hsFails) >= maxHandshakeFailures {
				return slog.LevelDebug, 0
			}
		}
		s.hsFails[key] = &hsFail{warned: now, causes: []string{cause}}
		return slog.LevelWarn, 0
	}
	if now.Sub(f.warned) < handshakeWarnEvery {
		if len(f.causes) < maxCauses && !slices.Contains(f.causes, cause) {
			f.causes = append(f.causes, cause)
			return slog.LevelWarn, 0
		}
		f.count++
		return slog.LevelDebug, 0
	}
	repeated, f.warned, f.count, f.causes = f.count, now, 0, append(f.causes[:0], cause)
	return slog.LevelWarn, repeated
}

// maxHandshakeFailures bounds the failures a socket remembers.
const maxHandshakeFailures = 1024

// handshakeWarnEvery spaces the Warn records of a failure that repeats at
// every reconnect.
const handshakeWarnEvery = time.Minute

func (c *conn) peerType() string {
	v, _ := c.meta.Get(PropSocketType)
	return string(v)
}

// handshake exchanges greetings in stages (signature first, as libzmq
// expects) and runs the security mechanism.
func (c *conn) handshake() error {
	if err := c.nc.SetDeadline(time.Now().Add(c.s.cfg.HandshakeTimeout)); err != nil {
		return err
	}
	mech := c.s.cfg.Security()
	minor := byte(1)
	if c.s.cfg.zmtp30 {
		minor = 0
	}
	g := AppendGreeting(make([]byte, 0, GreetingSize), Greeting{Major: 3, Minor: minor, Mechanism: mech.Name(), AsServer: mech.AsServer()})
	if _, err := c.nc.Write(g[:signatureSize]); err != nil {
		return fmt.Errorf("zmtp: greeting: %w", err)
	}
	sig, err := c.fr.readFull(signatureSize)
	if err != nil {
		return fmt.Errorf("zmtp: greeting: %w", err)
	}
	if err := checkSignature(sig); err != nil {
		return err
	}
	if _, err := c.nc.Write(g[signatureSize:]); err != nil {
		return fmt.Errorf("zmtp: greeting: %w", err)
	}
	rest, err := c.fr.readFull(GreetingSize - signatureSize)
	if err != nil {
		return fmt.Errorf("zmtp: greeting: %w", err)
	}
	full := append(append(make([]byte, 0, GreetingSize), sig...), rest...)
	if c.peer, err = ParseGreeting(full); err != nil {
		return err
	}
	if c.peer.Mechanism != mech.Name() {
		return fmt.Errorf("%w: peer uses %q, we use %q", ErrMechanism, c.peer.Mechanism, mech.Name())
	}
	c.v31 = minor == 1 && (c.peer.Major > 3 || c.peer.Minor >= 1)
	c.inMech = true
	sess, err := mech.Handshake(handshakeConn{c}, c.s.localMetadata())
	if err != nil {
		return fmt.Errorf("zmtp: %s handshake: %w", mech.Name(), err)
	}
	c.meta, c.cipher, c.userID = sess.Peer, sess.Cipher, sess.UserID
	if t := c.peerType(); !compatible(c.s.typ, SocketType(t)) {
		c.sendErrorNow("Invalid socket type")
		return fmt.Errorf("%w: %s socket cannot talk to %q", ErrSocketType, c.s.typ, t)
	}
	return c.nc.SetDeadline(time.Time{})
}

// sendErrorNow writes an ERROR command directly; only valid while no writer
// goroutine runs.
func (c *conn) sendErrorNow(reason string) {
	body := AppendErrorBody(nil, reason)
	var frame []byte
	if c.cipher != nil {
		frame, _ = c.cipher.Seal(nil, FlagCommand, AppendCommandBody(nil, CmdError, body))
	} else {
		frame = AppendCommand(nil, CmdError, body)
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.nc.Write(frame)
}

type handshakeConn struct{ c *conn }

func (h handshakeConn) Peer() Greeting { return h.c.peer }

func (h handshakeConn) WriteCommand(name string, body []byte) error {
	if _, err := h.c.nc.Write(AppendCommand(nil, name, body)); err != nil {
		return fmt.Errorf("zmtp: write %s: %w", name, err)
	}
	return nil
}

func (h handshakeConn) ReadCommand() (Command, error) {
	flags, body, err := h.c.fr.next(maxHandshakeCommand)
	if err != nil {
		return Command{}, fmt.Errorf("zmtp: handshake: %w", err)
	}
	if flags&FlagCommand == 0 {
		return Command{}, fmt.Errorf("%w: message frame before the handshake completed", ErrUnexpected)
	}
	cmd, err := ParseCommand(body)
	if err != nil && len(body) >= len(libzmqErrorName) && string(body[:len(libzmqErrorName)]) == libzmqErrorName {
		// libzmq 4.3.x spells the ERROR it sends on a ZAP refusal
		// "\x05ERROR" in C, where the hex escape swallows the E: the
		// command arrives as 0x5E "RROR" plus the reason. Read it as the
		// ERROR it means, so the caller gets the peer's reason.
		return Command{Name: CmdError, Body: body[len(libzmqErrorName):]}, nil
	}
	return cmd, err
}

// libzmqErrorName is how libzmq 4.3.x's ERROR command starts on the wire.
const libzmqErrorName = "\x5eRROR"

// beforeRead runs before each read of an attached connection: hand over
// what was parsed and arm the read deadline (armDeadline).
func (c *conn) beforeRead(midMessage bool) {
	if len(c.batch) > 0 {
		c.s.deliver(c, c.batch)
		clear(c.batch)
		c.batch = c.batch[:0]
	}
	if c.stopping.Load() {
		return
	}
	c.armDeadline(midMessage)
}

// armDeadline sets the read deadline: between messages, the liveness one
// (idleTimeout after now, renewed by each read); inside a message, also its
// progress deadline (frameReader.msgDeadline), which reads do not renew. It
// calls the connection only when the deadline changes.
func (c *conn) armDeadline(midMessage bool) {
	var dl time.Time
	if d := c.idleTimeout(); d > 0 {
		dl = time.Now().Add(d)
	}
	c.msgDeadline = false
	if cfg := &c.s.cfg; midMessage && cfg.MinRecvRate > 0 {
		if md := c.fr.msgDeadline(cfg.FrameTimeout, cfg.MinRecvRate); dl.IsZero() || md.Before(dl) {
			dl, c.msgDeadline = md, true
		}
	}
	if !dl.Equal(c.readDeadline) {
		c.readDeadline = dl
		_ = c.nc.SetReadDeadline(dl)
	}
}

// idleTimeout is how long the peer may send nothing, 0 for ever: with
// heartbeats on, HeartbeatTimeout for a 3.1 peer, which answers our PINGs,
// and for an accepted 3.0 peer, which cannot and must send something of
// its own that often (PROTOCOL.md §1); at most the peer's PING TTL.
func (c *conn) idleTimeout() time.Duration {
	var d time.Duration
	if c.s.cfg.HeartbeatInterval > 0 && (c.v31 || c.accepted) {
		d = c.s.cfg.HeartbeatTimeout
	}
	if ttl := time.Duration(c.peerTTL.Load()); ttl > 0 && (d == 0 || ttl < d) {
		d = ttl
	}
	return d
}

func (c *conn) readLoop() error {
	max := c.s.cfg.MaxMsgSize
	for {
		flags, body, err := c.fr.next(max)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !c.stopping.Load() {
				if c.msgDeadline {
					err = fmt.Errorf("%w: %w", ErrTooSlow, err)
				} else {
					err = fmt.Errorf("%w: %w", ErrHeartbeatExpiry, err)
				}
			}
			return err
		}
		if c.cipher != nil {
			// Every frame after the handshake is sealed, whatever its
			// flags: libzmq sends CURVE's MESSAGE as a data frame (no
			// COMMAND bit), spec 26 calls it a command; Open takes both.
			if flags, body, err = c.cipher.Open(body); err != nil {
				return err
			}
		}
		if flags&FlagCommand != 0 {
			if c.msgStart != len(c.slab) {
				return fmt.Errorf("%w: command inside a multipart message", ErrUnexpected)
			}
			if err := c.handleCommand(body); err != nil {
				return err
			}
			continue
		}
		c.msgSize += int64(len(body)) + frameOverhead
		if c.msgSize > max {
			return fmt.Errorf("%w: multipart message over %d bytes", ErrFrameTooLarge, max)
		}
		if c.routerID != nil && c.msgStart == len(c.slab) {
			c.addFrame(c.routerID)
		}
		c.addFrame(body)
		if flags&FlagMore == 0 {
			c.batch = append(c.batch, c.slab[c.msgStart:len(c.slab):len(c.slab)])
			c.msgStart, c.msgSize = len(c.slab), 0
		}
	}
}

// addFrame appends a frame to the message being assembled, moving it to a
// fresh slab when the current one is full (earlier messages keep theirs).
func (c *conn) addFrame(b []byte) {
	if len(c.slab) == cap(c.slab) {
		n := len(c.slab) - c.msgStart
		ns := make([][]byte, n, max(256, 2*n))
		copy(ns, c.slab[c.msgStart:])
		c.slab, c.msgStart = ns, 0
	}
	c.slab = append(c.slab, b)
}

func (c *conn) handleCommand(body []byte) error {
	cmd, err := ParseCommand(body)
	if err != nil {
		return err
	}
	switch cmd.Name {
	case CmdPing:
		ping, err := ParsePing(cmd.Body)
		if err != nil {
			return err
		}
		c.peerTTL.Store(int64(time.Duration(ping.TTL) * 100 * time.Millisecond))
		c.s.queueCommand(c, CmdPong, ping.Context)
	case CmdPong:
		// Any traffic proves liveness; the read deadline was re-armed.
	case CmdSubscribe, CmdCancel:
		c.s.peerSubscription(c, cmd.Body, cmd.Name == CmdSubscribe)
	case CmdError:
		reason, err := ParseError(cmd.Body)
		if err != nil {
			return err
		}
		return &PeerError{Reason: reason}
	default:
		// Unknown commands are ignored, as spec 37 allows for extensions.
		c.log.Debug("zmtp: ignoring unknown command", "name", cmd.Name)
	}
	return nil
}

func (c *conn) stopWriter() { c.stopOnce.Do(func() { close(c.stop) }) }

// writeLoop sends what the pipe has queued, all of it in one write each
// time it wakes, and heartbeats.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	var tick <-chan time.Time
	if c.s.cfg.HeartbeatInterval > 0 && c.v31 {
		t := time.NewTicker(c.s.cfg.HeartbeatInterval)
		defer t.Stop()
		tick = t.C
	}
	var ttl [2]byte
	binary.BigEndian.PutUint16(ttl[:], uint16(min(c.s.cfg.HeartbeatTTL/(100*time.Millisecond), 0xFFFF)))
	// Encrypted frames are sealed into this buffer; the plaintext buffers
	// the writer swaps with the pipe's queues are p.spareOut and p.spareCtrl.
	var sealed []byte
	var lastOut, lastCtrl []byte // just written: handed back as the pipe's spares
	var trim *time.Timer         // armed when it idles holding buffers over maxIdleSpare
	var trimC <-chan time.Time
	defer func() {
		if trim != nil {
			trim.Stop()
		}
	}()
	for {
		select {
		case <-c.wake:
		case <-tick:
			c.s.queueCommand(c, CmdPing, ttl[:])
			continue // queueCommand wakes us
		case <-trimC:
			trimC = nil
			sealed = trimmed(sealed[:0])
			c.s.mu.Lock()
			if p := c.pipe; p != nil && p.c == c {
				p.out, p.ctrl = trimmed(p.out), trimmed(p.ctrl)
				p.spareOut, p.spareCtrl = trimmed(p.spareOut), trimmed(p.spareCtrl)
			}
			c.s.mu.Unlock()
			continue
		case <-c.stop:
			return
		}
		for {
			s := c.s
			s.mu.Lock()
			p := c.pipe
			if p.c != c {
				s.mu.Unlock() // detached or cut: the pipe's queues are no longer ours
				return
			}
			s.settle(p)
			if lastOut != nil {
				p.spareOut, lastOut = lastOut, nil
			}
			if lastCtrl != nil {
				p.spareCtrl, lastCtrl = lastCtrl, nil
			}
			out, ctrl := p.out, p.ctrl
			if len(out) == 0 && len(ctrl) == 0 {
				p.kicked, p.writing = false, false
				big := max(cap(out), cap(ctrl), cap(p.spareOut), cap(p.spareCtrl), cap(sealed)) > maxIdleSpare
				s.wakeSenders()
				s.mu.Unlock()
				if c.closeFlushed.Load() {
					c.nc.Close() // Disconnect: all it queued is written
				}
				if big && trimC == nil {
					// Not re-armed at every idle moment: a peer that
					// keeps it briefly busy (heartbeats) must not keep
					// postponing the trim forever.
					if trim == nil {
						trim = time.NewTimer(idleTrim)
					} else {
						trim.Reset(idleTrim)
					}
					trimC = trim.C
				}
				break
			}
			// Only a queue with something in it is swapped, so that an
			// empty one keeps its buffer where the trim finds it.
			if len(out) > 0 {
				p.out, p.spareOut = p.spareOut[:0], nil
				p.outMsgs = 0
			} else {
				out = nil
			}
			if len(ctrl) > 0 {
				p.ctrl, p.spareCtrl = p.spareCtrl[:0], nil
			} else {
				ctrl = nil
			}
			p.writing = true
			p.inflight = len(out) + len(ctrl)
			s.wakeSenders()
			s.mu.Unlock()

			var err error
			if c.cipher != nil {
				sealed, err = c.seal(sealed[:0], ctrl)
				if err == nil {
					sealed, err = c.seal(sealed, out)
				}
				if err == nil {
					err = c.write(sealed)
				}
				if cap(sealed) > maxSpare {
					sealed = nil
				}
			} else {
				if len(ctrl) > 0 {
					err = c.write(ctrl)
				}
				if err == nil && len(out) > 0 {
					err = c.write(out)
				}
			}
			if err != nil {
				c.writeFailed(p, err)
				return
			}
			lastOut, lastCtrl = recycle(out), recycle(ctrl)
		}
	}
}

// writeChunk is the most written under one WriteTimeout deadline: a
// deadline bounds a stall, not the time a big batch takes to a peer that
// keeps reading.
const writeChunk = 256 << 10

// write writes b, each writeChunk of it with at least WriteTimeout to go
// (if set). The deadline is moved only when less than that is left, to
// half as much again: resetting the connection's timer at every write
// cost the registry's small replies several percent of their CPU.
func (c *conn) write(b []byte) error {
	wt := c.s.cfg.WriteTimeout
	if wt <= 0 {
		_, err := c.nc.Write(b)
		return err
	}
	for len(b) > 0 {
		n := min(len(b), writeChunk)
		if now := time.Now(); c.writeDeadline.Sub(now) < wt {
			c.writeDeadline = now.Add(wt + wt/2)
			if err := c.nc.SetWriteDeadline(c.writeDeadline); err != nil {
				return err
			}
		}
		if _, err := c.nc.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// writeFailed ends the writer after a failed write: a write that timed
// out makes the peer a slow consumer; any failure closes the connection,
// which the reader sees and detaches.
func (c *conn) writeFailed(p *pipe, err error) {
	s := c.s
	var ne net.Error
	timedOut := errors.As(err, &ne) && ne.Timeout() && !c.stopping.Load()
	s.mu.Lock()
	quiet := c.cut || c.stopping.Load() // a cut was logged once already
	if timedOut && p.c == c {
		s.cutLocked(p, "write timeout", p.pendingOf())
		quiet = true
	}
	if !quiet {
		c.log.Info("zmtp: write failed", "err", err)
	}
	p.writing = false
	if p.c == c {
		s.settle(p)
	}
	if s.prune {
		s.prunePipes()
	}
	s.wakeSenders()
	s.mu.Unlock()
	c.nc.Close()
}

// Write buffers are reused from one write to the next, up to maxSpare
// bytes each, because a PUB whose subscriber lags queues up to SendHWM
// messages between two writes and growing that queue afresh for each write
// dominated PUB→SUB (bench/RESULTS.md, "Design notes"). Buffers over
// maxIdleSpare are let go idleTrim after the connection first ran out of
// things to write while holding them (and again after each later burst), so
// a burst does not pin its memory for the connection's life.
const (
	maxSpare     = 128 << 20
	maxIdleSpare = 1 << 20
	idleTrim     = time.Second
)

func recycle(b []byte) []byte {
	if cap(b) > maxSpare {
		return nil
	}
	return b[:0]
}

// trimmed returns b, or nil if b is an empty buffer over maxIdleSpare.
func trimmed(b []byte) []byte {
	if len(b) == 0 && cap(b) > maxIdleSpare {
		return nil
	}
	return b
}

// seal encrypts each plaintext frame of src into dst.
func (c *conn) seal(dst, src []byte) ([]byte, error) {
	for len(src) > 0 {
		flags, size, n, err := ParseFrameHeader(src, int64(len(src)))
		if err != nil {
			return dst, err
		}
		if dst, err = c.cipher.Seal(dst, flags&(FlagMore|FlagCommand), src[n:n+int(size)]); err != nil {
			return dst, err
		}
		src = src[n+int(size):]
	}
	return dst, nil
}

// shutdown ends the connection gracefully: the writer stops (Close has
// already waited for the linger flush), our side is half-closed so the peer
// reads everything we sent and then EOF, and the reader gets a short
// deadline for the peer to close in turn.
func (c *conn) shutdown(flushed bool) {
	c.stopping.Store(true)
	if !c.ready.Load() {
		c.nc.Close() // still handshaking: nothing of ours to flush
		return
	}
	if !flushed {
		_ = c.nc.SetWriteDeadline(time.Now())
	}
	c.stopWriter()
	<-c.writerDone
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
	} else {
		c.nc.Close()
	}
}
