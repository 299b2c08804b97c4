package mux

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// Stream is one bidirectional byte stream of a session, a net.Conn with
// TCP's half-close (CloseWrite) and reset (Reset).
//
// Its errors say what happened: io.EOF only when the peer closed its side
// (CloseWrite or Close), ErrStreamReset when the peer reset it, an error
// wrapping ErrSessionClosed when the session ended (a lost link is never
// mistaken for EOF), os.ErrDeadlineExceeded after a deadline, and
// net.ErrClosed after Close or Reset here.
type Stream struct {
	sess *Session
	id   uint32
	ys   *yamux.Stream // set before the stream is handed out

	wmu    sync.Mutex  // keeps one Write's frames together
	closed atomic.Bool // Close or Reset called here

	mu         sync.Mutex
	finSent    bool // we sent FIN (CloseWrite or Close)
	finRecv    bool // the peer sent FIN
	rstRecv    bool // the peer sent RST
	reset      bool // we reset it
	userClosed bool // Close or Reset called here
	acked      bool // the peer acknowledged our open
	openTimer  *time.Timer

	orphan bool // guarded by sess.mu: closed here, the peer may still send
}

var _ net.Conn = (*Stream)(nil)

func newStream(s *Session, id uint32) *Stream {
	return &Stream{sess: s, id: id}
}

// StreamID is the stream's yamux id: odd when the client side opened it.
func (st *Stream) StreamID() uint32 { return st.id }

// Read reads data the peer sent.
func (st *Stream) Read(p []byte) (int, error) {
	if st.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := st.ys.Read(p)
	if err != nil {
		err = st.mapErr(err)
	}
	return n, err
}

// Write writes p as data frames of at most 256 KiB, blocking while the
// peer's window is full.
func (st *Stream) Write(p []byte) (int, error) {
	if st.closed.Load() {
		return 0, net.ErrClosed
	}
	st.wmu.Lock()
	defer st.wmu.Unlock()
	total := 0
	for total < len(p) {
		chunk := p[total:]
		if len(chunk) > maxFrameData {
			chunk = chunk[:maxFrameData]
		}
		n, err := st.ys.Write(chunk)
		total += n
		if err != nil {
			return total, st.mapErr(err)
		}
	}
	return total, nil
}

// CloseWrite half-closes the stream: the peer reads EOF after the data
// written so far, and may go on sending; Read goes on working.
func (st *Stream) CloseWrite() error {
	if st.closed.Load() {
		return net.ErrClosed
	}
	st.mu.Lock()
	if st.finSent || st.reset {
		st.mu.Unlock()
		return nil
	}
	st.finSent = true
	st.mu.Unlock()
	if err := st.ys.Close(); err != nil {
		return st.mapErr(err)
	}
	return nil
}

// Close closes the stream both ways, like closing a TCP socket: the peer
// reads EOF after the data written so far. If data from the peer is waiting
// unread, or arrives later, the stream is reset instead (as TCP answers
// with RST), so that the peer's writes fail rather than block forever.
// Blocked Read and Write calls return net.ErrClosed.
func (st *Stream) Close() error {
	if st.closed.Swap(true) {
		return nil
	}
	st.mu.Lock()
	st.userClosed = true
	needFIN := !st.finSent && !st.reset
	st.finSent = true
	peerDone := st.rstRecv || st.finRecv || st.reset
	st.mu.Unlock()

	st.wakeBlocked()
	if needFIN {
		_ = st.ys.Close() // FIN; yamux drops the stream if the peer sent FIN already
	}
	if peerDone {
		st.sess.release(st)
		return nil
	}
	// The peer may still send. Watch for its data from now on (the reader
	// resets the stream when some arrives), and look for data already
	// buffered. A FIN or RST that arrives instead releases the stream.
	st.sess.setOrphan(st)
	var b [1]byte
	if n, _ := st.ys.Read(b[:]); n > 0 {
		return st.Reset()
	}
	st.mu.Lock()
	peerDone = st.rstRecv || st.finRecv
	st.mu.Unlock()
	if peerDone {
		st.sess.release(st)
	}
	return nil
}

// Reset aborts the stream both ways, like closing a TCP socket with
// SO_LINGER 0: the peer's Read and Write fail with ErrStreamReset, data in
// flight is dropped. It never blocks.
func (st *Stream) Reset() error {
	st.closed.Store(true)
	st.mu.Lock()
	if st.reset {
		st.mu.Unlock()
		return nil
	}
	st.reset = true
	st.userClosed = true
	// yamux still holds the stream unless the peer reset it or both sides
	// sent FIN.
	live := !st.rstRecv && !(st.finRecv && st.finSent)
	st.mu.Unlock()

	st.wakeBlocked()
	if live {
		st.sess.resetStream(st.id)
	}
	st.sess.release(st)
	return nil
}

// wakeBlocked makes Read and Write calls blocked in yamux return now (a
// deadline in the past is the only way yamux offers).
func (st *Stream) wakeBlocked() {
	_ = st.ys.SetDeadline(time.Unix(1, 0))
}

func (st *Stream) isOrphan() bool {
	st.sess.mu.Lock()
	defer st.sess.mu.Unlock()
	return st.orphan
}

func (st *Stream) stopOpenTimer() {
	st.mu.Lock()
	if st.openTimer != nil {
		st.openTimer.Stop()
		st.openTimer = nil
	}
	st.mu.Unlock()
}

// LocalAddr is the session connection's local address.
func (st *Stream) LocalAddr() net.Addr { return st.sess.LocalAddr() }

// RemoteAddr is the session connection's remote address.
func (st *Stream) RemoteAddr() net.Addr { return st.sess.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (st *Stream) SetDeadline(t time.Time) error {
	if st.closed.Load() {
		return net.ErrClosed
	}
	return st.ys.SetDeadline(t)
}

// SetReadDeadline sets the deadline for blocked and future Read calls.
func (st *Stream) SetReadDeadline(t time.Time) error {
	if st.closed.Load() {
		return net.ErrClosed
	}
	return st.ys.SetReadDeadline(t)
}

// SetWriteDeadline sets the deadline for blocked and future Write calls.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	if st.closed.Load() {
		return net.ErrClosed
	}
	return st.ys.SetWriteDeadline(t)
}

// mapErr turns what yamux returned into what the stream means.
func (st *Stream) mapErr(err error) error {
	if st.closed.Load() {
		return net.ErrClosed
	}
	st.mu.Lock()
	finRecv, rstRecv := st.finRecv, st.rstRecv
	st.mu.Unlock()
	switch {
	case err == io.EOF:
		// yamux also reports EOF for every stream of a session that
		// ended; only a FIN from the peer is a real end of stream.
		if finRecv || !st.sess.ys.IsClosed() {
			return io.EOF
		}
		return st.sess.mapErr(err)
	case errors.Is(err, yamux.ErrConnectionReset):
		if rstRecv || !st.sess.ys.IsClosed() {
			return ErrStreamReset
		}
		return st.sess.mapErr(err)
	case errors.Is(err, yamux.ErrTimeout):
		return os.ErrDeadlineExceeded
	case errors.Is(err, yamux.ErrStreamClosed):
		if st.sess.ys.IsClosed() {
			return st.sess.mapErr(err)
		}
		return net.ErrClosed // Write after CloseWrite
	}
	return st.sess.mapErr(err)
}
