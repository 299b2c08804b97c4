// Package zmtp is a pure-Go implementation of the ZeroMQ Message Transport
// Protocol (ZMTP 3.0 and 3.1, rfc.zeromq.org specs 23 and 37) and of the
// ZeroMQ socket types built on it: REQ, REP, DEALER, ROUTER, PUB, SUB, XPUB,
// XSUB, PUSH, PULL and PAIR, over tcp://, ipc:// and inproc:// transports.
//
// The package has two layers:
//
//   - A codec that does no I/O: ParseGreeting/AppendGreeting,
//     ParseFrameHeader/AppendFrame, ParseCommand/AppendCommand and the READY
//     metadata encoding. Every parser is bounded and returns a typed error
//     (see the Err* sentinels and *ProtocolError); none panics on input.
//   - Sockets (NewSocket) that speak to any ZMTP 3.x peer, libzmq and
//     go-zeromq/zmq4 included, with libzmq's semantics: envelopes, routing
//     ids, round robin, fair queueing, publisher-side filtering, high-water
//     marks, reconnection and linger on Close.
//
// # Transports
//
// tcp://HOST:PORT and ipc://PATH are sockets of the operating system.
// inproc://NAME is in memory, for tests and simulations of many servers in
// one process: Bind registers NAME in a table of this process (package
// zmtp/inproc), Connect finds it there, and each connection is a pair of
// bounded byte queues with deadlines and half-close, so handshakes,
// heartbeats, high-water marks and linger behave as over TCP, without file
// descriptors and without goroutines beyond the socket's own. A Connect
// before the Bind is retried like a refused TCP connection.
//
// Security mechanisms plug in through the Mechanism interface; NULL and PLAIN
// are here, CURVE lives in package zmtp/curve.
//
// Each connection has one reader goroutine that parses frames in place out of
// large read buffers, and one writer goroutine that owns every write and
// sends whatever Send has queued in one write call; Send itself only encodes
// the message into the peer's pending buffer. That batching, not any trick in
// the codec, is where the throughput comes from.
package zmtp
