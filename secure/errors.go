package secure

import "errors"

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrZ85 is a malformed Z85 string or a length Z85 cannot encode.
	ErrZ85 = errors.New("secure: bad Z85")
	// ErrKeyFile is a key or allow-list file that cannot be parsed.
	ErrKeyFile = errors.New("secure: bad key file")
	// ErrKeyExists is returned by WriteKeyPair when a key file exists and
	// force was not given.
	ErrKeyExists = errors.New("secure: key file exists (use force to overwrite)")
	// ErrKeyPermissions is a secret key file that others can read or write.
	ErrKeyPermissions = errors.New("secure: secret key file is accessible by other users")

	// ErrCurveRefused is what a CURVE client returns when the server
	// answered its handshake with an ERROR command (its key is not
	// allowed). The peer's reason is wrapped too: errors.As gives the
	// *zmtp.PeerError.
	ErrCurveRefused = errors.New("secure: CURVE server refused the handshake")
	// ErrCurveAuth is a CURVE box that does not open: a wrong key, a
	// forged or corrupted command. During the handshake the peer learns
	// nothing more than that the connection closed (or ERROR "400" after
	// INITIATE); after it, the connection closes.
	ErrCurveAuth = errors.New("secure: CURVE authentication failed")
	// ErrCurveNonce is a CURVE short nonce that does not strictly increase:
	// a replayed or reordered command. The connection closes.
	ErrCurveNonce = errors.New("secure: CURVE nonce replayed or out of order")
	// ErrCurveCommand is a CURVE command of the wrong size or shape.
	ErrCurveCommand = errors.New("secure: malformed CURVE command")
	// ErrUnauthorized is a peer whose static key the Authorizer refused.
	ErrUnauthorized = errors.New("secure: peer key not authorized")

	// ErrPreamble is a tunnel connection that did not start with the
	// Hydra Noise preamble (garbage, a wrong version or an unknown suite).
	ErrPreamble = errors.New("secure: bad tunnel preamble")
	// ErrNoiseHandshake is a Noise handshake message that failed to
	// decrypt or has the wrong length.
	ErrNoiseHandshake = errors.New("secure: noise handshake failed")
	// ErrRateLimited is a handshake refused because its source address
	// started too many recently.
	ErrRateLimited = errors.New("secure: handshake rate limit exceeded")
	// ErrHandshakeTimeout is a handshake that did not finish within the
	// handshake deadline.
	ErrHandshakeTimeout = errors.New("secure: handshake timed out")
	// ErrRecordAuth is a transport record that fails authentication. It is
	// fatal to the link.
	ErrRecordAuth = errors.New("secure: record failed authentication")
	// ErrRecordTruncated is a link that ended in the middle of a record.
	ErrRecordTruncated = errors.New("secure: truncated record")
	// ErrRecordLength is a record shorter than its authentication tag.
	ErrRecordLength = errors.New("secure: bad record length")
	// ErrNonceLimit is a link that reached its record limit: it closes
	// rather than let a nonce wrap.
	ErrNonceLimit = errors.New("secure: nonce limit reached, link closed")
	// ErrConnClosed is returned by operations on a closed Conn.
	ErrConnClosed = errors.New("secure: use of closed connection")
)
