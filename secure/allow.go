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
//
// A servers' list (LoadServerList, NewServerList) also holds each
// server's signing key (join checks the records of an origin with it,
// TrustsSigner): there every key needs one, and a line without is an
// error.
type AllowList struct {
	path    string
	servers bool // every key needs its signing key (LoadServerList)
	set     atomic.Pointer[keySet]
	reload  sync.Mutex
}

// keySet is one version of a list's content, swapped whole.
type keySet struct {
	keys    map[PublicKey]ListedKey
	signers map[SignPublicKey]struct{}
}

// ListedKey is one key of an allow-list: a Curve25519 public key and,
// when its line gave one, that server's Ed25519 signing key.
type ListedKey struct {
	Key     PublicKey
	Sign    SignPublicKey
	HasSign bool
	Line    int // the line it was read from, 0 if not from text
}

// NewAllowList returns an allow-list of the given keys, not backed by a
// file.
func NewAllowList(keys ...PublicKey) *AllowList {
	a := &AllowList{}
	a.Set(keys...)
	return a
}

// NewServerList returns a servers' list of the given keys (each with its
// signing key), not backed by a file.
func NewServerList(keys ...ListedKey) *AllowList {
	a := &AllowList{servers: true}
	a.SetListed(keys...)
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

// LoadServerList reads a servers' list file: like LoadAllowList, but each
// key comes with the server's signing key, either as the content of its
// KEY.pub (public-key and sign-key lines) or as a line
// "CURVEZ85 SIGNZ85". A key without a signing key is an error naming the
// file and the line, and nothing is loaded then.
func LoadServerList(path string) (*AllowList, error) {
	a := &AllowList{path: path, servers: true}
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
	keys, err := ParseKeyList(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return fmt.Errorf("%s: %w", a.path, err)
	}
	if a.servers {
		if err := needSignKeys(keys); err != nil {
			return fmt.Errorf("%s: %w", a.path, err)
		}
	}
	a.SetListed(keys...)
	return nil
}

// needSignKeys is the servers' list rule: each key has its signing key.
func needSignKeys(keys []ListedKey) error {
	for _, k := range keys {
		if !k.HasSign {
			return fmt.Errorf("%w: line %d: server key %s has no signing key: a servers' list needs both: paste the server's KEY.pub with its sign-key line (an older KEY.pub lacks it: 'hydra-server keygen --public KEY' on that server writes it again) or write \"CURVEKEY SIGNKEY\" on the line", ErrKeyFile, k.Line, k.Key)
		}
	}
	return nil
}

// Path returns the file behind the list, "" if none.
func (a *AllowList) Path() string { return a.path }

// Servers reports whether this is a servers' list (signing keys required).
func (a *AllowList) Servers() bool { return a.servers }

// Set replaces the keys (without signing keys).
func (a *AllowList) Set(keys ...PublicKey) {
	l := make([]ListedKey, len(keys))
	for i, k := range keys {
		l[i] = ListedKey{Key: k}
	}
	a.SetListed(l...)
}

// SetListed replaces the keys, with their signing keys. A key listed
// twice keeps the last signing key given.
func (a *AllowList) SetListed(keys ...ListedKey) {
	s := &keySet{keys: make(map[PublicKey]ListedKey, len(keys)), signers: map[SignPublicKey]struct{}{}}
	for _, k := range keys {
		s.keys[k.Key] = k
	}
	for _, k := range s.keys {
		if k.HasSign {
			s.signers[k.Sign] = struct{}{}
		}
	}
	a.set.Store(s)
}

// Authorize reports whether k is on the list. Public keys are not secret,
// so a map lookup (not constant time) is fine here.
func (a *AllowList) Authorize(k PublicKey) bool {
	s := a.set.Load()
	if s == nil {
		return false
	}
	_, ok := s.keys[k]
	return ok
}

// TrustsSigner reports whether k is the signing key of a server on the
// list: join accepts an origin's records only signed by such a key.
func (a *AllowList) TrustsSigner(k SignPublicKey) bool {
	s := a.set.Load()
	if s == nil {
		return false
	}
	_, ok := s.signers[k]
	return ok
}

// SignKey returns the signing key listed with k.
func (a *AllowList) SignKey(k PublicKey) (SignPublicKey, bool) {
	s := a.set.Load()
	if s == nil {
		return SignPublicKey{}, false
	}
	l, ok := s.keys[k]
	return l.Sign, ok && l.HasSign
}

// Len returns the number of keys.
func (a *AllowList) Len() int {
	if s := a.set.Load(); s != nil {
		return len(s.keys)
	}
	return 0
}

// Keys returns the keys, sorted by their Z85 form.
func (a *AllowList) Keys() []PublicKey {
	s := a.set.Load()
	if s == nil {
		return nil
	}
	ks := make([]PublicKey, 0, len(s.keys))
	for k := range s.keys {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(x, y PublicKey) int { return strings.Compare(x.String(), y.String()) })
	return ks
}

// ParseAllowList parses allow-list text (see LoadAllowList) and returns
// its public keys; ParseKeyList gives their signing keys too.
func ParseAllowList(r io.Reader) ([]PublicKey, error) {
	l, err := ParseKeyList(r)
	if err != nil {
		return nil, err
	}
	keys := make([]PublicKey, len(l))
	for i, k := range l {
		keys[i] = k.Key
	}
	return keys, nil
}

// ParseKeyList parses allow-list text. A line is a comment, a Z85 public
// key, or a public key and a signing key ("CURVEZ85 SIGNZ85"), either
// followed by a comment. The content of a public certificate (the KEY.pub
// keygen writes, zcert format) may be pasted in too: after a "metadata"
// or "curve" section line, its `public-key = "..."` line is a key, its
// `sign-key = "..."` line that key's signing key, and other
// `name = value` lines are ignored; a `secret-key` line is an error (a
// secret key file's content does not belong in an allow-list).
func ParseKeyList(r io.Reader) ([]ListedKey, error) {
	var keys []ListedKey
	inCert := false
	certStart := 0             // index in keys of the current certificate's first key
	var pendingSign *ListedKey // a sign-key line before its certificate's public-key
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) == 1 && (fields[0] == "metadata" || fields[0] == "curve") {
			if fields[0] == "metadata" || !inCert {
				certStart, pendingSign = len(keys), nil // a new certificate
			}
			inCert = true
			continue
		}
		if inCert {
			if name, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
				value = strings.Trim(strings.TrimSpace(value), "\"'")
				switch strings.TrimSpace(name) {
				case "public-key":
					k, err := ParsePublicKey(value)
					if err != nil {
						return nil, fmt.Errorf("%w: line %d: public-key %q is not a Z85 public key: %w", ErrKeyFile, line, clip(value), err)
					}
					lk := ListedKey{Key: k, Line: line}
					if pendingSign != nil {
						lk.Sign, lk.HasSign, pendingSign = pendingSign.Sign, true, nil
					}
					keys = append(keys, lk)
					continue
				case "sign-key":
					sk, err := ParseSignPublicKey(value)
					if err != nil {
						return nil, fmt.Errorf("%w: line %d: sign-key %q is not a Z85 signing key: %w", ErrKeyFile, line, clip(value), err)
					}
					if n := len(keys); n > certStart && !keys[n-1].HasSign {
						keys[n-1].Sign, keys[n-1].HasSign = sk, true
					} else {
						pendingSign = &ListedKey{Sign: sk}
					}
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
		lk := ListedKey{Key: k, Line: line}
		rest := fields[1:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "#") {
			sk, err := ParseSignPublicKey(rest[0])
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: after the key, %q is neither a Z85 signing key nor a comment starting with '#': %w", ErrKeyFile, line, clip(rest[0]), err)
			}
			lk.Sign, lk.HasSign = sk, true
			rest = rest[1:]
		}
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "#") {
			return nil, fmt.Errorf("%w: line %d: text after the keys must be a comment starting with '#'", ErrKeyFile, line)
		}
		keys = append(keys, lk)
		certStart = len(keys) // a sign-key line never belongs to a bare key
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
