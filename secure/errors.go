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
	// ErrUnauthorized is a peer whose static key the Authorizer refused:
	// CURVE (zmtp/curve) and Noise (secure/noise) both wrap it.
	ErrUnauthorized = errors.New("secure: peer key not authorized")
)
