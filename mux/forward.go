package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/hydra-net/hydra/internal/acceptloop"
)

// Stream header (spec.md, "Proxied streams"): the opener of a proxied
// stream first sends
//
//	version (1 byte, 1) | length n (1 byte, 1..255) | target (n bytes)
//
// and the acceptor answers with one status byte before any data.
const (
	headerVersion = 1
	// MaxTargetLen is the longest target a stream header can carry.
	MaxTargetLen = 255
)

// Status is the acceptor's one-byte answer to a stream header.
type Status byte

// Statuses. After anything but StatusOK the acceptor closes the stream.
const (
	StatusOK            Status = 0 // the target is connected; its bytes follow
	StatusUnknownTarget Status = 1 // the acceptor does not serve this target
	StatusRefused       Status = 2 // the target refused the connection
	StatusUnreachable   Status = 3 // dialling failed otherwise (timeout, no route, ...)
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusUnknownTarget:
		return "unknown target"
	case StatusRefused:
		return "connection refused"
	case StatusUnreachable:
		return "target unreachable"
	}
	return fmt.Sprintf("status %d", byte(s))
}

// DialError is how the opener of a proxied stream learns that the far side
// could not connect to the target.
type DialError struct {
	Target string
	Status Status
	Err    error // the dial error, on the side that dialled; nil on the opener's side
}

func (e *DialError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("mux: dial %q: %s: %v", e.Target, e.Status, e.Err)
	}
	return fmt.Sprintf("mux: far side could not reach %q: %s", e.Target, e.Status)
}

func (e *DialError) Unwrap() error { return e.Err }

// AppendHeader appends the stream header naming target to dst.
func AppendHeader(dst []byte, target string) ([]byte, error) {
	if len(target) == 0 || len(target) > MaxTargetLen {
		return dst, fmt.Errorf("%w: target of %d bytes (want 1 to %d)", ErrBadHeader, len(target), MaxTargetLen)
	}
	dst = append(dst, headerVersion, byte(len(target)))
	return append(dst, target...), nil
}

// ParseHeader parses a stream header at the start of b and returns its
// target and the header's length. Short input gives io.ErrUnexpectedEOF.
func ParseHeader(b []byte) (target string, n int, err error) {
	if len(b) < 2 {
		return "", 0, io.ErrUnexpectedEOF
	}
	if b[0] != headerVersion {
		return "", 0, fmt.Errorf("%w: version %d (want %d)", ErrBadHeader, b[0], headerVersion)
	}
	l := int(b[1])
	if l == 0 {
		return "", 0, fmt.Errorf("%w: empty target", ErrBadHeader)
	}
	if len(b) < 2+l {
		return "", 0, io.ErrUnexpectedEOF
	}
	return string(b[2 : 2+l]), 2 + l, nil
}

// ReadHeader reads a stream header from r, reading no byte beyond it.
func ReadHeader(r io.Reader) (string, error) {
	var buf [2 + MaxTargetLen]byte
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return "", headerReadErr(err)
	}
	if _, _, err := ParseHeader(buf[:2]); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", err
	}
	l := int(buf[1])
	if _, err := io.ReadFull(r, buf[2:2+l]); err != nil {
		return "", headerReadErr(err)
	}
	return string(buf[2 : 2+l]), nil
}

func headerReadErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// OpenFunc opens a stream to the far side; a *Session's OpenStream
// wrapped in a closure is one. A tunnel that redials passes one that uses
// whichever session is current, so its listeners outlive sessions.
type OpenFunc func(ctx context.Context) (net.Conn, error)

// Forwarder serves local TCP connections by carrying each over a new
// stream to Target on the far side, where a StreamServer dials it.
type Forwarder struct {
	Target string   // named in each stream's header; 1 to 255 bytes
	Open   OpenFunc // required
	// Logger receives per-connection failures at Debug and failed accepts
	// (out of descriptors) at Warn. Default: discard.
	Logger *slog.Logger
}

// Serve accepts connections from ln and forwards each in its own goroutine
// until ln is closed or ctx is done; ctx's end closes ln and aborts every
// forwarded connection. A failed Accept is retried after a growing wait.
// Serve returns after all of them have ended: ctx's error, or an error
// wrapping net.ErrClosed when ln was closed.
func (f *Forwarder) Serve(ctx context.Context, ln net.Listener) error {
	if _, err := AppendHeader(nil, f.Target); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	_ = acceptloop.Serve(ln, f.logger(), func(c net.Conn) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Forward(ctx, c); err != nil {
				f.logger().Debug("mux: forward", "target", f.Target, "client", c.RemoteAddr(), "err", err)
			}
		}()
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("mux: forwarder %s: %w", f.Target, net.ErrClosed)
}

// Forward carries c over a new stream to Target and returns when both
// directions have ended. If no stream can be opened, or the far side
// cannot reach the target, c is aborted (its peer gets a TCP RST) at once.
func (f *Forwarder) Forward(ctx context.Context, c net.Conn) error {
	hdr, err := AppendHeader(nil, f.Target)
	if err != nil {
		Abort(c)
		return err
	}
	st, err := f.Open(ctx)
	if err != nil {
		Abort(c)
		return err
	}
	if _, err := st.Write(hdr); err != nil {
		Abort(c)
		Abort(st)
		return err
	}
	// Bytes from c go out at once; bytes from the stream wait for the
	// status, so a refusal reaches c as a reset, not as data.
	return Proxy(ctx, c, &replyConn{Conn: st, target: f.Target})
}

func (f *Forwarder) logger() *slog.Logger {
	if f.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Logger
}

// replyConn reads the acceptor's status byte before the first data.
type replyConn struct {
	net.Conn
	target string
	ok     bool // status read and OK; only Proxy's reading goroutine touches it
}

func (r *replyConn) Read(p []byte) (int, error) {
	if !r.ok {
		var b [1]byte
		if _, err := io.ReadFull(r.Conn, b[:]); err != nil {
			return 0, headerReadErr(err)
		}
		if Status(b[0]) != StatusOK {
			return 0, &DialError{Target: r.target, Status: Status(b[0])}
		}
		r.ok = true
	}
	return r.Conn.Read(p)
}

func (r *replyConn) CloseWrite() error {
	if cw, ok := r.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (r *replyConn) Reset() error {
	Abort(r.Conn)
	return nil
}

// DialFunc connects to the target named in a stream header. It decides what
// the far side of a session may reach: return an error wrapping
// ErrUnknownTarget for anything it should not.
type DialFunc func(ctx context.Context, target string) (net.Conn, error)

// Defaults of StreamServer's fields.
const (
	DefaultHeaderTimeout = 10 * time.Second
	DefaultDialTimeout   = 10 * time.Second
)

// StreamServer is the far side of Forwarder: it reads each stream's
// header, dials the target and proxies between the two.
type StreamServer struct {
	Dial DialFunc // required
	// HeaderTimeout bounds the wait for a stream's header, and after a
	// failed dial the wait for the opener to give the stream up. Default 10s.
	HeaderTimeout time.Duration
	// DialTimeout bounds each dial. Default 10s.
	DialTimeout time.Duration
	// Logger receives per-stream failures at Debug. Default: discard.
	Logger *slog.Logger
}

// Serve accepts streams from s and serves each in its own goroutine until
// the session ends or ctx is done, then waits for them; ctx's end aborts
// the streams being served.
func (ss *StreamServer) Serve(ctx context.Context, s *Session) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := s.AcceptStreamContext(ctx)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ss.ServeStream(ctx, st); err != nil {
				ss.logger().Debug("mux: serve stream", "id", st.StreamID(), "err", err)
			}
		}()
	}
}

// ServeStream reads st's header and serves its target (ServeTarget). A
// stream without a valid header in HeaderTimeout is reset.
func (ss *StreamServer) ServeStream(ctx context.Context, st net.Conn) error {
	_ = st.SetReadDeadline(time.Now().Add(orDefault(ss.HeaderTimeout, DefaultHeaderTimeout)))
	target, err := ReadHeader(st)
	if err != nil {
		Abort(st)
		return err
	}
	_ = st.SetReadDeadline(time.Time{})
	return ss.ServeTarget(ctx, st, target)
}

// ServeTarget dials target for a stream whose header has been read,
// answers with a status byte and proxies. When the dial fails, the status
// says why and the stream is half-closed; the opener then resets its
// client's connection and the stream.
func (ss *StreamServer) ServeTarget(ctx context.Context, st net.Conn, target string) error {
	dctx, cancel := context.WithTimeout(ctx, orDefault(ss.DialTimeout, DefaultDialTimeout))
	c, err := ss.Dial(dctx, target)
	cancel()
	if err != nil {
		// Send the status and half-close, then wait (bounded) for the
		// opener to give up the stream: closing at once would reset it if
		// the opener had sent data meanwhile, and a reset can overtake the
		// status.
		status := dialStatus(err)
		_, _ = st.Write([]byte{byte(status)})
		if cw, ok := st.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = st.SetReadDeadline(time.Now().Add(orDefault(ss.HeaderTimeout, DefaultHeaderTimeout)))
		_, _ = io.Copy(io.Discard, st)
		_ = st.Close()
		return &DialError{Target: target, Status: status, Err: err}
	}
	if _, err := st.Write([]byte{byte(StatusOK)}); err != nil {
		Abort(c)
		Abort(st)
		return err
	}
	return Proxy(ctx, st, c)
}

func (ss *StreamServer) logger() *slog.Logger {
	if ss.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return ss.Logger
}

func dialStatus(err error) Status {
	switch {
	case errors.Is(err, ErrUnknownTarget):
		return StatusUnknownTarget
	case errors.Is(err, syscall.ECONNREFUSED):
		return StatusRefused
	}
	return StatusUnreachable
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
