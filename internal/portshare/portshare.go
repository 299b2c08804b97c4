package portshare

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/internal/acceptloop"
	"github.com/hydra-net/hydra/internal/admission"
	"github.com/hydra-net/hydra/internal/repeatlog"
	"github.com/hydra-net/hydra/secure/noise"
)

// Defaults of Config's fields.
const (
	DefaultFirstByteTimeout    = 10 * time.Second
	DefaultMaxPending          = 512
	DefaultMaxPendingPerSource = 32
)

// msgRefused is the log message of a refused connection, said once per
// cause with a count (internal/repeatlog).
const msgRefused = "portshare: connection refused"

// Config tunes a Listener. The zero value works.
type Config struct {
	// FirstByteTimeout bounds the wait for a connection's first byte, and
	// then for a half to take it. Default 10s.
	FirstByteTimeout time.Duration
	// MaxPending bounds the connections whose first byte is awaited (or
	// that wait for a half to take them) at once, so a flood of silent
	// connections costs a bounded number of goroutines. Past it, a
	// newcomer takes the oldest slot of the source address holding the
	// most, if that source holds more than the newcomer's would; else the
	// newcomer is closed (internal/admission). Default 512.
	MaxPending int
	// MaxPendingPerSource bounds them per source address (IPv4 address,
	// IPv6 /64); past it the source's newest are closed. Default 32.
	MaxPendingPerSource int
	// Logger receives accept failures (Warn), refused connections (Info,
	// once per cause with a count) and connections that are neither ZMTP
	// nor a tunnel (Debug). Default: discard.
	Logger *slog.Logger
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	if c.FirstByteTimeout < 0 {
		return fmt.Errorf("portshare: FirstByteTimeout: negative (%v)", c.FirstByteTimeout)
	}
	if c.MaxPending < 0 {
		return fmt.Errorf("portshare: MaxPending: negative (%d)", c.MaxPending)
	}
	if c.MaxPendingPerSource < 0 {
		return fmt.Errorf("portshare: MaxPendingPerSource: negative (%d)", c.MaxPendingPerSource)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.FirstByteTimeout == 0 {
		c.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPendingPerSource == 0 {
		c.MaxPendingPerSource = DefaultMaxPendingPerSource
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Listener splits one listener between ZMTP peers (ZMTP, for
// registry.Server.BindListener) and tunnels (Tunnels, for tunnel.Tunnels.Run).
// Connections starting with anything else are closed. Closing the
// Listener or either half closes the inner listener and both halves.
type Listener struct {
	inner     net.Listener
	cfg       Config
	log       *slog.Logger // cfg.Logger, refusals said once per cause
	pending   *admission.Limiter
	stats     counters
	zmtp, tun *half
	done      chan struct{}
	once      sync.Once
	wg        sync.WaitGroup
}

// New starts splitting inner's connections. On an error nothing is
// started and inner is left open.
func New(inner net.Listener, cfg Config) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	l := &Listener{
		inner: inner, cfg: cfg,
		log: slog.New(repeatlog.Handler(cfg.Logger.Handler(), msgRefused)),
		pending: admission.New(admission.Config{
			PerSource: cfg.MaxPendingPerSource, Total: cfg.MaxPending, Evict: true,
		}),
		done: make(chan struct{}),
	}
	l.zmtp = &half{l: l, ch: make(chan net.Conn)}
	l.tun = &half{l: l, ch: make(chan net.Conn)}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		_ = acceptloop.Serve(inner, cfg.Logger, l.handle)
		l.once.Do(func() { close(l.done) }) // closed from outside
	}()
	return l, nil
}

// ZMTP is the half whose connections start with 0xFF.
func (l *Listener) ZMTP() net.Listener { return l.zmtp }

// Tunnels is the half whose connections start with a tunnel preamble.
func (l *Listener) Tunnels() net.Listener { return l.tun }

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Close stops accepting, closes connections not yet handed over and waits
// for its goroutines.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	l.wg.Wait()
	return err
}

// Stats counts the connections a Listener refused or evicted since New.
type Stats struct {
	SourceFull int64 // refused: their source held MaxPendingPerSource
	Full       int64 // refused: MaxPending held, nobody to evict
	Evicted    int64 // closed while waiting, their slot given to a newcomer
}

type counters struct{ sourceFull, full, evicted atomic.Int64 }

// Stats returns what l refused and evicted so far.
func (l *Listener) Stats() Stats {
	return Stats{l.stats.sourceFull.Load(), l.stats.full.Load(), l.stats.evicted.Load()}
}

// handle runs on the accept goroutine: it only takes a slot and starts the
// wait for the first byte.
func (l *Listener) handle(nc net.Conn) {
	select {
	case <-l.done:
		nc.Close()
		return
	default:
	}
	evicted := make(chan struct{})
	slot, err := l.pending.Acquire(nc.RemoteAddr(), func() {
		l.stats.evicted.Add(1)
		close(evicted)
		nc.Close()
	})
	if err != nil {
		l.refuse(nc, err)
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer slot.Release()
		l.sniff(nc, evicted)
	}()
}

// refuse closes a connection admission refused, counting and logging it.
func (l *Listener) refuse(nc net.Conn, err error) {
	if errors.Is(err, admission.ErrSourceFull) {
		l.stats.sourceFull.Add(1)
	} else {
		l.stats.full.Add(1)
	}
	src := nc.RemoteAddr().String()
	if p, ok := admission.Source(nc.RemoteAddr()); ok {
		src = p.String()
	}
	l.log.Info(msgRefused, "source", src, "err", err)
	nc.Close()
}

// sniff reads nc's first byte and hands nc to its half; evicted closes
// when a newcomer took nc's slot (nc is closed by then).
func (l *Listener) sniff(nc net.Conn, evicted <-chan struct{}) {
	var b [1]byte
	deadline := time.Now().Add(l.cfg.FirstByteTimeout)
	_ = nc.SetReadDeadline(deadline)
	if _, err := io.ReadFull(nc, b[:]); err != nil {
		nc.Close()
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	var to *half
	switch {
	case b[0] == 0xFF:
		to = l.zmtp
	case noise.IsTunnelPreamble(b[:]):
		to = l.tun
	default:
		l.cfg.Logger.Debug("portshare: neither ZMTP nor a tunnel", "peer", nc.RemoteAddr(), "first_byte", b[0])
		nc.Close()
		return
	}
	// A half nobody accepts from (a server without inbound tunnels) must
	// not hold a slot for ever.
	tm := time.NewTimer(time.Until(deadline))
	defer tm.Stop()
	select {
	case to.ch <- &peekConn{Conn: nc, first: b[0], pending: true}:
	case <-tm.C:
		l.cfg.Logger.Debug("portshare: nobody took the connection", "peer", nc.RemoteAddr(), "first_byte", b[0])
		nc.Close()
	case <-evicted:
	case <-l.done:
		nc.Close()
	}
}

// half is one of a Listener's two listeners.
type half struct {
	l  *Listener
	ch chan net.Conn
}

func (h *half) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.l.done:
		return nil, net.ErrClosed
	}
}

func (h *half) Close() error   { return h.l.Close() }
func (h *half) Addr() net.Addr { return h.l.inner.Addr() }

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
