package resume

import (
	"net"
	"sync"
	"time"
)

// Listener wraps a net.Listener for http.Server.Serve.
type Listener struct {
	net.Listener
	idle     time.Duration
	accepted chan accepted
	back     chan net.Conn
	done     chan struct{}
	once     sync.Once

	mu     sync.Mutex
	idling map[net.Conn]struct{} // resumed, waiting for their next request
	closed bool
}

type accepted struct {
	c   net.Conn
	err error
}

// New wraps ln; idle bounds how long a resumed connection may wait for
// its next request (the http.Server's IdleTimeout).
func New(ln net.Listener, idle time.Duration) *Listener {
	l := &Listener{Listener: ln, idle: idle, accepted: make(chan accepted), back: make(chan net.Conn, 256), done: make(chan struct{}),
		idling: map[net.Conn]struct{}{}}
	go l.acceptLoop()
	return l
}

func (l *Listener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
	}
}

// Accept returns the next new or resumed connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.back:
		return c, nil
	default:
	}
	select {
	case c := <-l.back:
		return c, nil
	case a := <-l.accepted:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the resumed connections still waiting
// for a request; those resumed from then on are closed.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.mu.Lock()
		l.closed = true
		for c := range l.idling {
			c.Close()
		}
		l.mu.Unlock()
	})
	return l.Listener.Close()
}

// Resume hands c back, after its answer was written: it waits for c's next
// request (at most the idle time), then Accept returns it with the bytes
// already read in front. A client that closes, or stays silent, costs
// only that goroutine until then.
func (l *Listener) Resume(c net.Conn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.idling[c] = struct{}{}
	l.mu.Unlock()
	go func() {
		var b [1]byte
		c.SetDeadline(time.Now().Add(l.idle)) // both: the parker's write deadline goes too
		n, err := c.Read(b[:])
		l.mu.Lock()
		delete(l.idling, c)
		l.mu.Unlock()
		if n == 0 || err != nil {
			c.Close()
			return
		}
		c.SetDeadline(time.Time{})
		select {
		case l.back <- &PrefixConn{Conn: c, Prefix: []byte{b[0]}}:
		case <-l.done:
			c.Close()
		}
	}()
}

// PrefixConn is a connection whose first bytes were already read: Read
// returns Prefix first.
type PrefixConn struct {
	net.Conn
	Prefix []byte
}

func (p *PrefixConn) Read(b []byte) (int, error) {
	if len(p.Prefix) > 0 {
		n := copy(b, p.Prefix)
		p.Prefix = p.Prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
