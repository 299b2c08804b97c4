package curve

import "errors"

// Sentinel errors; callers branch on them with errors.Is. A client key the
// server's Authorizer refuses is secure.ErrUnauthorized.
var (
	// ErrRefused is what a client returns when the server answered its
	// handshake with an ERROR command (its key is not allowed). The peer's
	// reason is wrapped too: errors.As gives the *zmtp.PeerError.
	ErrRefused = errors.New("curve: server refused the handshake")
	// ErrNoWelcome is what a client returns when the server closed the
	// connection after its HELLO instead of answering: the HELLO did not
	// open, which is what a wrong server key looks like.
	ErrNoWelcome = errors.New("curve: no answer to HELLO")
	// ErrAuth is a box that does not open: a wrong key, a forged or
	// corrupted command. During the handshake the peer learns nothing more
	// than that the connection closed (or ERROR "400" after INITIATE);
	// after it, the connection closes.
	ErrAuth = errors.New("curve: authentication failed")
	// ErrNonce is a short nonce that does not strictly increase: a
	// replayed or reordered command. The connection closes.
	ErrNonce = errors.New("curve: nonce replayed or out of order")
	// ErrNonceLimit is a connection that has sent 2^64-1 messages: it
	// closes rather than reuse a nonce.
	ErrNonceLimit = errors.New("curve: send nonce exhausted")
	// ErrCommand is a command of the wrong size or shape.
	ErrCommand = errors.New("curve: malformed CURVE command")
)
