package noise

import "errors"

// Sentinel errors; callers branch on them with errors.Is. A peer static
// key the Authorizer refuses is secure.ErrUnauthorized.
var (
	// ErrPreamble is a tunnel connection that did not start with the
	// Hydra Noise preamble (garbage, a wrong version or an unknown suite).
	ErrPreamble = errors.New("noise: bad tunnel preamble")
	// ErrHandshake is a handshake message that failed to decrypt, has the
	// wrong length or came out of turn.
	ErrHandshake = errors.New("noise: handshake failed")
	// ErrRateLimited is a handshake refused because its source address
	// started too many recently.
	ErrRateLimited = errors.New("noise: handshake rate limit exceeded")
	// ErrHandshakeTimeout is a handshake that did not finish within the
	// handshake deadline.
	ErrHandshakeTimeout = errors.New("noise: handshake timed out")
	// ErrRecordAuth is a transport record that fails authentication. It is
	// fatal to the link.
	ErrRecordAuth = errors.New("noise: record failed authentication")
	// ErrRecordTruncated is a link that ended in the middle of a record.
	ErrRecordTruncated = errors.New("noise: truncated record")
	// ErrRecordStalled is a record that did not arrive within
	// Config.RecordTimeout of its first byte. It is fatal to the link.
	ErrRecordStalled = errors.New("noise: record stalled")
	// ErrEvicted is a handshake whose slot went to a newcomer from a
	// source running fewer (Config.MaxHandshakes).
	ErrEvicted = errors.New("noise: handshake evicted for a newcomer")
	// ErrRecordLength is a record shorter than its authentication tag.
	ErrRecordLength = errors.New("noise: bad record length")
	// ErrNonceLimit is a link that reached its record limit: it closes
	// rather than let a nonce wrap.
	ErrNonceLimit = errors.New("noise: nonce limit reached, link closed")
	// ErrConnClosed is returned by operations on a closed Conn.
	ErrConnClosed = errors.New("noise: use of closed connection")
)
