// Package mux carries many TCP connections over one: it runs yamux
// (github.com/hashicorp/yamux) sessions over a secure net.Conn (the Noise
// transport of package secure, or any net.Conn) and proxies between
// streams and TCP connections. It is the tunnel's data plane: the local
// side's proxy listener opens a stream per client connection, the remote
// side dials the real service and copies bytes both ways.
//
// # Sessions
//
// Client and Server start the two ends of a Session over a connection. A
// Session opens streams (OpenStream) and accepts the peer's (AcceptStream;
// a Session is a net.Listener). A Stream is a net.Conn with TCP's
// half-close (CloseWrite) and reset (Reset). Config sets the limits; its
// zero value is usable, every field documents its default (also exported as
// Default* constants), and Config.Validate names the first field out of
// range.
//
// The package works around yamux's weak points rather than living with
// them, by putting a framing-aware layer between yamux and the connection
// (see spec.md for the wire and the details):
//
//   - One write per frame. yamux writes a frame's 12-byte header and its
//     body separately; here they reach the connection as one Write, so the
//     Noise layer seals one record per frame instead of a tiny header
//     record and a body record. Frame sizes line up with Noise messages:
//     a frame from Proxy is one message, a full frame from a large Write
//     exactly four.
//   - Liveness that a busy link cannot fail. yamux's keepalive ping waits
//     behind data in its send queue and fails a saturated link. Here a
//     ping is sent only when nothing has been read (or nothing written) for
//     KeepAliveInterval, it goes out at the next frame boundary, and the
//     session fails only when nothing at all has been read for
//     LivenessTimeout. The peer's pings are answered without a goroutine
//     per ping.
//   - Bounded resources. At most MaxStreams streams (both directions) and
//     AcceptBacklog unaccepted ones; a stream the peer opens beyond either
//     is reset at once, never queued. A session's memory is bounded by
//     about MaxStreams × StreamWindow. Malformed frames close the session
//     with ErrProtocol; none of it touches other sessions.
//   - Honest errors. A stream of a session that died returns an error
//     wrapping ErrSessionClosed (and the cause, e.g. ErrPeerTimeout), never
//     io.EOF as plain yamux does, so a truncated transfer is not mistaken
//     for a complete one; a reset returns ErrStreamReset.
//
// # Proxying
//
// Proxy copies between two connections with pooled buffers, passes
// half-closes on, and turns a failure on one side into a reset on the
// other (SO_LINGER 0 on TCP, a RST on a stream).
//
// A Forwarder serves a local listener: for each accepted connection it
// opens a stream whose first bytes name the target (a length-prefixed
// string, spec.md "Proxied streams"). A StreamServer on the far side reads
// that header, dials the target with its DialFunc (which decides what may
// be reached), answers with one status byte and proxies. A target that
// refuses the connection makes the client's connection reset at once.
//
//	// remote side: serve streams by dialling local services
//	srv := &mux.StreamServer{Dial: func(ctx context.Context, target string) (net.Conn, error) {
//		addr, ok := services[target]
//		if !ok {
//			return nil, mux.ErrUnknownTarget
//		}
//		var d net.Dialer
//		return d.DialContext(ctx, "tcp", addr)
//	}}
//	sess, err := mux.Server(conn, nil)
//	...
//	go srv.Serve(ctx, sess)
//
//	// local side: a listener whose connections reach "web" over there
//	f := &mux.Forwarder{Target: "web", Open: func(context.Context) (net.Conn, error) {
//		return sess.Open()
//	}}
//	go f.Serve(ctx, ln)
package mux
