// Package noise runs Hydra's tunnels: a Noise (revision 34) handshake over
// a TCP connection, then a *Conn, a net.Conn of encrypted records. Keys and
// allow-lists come from package secure.
//
//   - Pattern: IK when the initiator knows the responder's key
//     (Config.RemoteKey): one round trip, both sides authenticated, the
//     responder pinned. XX otherwise: one and a half round trips, and the
//     initiator checks the responder's key against its Authorizer before
//     revealing its own. Suite: 25519, BLAKE2s, and AESGCM where the CPU
//     has AES instructions, ChaChaPoly otherwise (the initiator picks; a
//     responder takes either). Primitives from x/crypto (curve25519,
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
//   - The handshake is a state machine that does no I/O (handshake.go:
//     one function per message, creating or consuming it as bytes); one
//     small driver (driver.go) reads and writes the messages for both
//     patterns and both roles.
//   - Handshakes run under a deadline (Config.HandshakeTimeout) and a
//     per-source rate limit; a Listener caps those running per source
//     address and in all (internal/admission), a newcomer from a source
//     running fewer taking the slot of the oldest of the source running
//     the most, so stalled handshakes hold a slot only until a fresh peer
//     needs it. After the handshake each record must arrive within
//     Config.RecordTimeout of its first byte. Handshake payloads are only readable
//     (Conn.PeerPayload) once the handshake has completed. Every
//     authentication failure looks the same to the peer: the connection
//     closes. Each failure closes only that connection and is logged with
//     its reason.
//
// See Conn for the transport's rules: coalesced writes, 65519-byte
// records, one owner per direction, rekeying, nonce limit, fatal errors.
//
// The package logs through the *slog.Logger it is given and is silent
// otherwise.
package noise
