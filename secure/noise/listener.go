package noise

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/hydra-net/hydra/internal/acceptloop"
	"github.com/hydra-net/hydra/internal/admission"
)

// Listener accepts tunnel connections whose handshake completed; see
// Responder.Listen.
type Listener struct {
	inner  net.Listener
	r      *Responder
	handle func(*Conn) // Serve's; nil: Accept returns the connections
	conns  chan *Conn
	slots  *admission.Limiter // handshakes running, per source and in all
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Listen accepts tunnel connections on l: each handshake runs in its own
// goroutine (at most MaxHandshakes at once, MaxHandshakesPerSource per
// source address, the heaviest source's oldest evicted for a newcomer) and
// Accept returns only connections that completed one. A failed handshake closes only its own
// connection, with its reason logged.
func (r *Responder) Listen(l net.Listener) *Listener { return r.listen(l, nil) }

// Serve is Listen without a second accept loop: each connection that
// completes its handshake is passed to handle, on that handshake's own
// goroutine (its handshake slot already freed). Close waits for the
// handlers to return.
func (r *Responder) Serve(l net.Listener, handle func(*Conn)) *Listener { return r.listen(l, handle) }

func (r *Responder) listen(l net.Listener, handle func(*Conn)) *Listener {
	ln := &Listener{
		inner: l, r: r, handle: handle,
		conns: make(chan *Conn),
		slots: admission.New(admission.Config{
			PerSource: r.cfg.MaxHandshakesPerSource, Total: r.cfg.MaxHandshakes, Evict: true,
		}),
		done: make(chan struct{}),
	}
	ln.ctx, ln.cancel = context.WithCancel(context.Background())
	ln.wg.Add(1)
	go func() {
		defer ln.wg.Done()
		_ = acceptloop.Serve(l, r.cfg.Logger, ln.handshake)
	}()
	return ln
}

// handshake runs the handshake of one accepted connection on its own
// goroutine, or refuses it when its source or the Listener has no slot
// left for it. A handshake evicted for a newcomer fails with ErrEvicted.
func (l *Listener) handshake(nc net.Conn) {
	ctx, cancel := context.WithCancelCause(l.ctx)
	slot, err := l.slots.Acquire(nc.RemoteAddr(), func() { cancel(ErrEvicted) })
	if err != nil {
		cancel(nil)
		l.refuse(nc, err)
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		c, err := l.r.Accept(ctx, nc)
		slot.Release()
		cancel(nil)
		if err != nil {
			return // closed and logged by Accept
		}
		if l.handle != nil {
			l.handle(c)
			return
		}
		select {
		case l.conns <- c:
		case <-l.done:
			c.Close()
		}
	}()
}

// refuse closes a connection admission refused, counting it and logging it
// once per cause.
func (l *Listener) refuse(nc net.Conn, err error) {
	reason := FailBusy
	if errors.Is(err, admission.ErrSourceFull) {
		reason = FailSourceBusy
	}
	l.r.fails[reason].Add(1)
	l.r.refusals.Info(msgRefused, "source", sourceName(nc.RemoteAddr()), "err", err)
	nc.Close()
}

// sourceName is the source address a refusal is logged under.
func sourceName(a net.Addr) string {
	if p, ok := admission.Source(a); ok {
		return p.String()
	}
	return a.String()
}

// Accept returns the next connection that completed its handshake.
func (l *Listener) Accept() (net.Conn, error) { return l.AcceptConn() }

// AcceptConn is Accept returning the *Conn.
func (l *Listener) AcceptConn() (*Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, cancels handshakes in progress and waits for
// them. Established connections are not closed.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		l.cancel()
		err = l.inner.Close()
		l.wg.Wait()
	})
	return err
}

// Addr is the underlying listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }
