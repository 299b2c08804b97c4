// Package inproc is an in-memory network for one process: named listeners
// (Listen), connections to them (Dial) and buffered pipes (Pipe) that behave
// like TCP connections on loopback without a socket, a file descriptor or a
// goroutine of their own. Package zmtp serves its inproc://NAME endpoints
// with it, so that tests and simulations can run many servers in one
// process cheaply.
//
// A connection is two bounded byte queues, one per direction. Write copies
// into the peer's queue and blocks while it is full (backpressure, as a
// socket buffer gives); Read takes what is queued. Both honour deadlines
// (timeouts are net.Error with Timeout() true, wrapping
// os.ErrDeadlineExceeded). CloseWrite half-closes: the peer reads what was
// written, then io.EOF. Close ends both directions: the peer reads what is
// queued, then io.EOF, and its writes fail with syscall.EPIPE. Dialling a
// name nobody listens on fails with syscall.ECONNREFUSED, as TCP does.
package inproc
