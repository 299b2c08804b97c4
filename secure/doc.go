// Package secure gives a Hydra server its identity and its encrypted links:
// one Curve25519 key pair per server, used by CURVE on ZMTP links and by
// Noise on tunnels, and an allow-list of peer keys.
//
// # Keys
//
// GenerateKeyPair makes a key pair as libzmq's zmq_curve_keypair does, and
// keys print as 40-character Z85 (spec 32), the form libzmq and pyzmq use.
// WriteKeyPair and LoadKeyPair keep them in czmq/pyzmq certificate files
// (the secret one mode 0600, refused if other users can read it; pyzmq's
// zmq.auth.load_certificate reads ours and we read its). LoadAllowList
// reads a file of public keys and Reload re-reads it (on SIGHUP). An
// Authorizer decides which peer keys may connect: an *AllowList, or
// AllowAny, which has to be asked for by name; a nil Authorizer refuses
// everyone.
//
// # CURVE
//
// CurveServer and CurveClient are zmtp security mechanisms (for
// zmtp.Options.Security): CurveZMQ (rfc.zeromq.org spec 26) with
// x/crypto's nacl/box, byte-compatible with libzmq (tested against pyzmq
// both ways). HELLO, WELCOME (with a cookie under a key of the
// connection), INITIATE (with the vouch) and READY, then MESSAGE commands
// whose short nonces must strictly increase: a replayed or reordered
// message ends the connection. A client whose key the server's Authorizer
// refuses gets ERROR "400" (the ZAP status code, which libzmq reports as
// ZMQ_EVENT_HANDSHAKE_FAILED_AUTH). A MESSAGE travels as a data frame, as
// libzmq sends it, with libzmq's inner flags (more 0x01, command 0x02),
// so PING, PONG and SUBSCRIBE work inside it.
//
// # Noise tunnels
//
// Initiate and Responder run a Noise (revision 34) handshake over a TCP
// connection and return a *Conn, a net.Conn of encrypted records:
//
//   - Pattern: IK when the initiator knows the responder's key
//     (NoiseConfig.RemoteKey): one round trip, both sides authenticated,
//     the responder pinned. XX otherwise: one and a half round trips, and
//     the initiator checks the responder's key against its Authorizer
//     before revealing its own. Suite: 25519, BLAKE2s, and AESGCM where the
//     CPU has AES instructions, ChaChaPoly otherwise (the initiator picks;
//     a responder takes either). Primitives from x/crypto (curve25519,
//     blake2s, chacha20poly1305) and the standard library's AES-GCM.
//   - Wire: an 8-byte preamble "HYNZ", version 1, pattern 'I' or 'X',
//     cipher 'A' or 'C', 0 (also the Noise prologue; its first byte is
//     never ZMTP's 0xFF, so one port serves both, see IsTunnelPreamble),
//     then handshake messages and transport records, each a 2-byte
//     big-endian length and at most 65535 bytes. The side that speaks
//     last in the handshake is answered with an empty record (key
//     confirmation: an IK responder learns the initiator is live and not
//     a replayed first message, an XX initiator that its key was
//     accepted); only then does either side hand out the Conn.
//   - Handshakes run under a deadline (NoiseConfig.HandshakeTimeout) and a
//     per-source rate limit; handshake payloads are only readable
//     (Conn.PeerPayload) once the handshake has completed. Any failure
//     closes only that connection and is logged with its reason.
//
// See Conn for the transport's rules: coalesced writes, 65519-byte
// records, one owner per direction, rekeying, nonce limit, fatal errors.
//
// The package logs through the *slog.Logger it is given and is silent
// otherwise.
package secure
