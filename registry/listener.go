package registry

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hydra-net/hydra/secure/noise"
)

// One port for ZMTP and tunnels (ARCHITECTURE: "One port"). A ZMTP peer's
// greeting starts with 0xFF; a tunnel's preamble with 'H'
// (noise.PreambleMagic). SharedListener peeks the first byte of each
// accepted connection, off the accept goroutine and under a deadline, and
// hands the connection, that byte replayed, to the right layer.

// Defaults of SharedListener.
const (
	DefaultSniffTimeout = 10 * time.Second // for the first byte
	DefaultMaxSniffing  = 256              // connections whose first byte is awaited at once
)

// SharedListener splits one listener between ZMTP peers (ZMTP, for
// Server.BindListener) and tunnels (Tunnels, for Tunnels.Serve or
// noise.Responder.Listen). Connections starting with anything else are
// closed. Close closes the inner listener and both halves.
type SharedListener struct {
	inner        net.Listener
	log          *slog.Logger
	sniffTimeout time.Duration
	sem          chan struct{}
	zmtp, tun    *chanListener
	done         chan struct{}
	once         sync.Once
	wg           sync.WaitGroup
}

// NewSharedListener starts accepting on l. log may be nil.
func NewSharedListener(l net.Listener, log *slog.Logger) *SharedListener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &SharedListener{inner: l, log: log, sniffTimeout: DefaultSniffTimeout,
		sem: make(chan struct{}, DefaultMaxSniffing), done: make(chan struct{})}
	s.zmtp = &chanListener{s: s, ch: make(chan net.Conn)}
	s.tun = &chanListener{s: s, ch: make(chan net.Conn)}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

// ZMTP is the half whose connections start with 0xFF.
func (s *SharedListener) ZMTP() net.Listener { return s.zmtp }

// Tunnels is the half whose connections start with a tunnel preamble.
func (s *SharedListener) Tunnels() net.Listener { return s.tun }

// Addr is the inner listener's address.
func (s *SharedListener) Addr() net.Addr { return s.inner.Addr() }

// Close stops accepting and closes connections not yet handed over.
func (s *SharedListener) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.inner.Close()
	})
	s.wg.Wait()
	return err
}

func (s *SharedListener) acceptLoop() {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		nc, err := s.inner.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				s.once.Do(func() { close(s.done) })
				return
			}
			s.log.Warn("registry: accept", "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		select {
		case s.sem <- struct{}{}:
		default: // a flood of silent connections: shed the newest
			s.log.Debug("registry: too many connections awaiting their first byte", "peer", nc.RemoteAddr())
			nc.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			s.sniff(nc)
		}()
	}
}

func (s *SharedListener) sniff(nc net.Conn) {
	var b [1]byte
	_ = nc.SetReadDeadline(time.Now().Add(s.sniffTimeout))
	if _, err := io.ReadFull(nc, b[:]); err != nil {
		nc.Close()
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	pc := &peekConn{Conn: nc, first: b[0], pending: true}
	var to *chanListener
	switch {
	case b[0] == 0xFF:
		to = s.zmtp
	case noise.IsTunnelPreamble(b[:]):
		to = s.tun
	default:
		s.log.Debug("registry: neither ZMTP nor a tunnel", "peer", nc.RemoteAddr(), "first_byte", b[0])
		nc.Close()
		return
	}
	select {
	case to.ch <- pc:
	case <-s.done:
		nc.Close()
	}
}

// chanListener is one half of a SharedListener.
type chanListener struct {
	s  *SharedListener
	ch chan net.Conn
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.s.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { return l.s.Close() }
func (l *chanListener) Addr() net.Addr { return l.s.inner.Addr() }

// peekConn replays the byte the sniffer read, then reads the connection.
type peekConn struct {
	net.Conn
	mu      sync.Mutex
	first   byte
	pending bool
}

func (c *peekConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.Conn.Read(p)
	}
	c.mu.Lock()
	if c.pending {
		c.pending = false
		c.mu.Unlock()
		p[0] = c.first
		return 1, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// CloseWrite half-closes the TCP connection underneath.
func (c *peekConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// BindListener makes the server accept ZMTP peers from l (a SharedListener's
// ZMTP half, to share a port with tunnels) until Close, which closes l.
func (s *Server) BindListener(l net.Listener) error {
	if s.closed.Load() {
		l.Close()
		return ErrClosed
	}
	return s.sock.BindListener(l)
}
