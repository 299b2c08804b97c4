// Package curve is the CURVE security mechanism for zmtp sockets
// (zmtp.Config.Security): CurveZMQ, rfc.zeromq.org spec 26, with
// x/crypto's nacl/box, byte-compatible with libzmq (tested against pyzmq
// both ways).
//
// It lives under zmtp, not secure, because CURVE is a zmtp.Mechanism built
// on zmtp's commands, frames and metadata and only zmtp sockets use it. So
// the dependency runs one way: zmtp/curve uses zmtp and secure's keys and
// allow-lists, while secure and secure/noise (tunnels) never import zmtp.
//
// Server and Client return mechanism factories. HELLO, WELCOME (with a
// cookie under a key of the connection), INITIATE (with the vouch) and
// READY, then MESSAGE commands whose short nonces must strictly increase:
// a replayed or reordered message ends the connection. A client whose key
// the server's secure.Authorizer refuses gets ERROR "400" (the ZAP status
// code, which libzmq reports as ZMQ_EVENT_HANDSHAKE_FAILED_AUTH). A
// MESSAGE travels as a data frame, as libzmq sends it, with libzmq's inner
// flags (more 0x01, command 0x02), so PING, PONG and SUBSCRIBE work inside
// it. The handshake's secrets are zeroed when it ends, the message keys
// when the connection ends.
package curve
