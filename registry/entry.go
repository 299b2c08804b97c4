package registry

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hydra-net/hydra/internal/netaddr"
	"unicode/utf8"
)

// Service is what a service registers: where it listens and how to talk to
// it.
type Service struct {
	// Name is what clients look up: 1 to 255 bytes of UTF-8, no
	// whitespace or control characters. Several instances share a name.
	Name string
	// Host is the host name or IP address clients connect to (an IPv6
	// address without brackets).
	Host string
	// Port is the port clients connect to, 1 to 65535.
	Port int
	// Proto is the protocol spoken there: tcp, udp, http, zmtp, ... (lower
	// case letters, digits, '+', '-', '.'; at most 32 bytes). Default "tcp".
	Proto string
	// Meta is free-form metadata, at most Config.MaxMetadataBytes in all
	// (keys plus values).
	Meta map[string]string
	// TTL is how long the entry lives without a heartbeat. Zero: the
	// server's default (Config.DefaultTTL); the server clamps nothing but
	// refuses a TTL outside [MinTTL, MaxTTL].
	TTL time.Duration
}

// Entry is one live instance of a service, as the server holds it.
type Entry struct {
	Service
	// Instance is the id the server assigned at register (or the client
	// proposed when registering again after a server restart).
	Instance string
	// Origin is the id of the server the entry was registered with. Join
	// and tunnel sharing carry entries between servers by it.
	Origin string
	// Version starts at 1 and grows by one with every change of the entry
	// at its origin (heartbeats do not change it). Of two copies of an
	// entry, the one with the higher version is the newer.
	Version uint64
	// Static entries come from the server's configuration: they never
	// expire and no client may change them.
	Static bool
}

// Addr returns host:port, ready for net.Dial.
func (e Entry) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// String returns proto://host:port.
func (e Entry) String() string { return e.Proto + "://" + e.Addr() }

// wireEntry is an Entry's JSON form (PROTOCOL.md, "Entries").
type wireEntry struct {
	Name     string            `json:"name"`
	Instance string            `json:"instance"`
	Host     string            `json:"host"`
	Port     int               `json:"port"`
	Proto    string            `json:"proto"`
	Meta     map[string]string `json:"meta,omitempty"`
	TTL      float64           `json:"ttl"`
	Origin   string            `json:"origin"`
	Version  uint64            `json:"version"`
	Static   bool              `json:"static,omitempty"`
}

// MarshalJSON encodes the entry as PROTOCOL.md describes (ttl in seconds).
func (e Entry) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireEntry{
		Name: e.Name, Instance: e.Instance, Host: e.Host, Port: e.Port, Proto: e.Proto,
		Meta: e.Meta, TTL: e.TTL.Seconds(), Origin: e.Origin, Version: e.Version, Static: e.Static,
	})
}

// UnmarshalJSON decodes the PROTOCOL.md form.
func (e *Entry) UnmarshalJSON(b []byte) error {
	var w wireEntry
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = Entry{
		Service: Service{Name: w.Name, Host: w.Host, Port: w.Port, Proto: w.Proto, Meta: w.Meta,
			TTL: secondsToDuration(w.TTL)},
		Instance: w.Instance, Origin: w.Origin, Version: w.Version, Static: w.Static,
	}
	return nil
}

func secondsToDuration(s float64) time.Duration {
	if math.IsNaN(s) || s <= 0 {
		return 0
	}
	if s > float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

// Fixed limits of the data model (the configurable ones are in Config).
const (
	MaxNameLen      = 255 // bytes of a service name
	MaxHostLen      = 255 // bytes of a host
	MaxProtoLen     = 32  // bytes of a protocol name
	MaxMetaKeyLen   = 128 // bytes of one metadata key
	MaxIDLen        = 64  // bytes of an instance or watch id
	MinTokenLen     = 16  // bytes of a client-chosen token
	MaxTokenLen     = 128 // bytes of a token
	DefaultProto    = "tcp"
	maxRequestIDLen = 128 // bytes of a request's raw JSON "id"
)

// checkText validates a name-like field: non-empty, at most max bytes,
// valid UTF-8, no whitespace or control characters.
func checkText(field, s string, max int) *Error {
	if s == "" {
		return badRequest("%s is missing or empty", field)
	}
	if len(s) > max {
		return badRequest("%s is %d bytes long, the limit is %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return badRequest("%s is not valid UTF-8", field)
	}
	for i, r := range s {
		if r == utf8.RuneError {
			return badRequest("%s %s holds U+FFFD (the replacement character, or invalid UTF-8) at byte %d", field, quote(s), i)
		}
		if unicode.IsControl(r) {
			return badRequest("%s %s holds control character %U at byte %d", field, quote(s), r, i)
		}
		if unicode.IsSpace(r) {
			return badRequest("%s %s holds whitespace %U at byte %d", field, quote(s), r, i)
		}
	}
	return nil
}

// CheckName reports whether s is a valid service name: 1 to MaxNameLen
// bytes of UTF-8 without whitespace or control characters.
func CheckName(s string) error {
	if err := checkName(s); err != nil {
		return err
	}
	return nil
}

func checkName(s string) *Error { return checkText("name", s, MaxNameLen) }

func checkHost(s string) *Error {
	if err := checkText("host", s, MaxHostLen); err != nil {
		return err
	}
	if strings.ContainsAny(s, "/[]") {
		return badRequest("host %s must be a host name or an IP address, without scheme, brackets or port", quote(s))
	}
	if strings.Contains(s, ":") && !strings.Contains(s, "%") && net.ParseIP(s) == nil {
		return badRequest("host %s is not an IPv6 address; give the port in \"port\", not in \"host\"", quote(s))
	}
	// Clients pass hosts to dialers and shells ("ssh $host"): only names
	// and IP literals, never "-oProxyCommand=…", "$(…)" or "a;b".
	if err := netaddr.CheckHost(s); err != nil {
		return badRequest("%v (want letters, digits, '-', '_' and dots, or an IP literal)", err)
	}
	return nil
}

func checkProto(s string) *Error {
	if len(s) > MaxProtoLen {
		return badRequest("proto is %d bytes long, the limit is %d", len(s), MaxProtoLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')
		if !ok {
			return badRequest("proto %s: want lower-case letters, then letters, digits, '+', '-' or '.'", quote(s))
		}
	}
	return nil
}

func checkPort(p int64) *Error {
	if p < 1 || p > 65535 {
		return badRequest("port %d out of range 1-65535", p)
	}
	return nil
}

func checkMeta(m map[string]string, maxBytes int) *Error {
	n := 0
	for k, v := range m {
		if err := checkText("meta key", k, MaxMetaKeyLen); err != nil {
			return err
		}
		if !utf8.ValidString(v) {
			return badRequest("meta value of %s is not valid UTF-8", quote(k))
		}
		n += len(k) + len(v)
	}
	if n > maxBytes {
		return &Error{Code: CodeBadRequest, Message: fmt.Sprintf("metadata is %d bytes (keys plus values), the limit is %d", n, maxBytes)}
	}
	return nil
}

// checkID validates an instance or watch id: 1 to 64 bytes of
// [A-Za-z0-9._-].
func checkID(field, s string) *Error {
	if s == "" {
		return badRequest("%s is missing or empty", field)
	}
	if len(s) > MaxIDLen {
		return badRequest("%s is %d bytes long, the limit is %d", field, len(s), MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			return badRequest("%s %s: want letters, digits, '.', '_' or '-'", field, quote(s))
		}
	}
	return nil
}

func checkToken(s string) *Error {
	if len(s) < MinTokenLen || len(s) > MaxTokenLen {
		return badRequest("token must be %d to %d bytes, got %d", MinTokenLen, MaxTokenLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !idByte(c) || c == '.' {
			return badRequest("token: want letters, digits, '_' or '-'")
		}
	}
	return nil
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// quote quotes s for an error message, shortened to 64 bytes.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}
