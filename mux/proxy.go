package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
)

// Copy buffers: a direction starts with a small one and moves to a big one
// the first time a read fills it (a bulk transfer), so that many idle or
// interactive connections hold 64 KiB each, not 256 KiB.
var (
	smallProxyBufs = sync.Pool{New: func() any {
		b := make([]byte, smallProxyBufSize)
		return &b
	}}
	proxyBufs = sync.Pool{New: func() any {
		b := make([]byte, proxyBufSize)
		return &b
	}}
)

// Proxy copies a to b and b to a until both directions end, then closes
// both connections, and returns nil if both ended with EOF.
//
// Each direction's EOF is passed on as a half-close (CloseWrite, on
// *net.TCPConn, *Stream and anything else that has it), so a peer that
// shuts down its sending side still gets its reply. When either side fails
// (a read or write error other than EOF, or ctx is done), both are aborted:
// a *Stream is reset and a *net.TCPConn (anything with SetLinger) is closed
// with SO_LINGER 0 so that its peer gets a TCP RST, and Proxy returns the
// first error (ctx.Err() if ctx ended it). A connection that cannot
// half-close stays open until the other direction ends.
func Proxy(ctx context.Context, a, b net.Conn) error {
	var once sync.Once
	abortBoth := func() {
		once.Do(func() {
			Abort(a)
			Abort(b)
		})
	}
	stop := context.AfterFunc(ctx, abortBoth)
	defer stop()

	errc := make(chan error, 1)
	go func() { errc <- pipe(b, a, abortBoth) }()
	err := pipe(a, b, abortBoth)
	if err2 := <-errc; err == nil {
		err = err2
	}
	if err == nil {
		err = errors.Join(a.Close(), b.Close())
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// pipe copies src to dst with a pooled buffer. On EOF it half-closes dst;
// on any error it aborts both sides.
func pipe(dst, src net.Conn, abortBoth func()) error {
	pool := &smallProxyBufs
	bp := pool.Get().(*[]byte)
	defer func() { pool.Put(bp) }()
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				abortBoth()
				return werr
			}
		}
		if n == len(buf) && pool == &smallProxyBufs {
			pool.Put(bp)
			pool = &proxyBufs
			bp = pool.Get().(*[]byte)
			buf = *bp
		}
		if rerr == io.EOF {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				if err := cw.CloseWrite(); err != nil {
					abortBoth()
					return err
				}
			}
			return nil
		}
		if rerr != nil {
			abortBoth()
			return rerr
		}
	}
}

// Abort closes c so that its peer learns of a failure rather than a clean
// end: a *Stream (anything with Reset) is reset, a *net.TCPConn (anything
// with SetLinger) is closed with SO_LINGER 0, which sends a TCP RST. Other
// connections are just closed.
func Abort(c net.Conn) {
	if r, ok := c.(interface{ Reset() error }); ok {
		_ = r.Reset()
		return
	}
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
	_ = c.Close()
}
