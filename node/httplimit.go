package node

import (
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/internal/admission"
	"github.com/hydra-net/hydra/internal/repeatlog"
)

// msgHTTPRefused is the log message of a connection past
// HTTPConfig.MaxConnsPerClient, said once with a count (internal/repeatlog).
const msgHTTPRefused = "http: connection refused"

// connLimitListener caps the connections one client address (IPv4
// address, IPv6 /64) holds open, as Consul's http_max_conns_per_client
// does: a connection past the cap is answered 429 Too Many Requests and
// closed, before net/http sees it. A connection counts from Accept to
// Close, so blocking queries parked on a hijacked connection count too.
type connLimitListener struct {
	net.Listener
	lim     *admission.Limiter
	answer  []byte        // the 429 response
	log     *slog.Logger  // refusals, once per cause with a count
	linger  chan struct{} // refused connections lingering for their 429 to be read
	stall   time.Duration // HTTPConfig.WriteStall
	refused atomic.Int64

	mu        sync.Mutex
	lingering map[net.Conn]struct{} // closed by Close, which waits for wg
	closed    bool
	wg        sync.WaitGroup
}

// refusalLinger bounds how long a refused connection is kept so that the
// client reads its 429 before the close (closing with its request unread
// would reset the connection and lose the answer); at most maxLingering
// are kept at once, the others closed after a brief write.
const (
	refusalLinger = time.Second
	maxLingering  = 64
)

func newConnLimitListener(ln net.Listener, perClient int, stall time.Duration, log *slog.Logger) *connLimitListener {
	body := "too many connections from your address (at most " + strconv.Itoa(perClient) + ")\n"
	answer := "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
	return &connLimitListener{
		Listener: ln,
		lim:      admission.New(admission.Config{PerSource: perClient}),
		answer:   []byte(answer),
		log:      slog.New(repeatlog.Handler(log.Handler(), msgHTTPRefused)),
		linger:   make(chan struct{}, maxLingering),
		stall:    stall,

		lingering: map[net.Conn]struct{}{},
	}
}

// Accept returns the next connection within its client's cap.
func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		slot, err := l.lim.Acquire(c.RemoteAddr(), nil)
		if err != nil {
			l.refuse(c, err)
			continue
		}
		return &limitedConn{Conn: c, slot: slot, stall: l.stall}, nil
	}
}

// refuse answers 429 and closes, without blocking the accept loop.
func (l *connLimitListener) refuse(c net.Conn, err error) {
	l.refused.Add(1)
	src := c.RemoteAddr().String()
	if p, ok := admission.Source(c.RemoteAddr()); ok {
		src = p.String()
	}
	l.log.Warn(msgHTTPRefused, "client", src, "err", err)
	select {
	case l.linger <- struct{}{}:
	default: // a flood of them: answer if the socket takes it at once
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
		_, _ = c.Write(l.answer)
		c.Close()
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.linger
		c.Close()
		return
	}
	l.lingering[c] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		defer func() { <-l.linger }()
		defer func() {
			l.mu.Lock()
			delete(l.lingering, c)
			l.mu.Unlock()
			c.Close()
		}()
		_ = c.SetDeadline(time.Now().Add(refusalLinger))
		if _, err := c.Write(l.answer); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		// Read what the client sent until it closes (it has the answer).
		var buf [512]byte
		for {
			if _, err := c.Read(buf[:]); err != nil {
				return
			}
		}
	}()
}

// Close closes the listener and the refused connections still lingering,
// and waits for them.
func (l *connLimitListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.lingering {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

// Refused is how many connections were refused since the listener started.
func (l *connLimitListener) Refused() int64 { return l.refused.Load() }

// limitedConn gives its slot back when closed, and bounds each write's
// stall: a client that does not read its response loses the connection
// once a chunk of it makes no progress for the stall time. A whole
// response is not bounded (http.Server's WriteTimeout would cut blocking
// queries short), only the progress of each writeChunk of it.
type limitedConn struct {
	net.Conn
	slot  *admission.Slot
	stall time.Duration

	mu  sync.Mutex
	wdl time.Time // the caller's write deadline
}

// writeChunk is the most written under one stall deadline: a client must
// read at least that much per stall time (6.4 KB/s with the default).
const writeChunk = 64 << 10

func (c *limitedConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), writeChunk)
		c.mu.Lock()
		dl := earliestDeadline(c.wdl, time.Now().Add(c.stall))
		c.mu.Unlock()
		_ = c.Conn.SetWriteDeadline(dl)
		m, err := c.Conn.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// earliestDeadline is the earlier of a deadline (zero: none) and t.
func earliestDeadline(dl, t time.Time) time.Time {
	if !dl.IsZero() && dl.Before(t) {
		return dl
	}
	return t
}

func (c *limitedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *limitedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *limitedConn) Close() error {
	c.slot.Release()
	return c.Conn.Close()
}

// CloseWrite keeps net/http's graceful close (its closeWriter).
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
