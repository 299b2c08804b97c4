package inproc

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Addr is the address of an inproc endpoint: a listener's name, or for the
// dialling end of a connection the name followed by "#" and a number.
type Addr string

// Network returns "inproc".
func (Addr) Network() string { return "inproc" }

func (a Addr) String() string { return string(a) }

// QueueSize is how many bytes each direction of a connection holds before
// Write blocks: enough for a writer to hand over a batch without waiting
// for each read, small enough that an idle connection costs little (a
// queue only grows to what was actually left unread).
const QueueSize = 256 << 10

// maxBacklog bounds the connections waiting for Accept on one listener; a
// Dial beyond it is refused, as a full SYN queue would make it fail.
const maxBacklog = 4096

var (
	registryMu sync.Mutex
	registry   = map[string]*Listener{}
	dialCount  atomic.Uint64
)

// Listener accepts the connections dialled to its name. It is a
// net.Listener.
type Listener struct {
	name  Addr
	ready chan struct{} // cap 1: the backlog has something
	done  chan struct{} // closed by Close

	mu      sync.Mutex
	closed  bool
	backlog []net.Conn
}

var _ net.Listener = (*Listener)(nil)

// Listen starts listening on name, which must not be empty nor already
// listened on in this process.
func Listen(name string) (*Listener, error) {
	if name == "" {
		return nil, &net.OpError{Op: "listen", Net: "inproc", Err: fmt.Errorf("empty name")}
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, ok := registry[name]; ok {
		return nil, &net.OpError{Op: "listen", Net: "inproc", Addr: Addr(name), Err: syscall.EADDRINUSE}
	}
	l := &Listener{name: Addr(name), ready: make(chan struct{}, 1), done: make(chan struct{})}
	registry[name] = l
	return l, nil
}

// Accept waits for the next connection dialled to the listener's name.
// After Close it returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, &net.OpError{Op: "accept", Net: "inproc", Addr: l.name, Err: net.ErrClosed}
		}
		if len(l.backlog) > 0 {
			c := l.backlog[0]
			l.backlog[0] = nil
			l.backlog = l.backlog[1:]
			if len(l.backlog) == 0 {
				l.backlog = nil // let a burst's array go
			}
			l.mu.Unlock()
			return c, nil
		}
		l.mu.Unlock()
		select {
		case <-l.ready:
		case <-l.done:
		}
	}
}

// Close stops listening: the name is free again, Accept fails and the
// connections still waiting for Accept are closed.
func (l *Listener) Close() error {
	registryMu.Lock()
	if registry[string(l.name)] == l {
		delete(registry, string(l.name))
	}
	registryMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	waiting := l.backlog
	l.backlog = nil
	l.mu.Unlock()
	for _, c := range waiting {
		c.Close()
	}
	return nil
}

// Addr returns the listener's name.
func (l *Listener) Addr() net.Addr { return l.name }

// Dial connects to the listener called name. It fails with an error
// wrapping syscall.ECONNREFUSED when nobody listens there (or its backlog
// is full), and with ctx's error when ctx is done.
func Dial(ctx context.Context, name string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "inproc", Addr: Addr(name), Err: err}
	}
	registryMu.Lock()
	l := registry[name]
	registryMu.Unlock()
	if l == nil {
		return nil, &net.OpError{Op: "dial", Net: "inproc", Addr: Addr(name), Err: syscall.ECONNREFUSED}
	}
	local := Addr(fmt.Sprintf("%s#%d", name, dialCount.Add(1)))
	client, server := newPair(local, l.name)
	l.mu.Lock()
	if l.closed || len(l.backlog) >= maxBacklog {
		l.mu.Unlock()
		return nil, &net.OpError{Op: "dial", Net: "inproc", Addr: Addr(name), Err: syscall.ECONNREFUSED}
	}
	l.backlog = append(l.backlog, server)
	l.mu.Unlock()
	signal(l.ready)
	return client, nil
}

// Pipe returns the two ends of a connection that no listener is involved
// in; unlike net.Pipe's, its writes are buffered (up to QueueSize) and it
// can half-close.
func Pipe() (*Conn, *Conn) {
	return newPair("pipe#a", "pipe#b")
}

func newPair(a, b Addr) (*Conn, *Conn) {
	ab, ba := newQueue(), newQueue()
	ca := &Conn{rx: ba, tx: ab, local: a, remote: b, closed: make(chan struct{})}
	cb := &Conn{rx: ab, tx: ba, local: b, remote: a, closed: make(chan struct{})}
	ca.rd.init()
	ca.wd.init()
	cb.rd.init()
	cb.wd.init()
	return ca, cb
}

// queue is one direction of a connection.
type queue struct {
	readable chan struct{} // cap 1: data or EOF arrived
	writable chan struct{} // cap 1: room appeared, or the reader went away

	mu     sync.Mutex
	buf    []byte // unread bytes are buf[r:]
	r      int
	eof    bool // the writer closed its side: EOF once drained
	noRead bool // the reader closed: writes fail
}

func newQueue() *queue {
	return &queue{readable: make(chan struct{}, 1), writable: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Conn is one end of an in-memory connection. It is a net.Conn; its
// methods are safe for concurrent use.
type Conn struct {
	rx, tx        *queue
	local, remote Addr
	rd, wd        deadline
	closeOnce     sync.Once
	closed        chan struct{}
}

var _ net.Conn = (*Conn)(nil)

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "inproc", Source: c.local, Addr: c.remote, Err: err}
}

// Read reads what the peer wrote; io.EOF once the peer closed or
// half-closed and everything before was read.
func (c *Conn) Read(b []byte) (int, error) {
	q := c.rx
	for {
		select {
		case <-c.closed:
			return 0, c.opError("read", net.ErrClosed)
		case <-c.rd.wait():
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		default:
		}
		q.mu.Lock()
		if unread := len(q.buf) - q.r; unread > 0 {
			n := copy(b, q.buf[q.r:])
			q.r += n
			left := len(q.buf) - q.r
			if left == 0 {
				q.buf, q.r = q.buf[:0], 0
			}
			q.mu.Unlock()
			signal(q.writable)
			if left > 0 {
				signal(q.readable) // for another reader
			}
			return n, nil
		}
		eof := q.eof
		q.mu.Unlock()
		if eof {
			signal(q.readable)
			return 0, io.EOF
		}
		if len(b) == 0 {
			return 0, nil
		}
		select {
		case <-q.readable:
		case <-c.closed:
		case <-c.rd.wait():
		}
	}
}

// Write copies b into the peer's queue, waiting while it is full. It fails
// with net.ErrClosed after Close or CloseWrite, with syscall.EPIPE once the
// peer closed, and at the write deadline; n says how much went in.
func (c *Conn) Write(b []byte) (int, error) {
	q := c.tx
	n := 0
	for {
		select {
		case <-c.closed:
			return n, c.opError("write", net.ErrClosed)
		case <-c.wd.wait():
			return n, c.opError("write", os.ErrDeadlineExceeded)
		default:
		}
		q.mu.Lock()
		if q.eof {
			q.mu.Unlock()
			return n, c.opError("write", net.ErrClosed)
		}
		if q.noRead {
			q.mu.Unlock()
			return n, c.opError("write", syscall.EPIPE)
		}
		unread := len(q.buf) - q.r
		if room := QueueSize - unread; room > 0 {
			m := min(room, len(b)-n)
			if q.r > 0 && cap(q.buf)-len(q.buf) < m {
				// Slide the unread bytes down rather than grow.
				copy(q.buf, q.buf[q.r:])
				q.buf, q.r = q.buf[:unread], 0
			}
			q.buf = append(q.buf, b[n:n+m]...)
			n += m
			q.mu.Unlock()
			signal(q.readable)
			if n == len(b) {
				return n, nil
			}
			continue
		}
		q.mu.Unlock()
		select {
		case <-q.writable:
		case <-c.closed:
		case <-c.wd.wait():
		}
	}
}

// CloseWrite half-closes the connection: the peer reads what was written,
// then io.EOF; this end can still read.
func (c *Conn) CloseWrite() error {
	q := c.tx
	q.mu.Lock()
	q.eof = true
	q.mu.Unlock()
	signal(q.readable)
	return nil
}

// Close closes both directions. What the peer wrote and this end did not
// read is dropped.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
	})
	if !first {
		return nil
	}
	c.CloseWrite()
	q := c.rx
	q.mu.Lock()
	q.noRead = true
	q.buf, q.r = nil, 0
	q.mu.Unlock()
	signal(q.writable)
	c.rd.stop()
	c.wd.stop()
	return nil
}

// LocalAddr returns this end's address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline sets the deadline of Read calls, pending ones included;
// the zero time means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return nil
}

// SetWriteDeadline sets the deadline of Write calls likewise.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wd.set(t)
	return nil
}

// deadline is a channel closed when a settable time passes. It keeps one
// timer for its life, so that re-arming it at every read (heartbeats do)
// allocates nothing.
type deadline struct {
	mu      sync.Mutex
	at      time.Time
	timer   *time.Timer
	expired chan struct{} // closed once at has passed
}

func (d *deadline) init() { d.expired = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at = t
	if isClosed(d.expired) {
		d.expired = make(chan struct{})
	}
	if t.IsZero() {
		if d.timer != nil {
			d.timer.Stop()
		}
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		close(d.expired)
		return
	}
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, d.fire)
	} else {
		d.timer.Reset(wait)
	}
}

// fire closes expired if the deadline has really passed: a timer that was
// already firing when set moved the deadline must not end the new one.
func (d *deadline) fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.at.IsZero() && !time.Now().Before(d.at) && !isClosed(d.expired) {
		close(d.expired)
	}
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.expired
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
	}
	return false
}
