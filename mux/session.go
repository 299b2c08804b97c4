package mux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// Session multiplexes streams over one connection. It wraps a
// *yamux.Session (one reader and one writer goroutine) and adds two of its
// own: a control writer for pings, pongs and resets, and a liveness
// monitor. A Session is a net.Listener whose Accept returns the streams the
// peer opens.
type Session struct {
	cfg    Config
	log    *slog.Logger
	client bool
	fc     *frameConn
	ys     *yamux.Session
	wg     sync.WaitGroup

	openMu sync.Mutex // serialises OpenStream, so that the next stream id is known
	nextID uint32     // guarded by openMu

	mu       sync.Mutex
	streams  map[uint32]*Stream // every stream counted against MaxStreams
	pending  int                // streams the peer opened that Accept has not returned
	cause    error              // why the session ended (first reason noted)
	closeErr error              // what stream and session calls return once closed
	closed   bool

	orphans atomic.Int32 // streams closed here whose peer may still send
}

var _ net.Listener = (*Session)(nil)

// Client starts the client side of a session over conn; the other end must
// call Server. cfg may be nil for defaults. It is a pointer, unlike the
// value other constructors take, to keep yamux's Client(conn, *Config)
// shape (nil for defaults) that callers ported from yamux rely on; it is
// copied, never kept. The session owns conn from now on and closes it when
// it ends.
func Client(conn net.Conn, cfg *Config) (*Session, error) {
	return newSession(conn, cfg, true)
}

// Server starts the server side of a session over conn; see Client.
func Server(conn net.Conn, cfg *Config) (*Session, error) {
	return newSession(conn, cfg, false)
}

func newSession(conn net.Conn, cfg *Config, client bool) (*Session, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	var err error
	s := &Session{
		cfg:     c,
		log:     c.Logger,
		client:  client,
		streams: make(map[uint32]*Stream),
		nextID:  2,
	}
	if client {
		s.nextID = 1
	}
	s.fc = newFrameConn(conn, s)
	ycfg := &yamux.Config{
		AcceptBacklog: c.AcceptBacklog,
		// Keepalive is ours: yamux's pings wait behind data in its send
		// queue and fail a busy link.
		EnableKeepAlive:        false,
		KeepAliveInterval:      c.KeepAliveInterval,
		ConnectionWriteTimeout: c.WriteTimeout,
		MaxStreamWindowSize:    c.StreamWindow,
		// Open and close timeouts are ours too: yamux's open timeout
		// costs a goroutine per open, and its close timeout would reset a
		// half-closed stream still receiving a long reply.
		StreamOpenTimeout:  0,
		StreamCloseTimeout: 0,
		Logger:             yamuxLogger{c.Logger},
	}
	if client {
		s.ys, err = yamux.Client(s.fc, ycfg)
	} else {
		s.ys, err = yamux.Server(s.fc, ycfg)
	}
	if err != nil {
		return nil, fmt.Errorf("mux: %w", err)
	}
	s.wg.Add(2)
	go s.control()
	go s.monitor()
	return s, nil
}

// OpenStream opens a stream to the peer. It does not wait for the peer to
// accept it: data may be written at once (yamux sends up to 256 KiB before
// the acknowledgement). It fails with ErrTooManyStreams at MaxStreams, and
// blocks only while AcceptBacklog of our streams await the peer's answer.
func (s *Session) OpenStream() (*Stream, error) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, s.closeErr
	}
	if len(s.streams) >= s.cfg.MaxStreams {
		s.mu.Unlock()
		return nil, ErrTooManyStreams
	}
	// Register under the id yamux is about to use, so that the peer's
	// answer finds the stream even if it arrives before OpenStream returns.
	st := newStream(s, s.nextID)
	s.streams[st.id] = st
	s.mu.Unlock()

	ys, err := s.ys.OpenStream()
	if err != nil {
		s.release(st)
		return nil, s.mapErr(err)
	}
	s.nextID = ys.StreamID() + 2
	if ys.StreamID() != st.id { // cannot happen while openMu serialises opens
		s.mu.Lock()
		delete(s.streams, st.id)
		st.id = ys.StreamID()
		s.streams[st.id] = st
		s.mu.Unlock()
		s.log.Error("mux: stream id out of step with yamux", "id", st.id)
	}
	st.ys = ys
	st.mu.Lock()
	if !st.acked && !st.rstRecv {
		st.openTimer = time.AfterFunc(s.cfg.OpenTimeout, func() {
			s.fail(fmt.Errorf("%w: stream %d after %v", ErrOpenTimeout, st.id, s.cfg.OpenTimeout))
		})
	}
	st.mu.Unlock()
	return st, nil
}

// Open is OpenStream returning a net.Conn.
func (s *Session) Open() (net.Conn, error) {
	st, err := s.OpenStream()
	if err != nil {
		return nil, err
	}
	return st, nil
}

// AcceptStream waits for the next stream the peer opens.
func (s *Session) AcceptStream() (*Stream, error) {
	return s.AcceptStreamContext(context.Background())
}

// AcceptStreamContext waits for the next stream the peer opens, or ctx.
func (s *Session) AcceptStreamContext(ctx context.Context) (*Stream, error) {
	ys, err := s.ys.AcceptStreamWithContext(ctx)
	if err != nil {
		if ctx.Err() != nil && !s.ys.IsClosed() {
			return nil, ctx.Err()
		}
		return nil, s.mapErr(err)
	}
	s.mu.Lock()
	st := s.streams[ys.StreamID()]
	if st == nil || s.closed {
		s.mu.Unlock()
		return nil, s.mapErr(yamux.ErrSessionShutdown)
	}
	s.pending--
	st.ys = ys
	s.mu.Unlock()
	return st, nil
}

// Accept is AcceptStream returning a net.Conn, for net.Listener.
func (s *Session) Accept() (net.Conn, error) {
	st, err := s.AcceptStream()
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Addr is the local address of the connection, for net.Listener.
func (s *Session) Addr() net.Addr { return s.fc.LocalAddr() }

// LocalAddr is the local address of the connection.
func (s *Session) LocalAddr() net.Addr { return s.fc.LocalAddr() }

// RemoteAddr is the peer's address of the connection.
func (s *Session) RemoteAddr() net.Addr { return s.fc.RemoteAddr() }

// NumStreams is how many streams count against MaxStreams now.
func (s *Session) NumStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// Ping measures the round trip to the peer with a yamux ping. It waits
// behind queued data; liveness does not depend on it.
func (s *Session) Ping() (time.Duration, error) {
	d, err := s.ys.Ping()
	if err != nil {
		return 0, s.mapErr(err)
	}
	return d, nil
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.ys.CloseChan() }

// Err is nil while the session runs and, once it has ended, an error
// wrapping ErrSessionClosed and the cause.
func (s *Session) Err() error {
	if !s.ys.IsClosed() {
		return nil
	}
	return s.mapErr(yamux.ErrSessionShutdown)
}

// Close ends the session: the connection is closed, every stream fails
// with ErrSessionClosed, and Close returns once the session's goroutines
// have exited.
func (s *Session) Close() error {
	s.fail(ErrSessionClosed)
	s.wg.Wait()
	return nil
}

// fail ends the session for cause without waiting for its goroutines.
func (s *Session) fail(cause error) {
	s.noteCause(cause)
	if !errors.Is(cause, ErrSessionClosed) {
		s.log.Warn("mux: session failed", "remote", s.fc.RemoteAddr(), "err", cause)
	}
	_ = s.ys.Close()
}

// noteCause records why the session ends; the first reason wins.
func (s *Session) noteCause(err error) {
	s.mu.Lock()
	if s.cause == nil {
		s.cause = err
	}
	s.mu.Unlock()
}

// mapErr turns a yamux error into ours: once the session is closed, every
// failure is its close error.
func (s *Session) mapErr(err error) error {
	if !s.ys.IsClosed() {
		switch {
		case errors.Is(err, yamux.ErrRemoteGoAway):
			return fmt.Errorf("%w: %w", ErrSessionClosed, err)
		case errors.Is(err, yamux.ErrConnectionWriteTimeout):
			return fmt.Errorf("mux: %w", err)
		}
		return err
	}
	s.markClosed()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeErr
}

// markClosed settles the close error and drops every stream. It runs once,
// whoever first sees the session closed.
func (s *Session) markClosed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	switch c := s.cause; {
	case c == nil:
		s.closeErr = ErrSessionClosed
	case errors.Is(c, ErrSessionClosed):
		s.closeErr = c
	default:
		s.closeErr = fmt.Errorf("%w: %w", ErrSessionClosed, c)
	}
	for id, st := range s.streams {
		st.stopOpenTimer()
		delete(s.streams, id)
	}
	s.pending = 0
	s.orphans.Store(0)
	s.log.Debug("mux: session closed", "remote", s.fc.RemoteAddr(), "err", s.closeErr)
}

// admit decides, for a SYN from the peer, whether the new stream fits
// within MaxStreams and AcceptBacklog. Called by the reader before yamux
// sees the frame; an error is a protocol violation.
func (s *Session) admit(id uint32) (bool, error) {
	if (id%2 == 1) == s.client {
		return false, fmt.Errorf("peer opened stream %d from our side's id space", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.streams[id]; dup {
		return false, fmt.Errorf("peer reopened stream %d", id)
	}
	if s.closed || len(s.streams) >= s.cfg.MaxStreams || s.pending >= s.cfg.AcceptBacklog {
		s.log.Debug("mux: refused stream", "id", id, "streams", len(s.streams), "backlog", s.pending)
		return false, nil
	}
	s.streams[id] = newStream(s, id)
	s.pending++
	return true, nil
}

// peerFlags records ACK, FIN and RST seen on a stream's frame, before yamux
// acts on them.
func (s *Session) peerFlags(id uint32, flags uint16) {
	s.mu.Lock()
	st := s.streams[id]
	s.mu.Unlock()
	if st == nil {
		return
	}
	st.mu.Lock()
	if flags&(flagACK|flagRST) != 0 {
		st.acked = flags&flagACK != 0
		if st.openTimer != nil {
			st.openTimer.Stop()
			st.openTimer = nil
		}
	}
	if flags&flagFIN != 0 {
		st.finRecv = true
	}
	if flags&flagRST != 0 {
		st.rstRecv = true
	}
	done := st.userClosed && (st.rstRecv || st.finRecv && st.finSent)
	st.mu.Unlock()
	if done {
		s.release(st)
	}
}

// orphanData resets a stream closed here that receives data: the bytes
// have no reader, as TCP answers data for a closed socket with RST.
func (s *Session) orphanData(id uint32) {
	s.mu.Lock()
	st := s.streams[id]
	s.mu.Unlock()
	if st != nil && st.isOrphan() {
		_ = st.Reset()
	}
}

// release stops counting st against MaxStreams.
func (s *Session) release(st *Stream) {
	st.stopOpenTimer()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[st.id] != st {
		return
	}
	delete(s.streams, st.id)
	if st.orphan {
		st.orphan = false
		s.orphans.Add(-1)
	}
}

// setOrphan marks st as closed here while the peer may still send.
func (s *Session) setOrphan(st *Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[st.id] == st && !st.orphan {
		st.orphan = true
		s.orphans.Add(1)
	}
}

// resetStream sends a RST for id to the peer and makes our yamux drop the
// stream too.
func (s *Session) resetStream(id uint32) {
	s.fc.queueRST(id)
	s.fc.injectRST(id)
}

// control writes queued control frames whenever yamux's send goroutine is
// not writing, and settles the session once yamux has shut down.
func (s *Session) control() {
	defer s.wg.Done()
	defer s.markClosed()
	for {
		select {
		case <-s.fc.kick:
			if err := s.fc.flushCtrl(); err != nil {
				s.fail(fmt.Errorf("writing connection: %w", err))
			} else if s.fc.overrun() {
				s.fail(fmt.Errorf("%w: peer makes us queue control frames faster than it reads", ErrProtocol))
			}
		case <-s.ys.CloseChan():
			return
		}
	}
}

// monitor sends a ping when nothing has been read or nothing written for
// KeepAliveInterval, and fails the session when nothing has been read for
// LivenessTimeout. It never waits for a ping's answer: any byte read from
// the peer shows it is alive.
func (s *Session) monitor() {
	defer s.wg.Done()
	interval, timeout := s.cfg.KeepAliveInterval, s.cfg.LivenessTimeout
	lastPing := -interval
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.ys.CloseChan():
			return
		}
		now := s.fc.now()
		readIdle := now - time.Duration(s.fc.lastRead.Load())
		writeIdle := now - time.Duration(s.fc.lastWrite.Load())
		if readIdle >= timeout {
			s.fail(fmt.Errorf("%w: nothing read for %v", ErrPeerTimeout, readIdle.Round(time.Millisecond)))
			return
		}
		idle := readIdle >= interval || writeIdle >= interval
		if idle && now-lastPing >= interval {
			s.fc.queuePing()
			lastPing = now
		}
		// Sleep until the next moment something can change.
		wait := timeout - readIdle
		if d := interval - readIdle; d > 0 && d < wait {
			wait = d
		}
		if d := interval - writeIdle; d > 0 && d < wait {
			wait = d
		}
		if d := lastPing + interval - now; idle && d > 0 && d < wait {
			wait = d
		}
		t.Reset(max(wait, time.Millisecond))
	}
}

// yamuxLogger hands yamux's log lines to slog: "[ERR]" at Warn, the rest
// at Debug (a peer can make yamux warn at will).
type yamuxLogger struct{ l *slog.Logger }

func (y yamuxLogger) Print(v ...any)   { y.log(fmt.Sprint(v...)) }
func (y yamuxLogger) Println(v ...any) { y.log(fmt.Sprintln(v...)) }
func (y yamuxLogger) Printf(format string, v ...any) {
	level := slog.LevelDebug
	if strings.HasPrefix(format, "[ERR]") {
		level = slog.LevelWarn
	}
	if y.l.Enabled(context.Background(), level) {
		y.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}

func (y yamuxLogger) log(msg string) {
	level := slog.LevelDebug
	if strings.HasPrefix(msg, "[ERR]") {
		level = slog.LevelWarn
	}
	y.l.Log(context.Background(), level, strings.TrimSpace(msg))
}
