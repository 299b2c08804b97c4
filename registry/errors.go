package registry

import (
	"errors"
	"fmt"
)

// Error codes carried in the body of an ERR reply (see PROTOCOL.md).
const (
	// CodeBadRequest: the request is malformed (frames, JSON body, missing
	// or invalid fields, a port out of range, a name too long ...).
	CodeBadRequest = "bad_request"
	// CodeUnknownVerb: the verb frame names no operation.
	CodeUnknownVerb = "unknown_verb"
	// CodeBadVersion: the request asks for a protocol version this server
	// does not speak.
	CodeBadVersion = "bad_version"
	// CodeNotFound: the instance or watch does not exist (any more).
	CodeNotFound = "not_found"
	// CodeForbidden: the entry belongs to another client (another token),
	// or is static.
	CodeForbidden = "forbidden"
	// CodeLimit: a configured limit would be exceeded.
	CodeLimit = "limit"
)

// ErrUnreachable is a request that found no server: that of a
// ClientConfig.FailFast client whose attempt to connect failed, or one
// whose context ended while the connection attempts failed. The error
// wraps the cause too (a *net.OpError, a zmtp or curve handshake error).
var ErrUnreachable = errors.New("server unreachable")

// Error is a protocol error: the server's ERR reply, or one the client
// raises for the same reason. It matches the sentinels below by code with
// errors.Is.
type Error struct {
	Code    string // one of the Code* constants
	Message string // what exactly is wrong, for people
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "registry: " + e.Code
	}
	return "registry: " + e.Code + ": " + e.Message
}

// Is reports whether target is an *Error with the same code and either no
// message (a sentinel) or the same message.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Sentinels for errors.Is.
var (
	ErrBadRequest  = &Error{Code: CodeBadRequest}
	ErrUnknownVerb = &Error{Code: CodeUnknownVerb}
	ErrBadVersion  = &Error{Code: CodeBadVersion}
	ErrNotFound    = &Error{Code: CodeNotFound}
	ErrForbidden   = &Error{Code: CodeForbidden}
	ErrLimit       = &Error{Code: CodeLimit}
)

// ErrClosed is returned by a closed Client or Server.
var ErrClosed = errors.New("registry: closed")

// ErrNoInstances is returned by Pick and Dial when a name has no live
// instance.
var ErrNoInstances = errors.New("registry: no live instance")

func badRequest(format string, args ...any) *Error {
	return &Error{Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}
