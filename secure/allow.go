package secure

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Authorizer decides whether a peer's static public key may connect. The
// CURVE server asks it about each client key (after INITIATE proved the
// client holds the key), the Noise responder and initiator about the
// other side's static key. It must be safe for concurrent use.
type Authorizer interface {
	Authorize(peer PublicKey) bool
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(PublicKey) bool

// Authorize calls f.
func (f AuthorizerFunc) Authorize(k PublicKey) bool { return f(k) }

// AllowAny returns the Authorizer that accepts every key. It has to be
// asked for by name: a nil Authorizer refuses everyone. With it, CURVE
// and Noise still encrypt and still prove that the peer holds the key it
// presents, but anyone with any key pair gets in.
func AllowAny() Authorizer { return allowAny{} }

type allowAny struct{}

func (allowAny) Authorize(PublicKey) bool { return true }
func (allowAny) String() string           { return "allow-any" }

// Authorized asks a about k, nil-safe: a nil Authorizer refuses every
// key, which is what the mechanisms and the Noise handshake rely on.
func Authorized(a Authorizer, k PublicKey) bool { return a != nil && a.Authorize(k) }

// AllowList is an Authorizer holding a set of public keys, optionally
// backed by a file that Reload re-reads (on SIGHUP, say). Lookups never
// block on a reload: the set is swapped atomically.
type AllowList struct {
	path   string
	keys   atomic.Pointer[map[PublicKey]struct{}]
	reload sync.Mutex
}

// NewAllowList returns an allow-list of the given keys, not backed by a
// file.
func NewAllowList(keys ...PublicKey) *AllowList {
	a := &AllowList{}
	a.Set(keys...)
	return a
}

// LoadAllowList reads an allow-list file: one Z85 public key a line
// (40 characters), blank lines and comments allowed, or the content of
// keygen's KEY.pub files (see ParseAllowList). A line whose first
// non-blank character is '#' is a comment; after a key, whitespace and a
// '#' start a comment ("KEY  # alice"). ('#' is a Z85 character, but no
// key starts with it: a 5-character group starting with '#' exceeds 32
// bits.) Any other line is an error naming its line number, and nothing
// is loaded then.
func LoadAllowList(path string) (*AllowList, error) {
	a := &AllowList{path: path}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload re-reads the file the list was loaded from. On error the current
// keys stay in force and the error says why (the caller logs it).
func (a *AllowList) Reload() error {
	if a.path == "" {
		return fmt.Errorf("secure: allow-list has no file to reload")
	}
	a.reload.Lock()
	defer a.reload.Unlock()
	f, err := os.Open(a.path)
	if err != nil {
		return fmt.Errorf("secure: allow-list: %w", err)
	}
	defer f.Close()
	keys, err := ParseAllowList(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return fmt.Errorf("%s: %w", a.path, err)
	}
	a.Set(keys...)
	return nil
}

// Path returns the file behind the list, "" if none.
func (a *AllowList) Path() string { return a.path }

// Set replaces the keys.
func (a *AllowList) Set(keys ...PublicKey) {
	m := make(map[PublicKey]struct{}, len(keys))
	for _, k := range keys {
		m[k] = struct{}{}
	}
	a.keys.Store(&m)
}

// Authorize reports whether k is on the list. Public keys are not secret,
// so a map lookup (not constant time) is fine here.
func (a *AllowList) Authorize(k PublicKey) bool {
	m := a.keys.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[k]
	return ok
}

// Len returns the number of keys.
func (a *AllowList) Len() int {
	if m := a.keys.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// Keys returns the keys, sorted by their Z85 form.
func (a *AllowList) Keys() []PublicKey {
	m := a.keys.Load()
	if m == nil {
		return nil
	}
	ks := make([]PublicKey, 0, len(*m))
	for k := range *m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(x, y PublicKey) int { return strings.Compare(x.String(), y.String()) })
	return ks
}

// ParseAllowList parses allow-list text (see LoadAllowList). The content
// of a public certificate (the KEY.pub keygen writes, zcert format) may be
// pasted in too: after a "metadata" or "curve" section line, its
// `public-key = "..."` line is a key and other `name = value` lines are
// ignored; a `secret-key` line is an error (a secret key file's content
// does not belong in an allow-list).
func ParseAllowList(r io.Reader) ([]PublicKey, error) {
	var keys []PublicKey
	inCert := false
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) == 1 && (fields[0] == "metadata" || fields[0] == "curve") {
			inCert = true
			continue
		}
		if inCert {
			if name, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
				switch strings.TrimSpace(name) {
				case "public-key":
					value = strings.Trim(strings.TrimSpace(value), "\"'")
					k, err := ParsePublicKey(value)
					if err != nil {
						return nil, fmt.Errorf("%w: line %d: public-key %q is not a Z85 public key: %w", ErrKeyFile, line, clip(value), err)
					}
					keys = append(keys, k)
					continue
				case "secret-key":
					return nil, fmt.Errorf("%w: line %d: a secret-key: an allow-list takes public keys (the KEY.pub file), never a secret key file", ErrKeyFile, line)
				default:
					if _, err := ParsePublicKey(fields[0]); err != nil {
						continue // zcert metadata
					}
				}
			}
		}
		k, err := ParsePublicKey(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %q is not a Z85 public key: %w", ErrKeyFile, line, clip(fields[0]), err)
		}
		if len(fields) > 1 && !strings.HasPrefix(fields[1], "#") {
			return nil, fmt.Errorf("%w: line %d: text after the key must be a comment starting with '#'", ErrKeyFile, line)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	return keys, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 48 {
		return s[:48] + "…"
	}
	return s
}
