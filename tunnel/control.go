package tunnel

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hydra-net/hydra/registry"
)

// The control stream (PROTOCOL.md, "Tunnels"): a mux stream whose header
// names ControlTarget, carrying frames both ways, each a 4-byte big-endian
// length and a JSON object whose "t" names its type:
//
//	{"t":"hello","v":1,"server":"<server id>"}   Hello, first, from each side
//	{"t":"services","entries":[{...}, ...]}      Services: the sender's whole shared set
//	{"t":"bye"}                                  Bye: the sender is shutting down
//	{"t":"refused","reason":"..."}               Refused: the sender does not allow our key
//
// A side sends Services after its Hello and again whenever its set
// changes (debounced); each replaces the previous one. A side that shuts
// down sends Bye and closes: the other withdraws its services at once
// instead of waiting for the liveness timeout. A responder sends Refused,
// and nothing else, to a key its allow-list does not hold (or no longer
// holds, after a reload), and closes: the dialler learns why, over the
// authenticated session, and backs off. Join's messages
// carry per-origin sequence numbers, digests and beats for a mesh of
// servers; a tunnel links exactly two servers over one session whose
// liveness mux already judges, so a whole-set message is all it needs.
// Types a side does not know parse as Unknown and are ignored, for later
// versions.

// Stream targets and the protocol version.
const (
	// ControlTarget is the stream header target reserved for the control
	// stream; proxied streams name TargetPrefix + instance, so nothing
	// collides.
	ControlTarget = "hydra.ctl"
	// TargetPrefix starts the target of a proxied stream; the instance id
	// of the shared entry follows.
	TargetPrefix = "svc:"
	// ControlVersion is the control protocol's version, sent in Hello.
	ControlVersion = 1
	// MaxMessageSize bounds one control frame's JSON body.
	MaxMessageSize = 4 << 20
)

// Message types, the "t" of each frame.
const (
	TypeHello    = "hello"
	TypeServices = "services"
	TypeBye      = "bye"
	TypeRefused  = "refused"
)

// ErrBadMessage is wrapped by every error a malformed control frame gives.
var ErrBadMessage = errors.New("tunnel: bad control message")

// Message is one control message: Hello, Services, Bye, Refused or Unknown.
type Message interface {
	// Type is the message's "t".
	Type() string
	// Append appends the message as one frame: length, then JSON.
	Append(dst []byte) []byte
}

// Hello opens each side's half of the control stream.
type Hello struct {
	Version int    // the sender's protocol version, at least 1
	Server  string // the sender's server id
}

// Services is the sender's whole shared set; it replaces the last one.
type Services struct {
	Entries []Shared
}

// Bye says the sender is shutting down: withdraw its services now.
type Bye struct{}

// Refused says the sender does not allow the receiver's key; the session
// then ends.
type Refused struct {
	Reason string // for the receiver's log, at most MaxReasonBytes
}

// MaxReasonBytes bounds Refused's reason.
const MaxReasonBytes = 256

// Unknown is a message of a type this side does not know; it is ignored.
type Unknown struct {
	T string
}

// Shared is a service as the far side sees it: no host or port (the far
// side reaches it through the tunnel, by Instance).
type Shared struct {
	Name     string            `json:"name"`
	Instance string            `json:"instance"`
	Proto    string            `json:"proto"`
	Meta     map[string]string `json:"meta,omitempty"`
	Origin   string            `json:"origin"`
	Version  uint64            `json:"version"`
}

func (Hello) Type() string     { return TypeHello }
func (Services) Type() string  { return TypeServices }
func (Bye) Type() string       { return TypeBye }
func (Refused) Type() string   { return TypeRefused }
func (u Unknown) Type() string { return u.T }
func (h Hello) Append(dst []byte) []byte {
	return appendFrame(dst, struct {
		T      string `json:"t"`
		V      int    `json:"v,omitempty"`
		Server string `json:"server,omitempty"`
	}{TypeHello, h.Version, h.Server})
}

func (s Services) Append(dst []byte) []byte {
	return appendFrame(dst, struct {
		T       string   `json:"t"`
		Entries []Shared `json:"entries,omitempty"`
	}{TypeServices, s.Entries})
}

func (Bye) Append(dst []byte) []byte {
	return appendFrame(dst, struct {
		T string `json:"t"`
	}{TypeBye})
}

func (r Refused) Append(dst []byte) []byte {
	return appendFrame(dst, struct {
		T      string `json:"t"`
		Reason string `json:"reason,omitempty"`
	}{TypeRefused, r.Reason})
}

func (u Unknown) Append(dst []byte) []byte {
	return appendFrame(dst, struct {
		T string `json:"t"`
	}{u.T})
}

// appendFrame appends v's JSON with its length before it. The values
// marshalled here hold only strings, numbers and string maps, which
// encoding/json always encodes; a body above MaxMessageSize is the
// sender's to refuse (see checkSize).
func appendFrame(dst []byte, v any) []byte {
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	body, _ := json.Marshal(v)
	dst = append(dst, body...)
	binary.BigEndian.PutUint32(dst[at:], uint32(len(body)))
	return dst
}

// checkSize reports a frame whose body is beyond MaxMessageSize, which
// the far side would refuse.
func checkSize(frame []byte) error {
	if n := len(frame) - 4; n > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBadMessage, n, MaxMessageSize)
	}
	return nil
}

// ParseMessage decodes the frame at the start of b and returns it and the
// frame's length. Input shorter than the frame gives io.ErrUnexpectedEOF;
// a length of 0 or beyond MaxMessageSize is refused before the body is
// awaited. Every entry's fields are checked as a registration's are,
// except the metadata's total size, which the receiver bounds.
func ParseMessage(b []byte) (Message, int, error) {
	if len(b) < 4 {
		return nil, 0, io.ErrUnexpectedEOF
	}
	n := binary.BigEndian.Uint32(b)
	if n == 0 || n > MaxMessageSize {
		return nil, 0, fmt.Errorf("%w: frame of %d bytes (1 to %d)", ErrBadMessage, n, MaxMessageSize)
	}
	if uint64(len(b)) < 4+uint64(n) {
		return nil, 0, io.ErrUnexpectedEOF
	}
	m, err := parseBody(b[4 : 4+n])
	if err != nil {
		return nil, 0, err
	}
	return m, 4 + int(n), nil
}

func parseBody(b []byte) (Message, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object: %s", ErrBadMessage, quote(string(b[:min(len(b), 64)])))
	}
	var head struct {
		T string `json:"t"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	switch head.T {
	case "":
		return nil, fmt.Errorf("%w: no type (\"t\")", ErrBadMessage)
	case TypeHello:
		var w struct {
			V      int    `json:"v"`
			Server string `json:"server"`
		}
		if err := json.Unmarshal(b, &w); err != nil {
			return nil, fmt.Errorf("%w: hello: %v", ErrBadMessage, err)
		}
		if w.V < 1 || registry.CheckID("server", w.Server) != nil {
			return nil, fmt.Errorf("%w: hello: version %d, server %s", ErrBadMessage, w.V, quote(w.Server))
		}
		return Hello{Version: w.V, Server: w.Server}, nil
	case TypeServices:
		var w struct {
			Entries []Shared `json:"entries"`
		}
		if err := json.Unmarshal(b, &w); err != nil {
			return nil, fmt.Errorf("%w: services: %v", ErrBadMessage, err)
		}
		for i := range w.Entries {
			if err := w.Entries[i].check(); err != nil {
				return nil, fmt.Errorf("%w: entry %d: %s", ErrBadMessage, i, reason(err))
			}
		}
		if len(w.Entries) == 0 {
			w.Entries = nil // as Append leaves it out
		}
		return Services{Entries: w.Entries}, nil
	case TypeBye:
		return Bye{}, nil
	case TypeRefused:
		var w struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(b, &w); err != nil {
			return nil, fmt.Errorf("%w: refused: %v", ErrBadMessage, err)
		}
		if len(w.Reason) > MaxReasonBytes || !utf8.ValidString(w.Reason) || strings.ContainsFunc(w.Reason, unicode.IsControl) {
			return nil, fmt.Errorf("%w: refused: reason of %d bytes, not printable text of at most %d", ErrBadMessage, len(w.Reason), MaxReasonBytes)
		}
		return Refused{Reason: w.Reason}, nil
	}
	return Unknown{T: head.T}, nil
}

// check validates e's fields, filling in the default proto.
func (e *Shared) check() error {
	if e.Proto == "" {
		e.Proto = registry.DefaultProto
	}
	if len(e.Meta) == 0 {
		e.Meta = nil // as Append leaves it out
	}
	if err := registry.CheckName(e.Name); err != nil {
		return err
	}
	if err := registry.CheckID("instance", e.Instance); err != nil {
		return err
	}
	if err := registry.CheckProto(e.Proto); err != nil {
		return err
	}
	// The receiver bounds the total (Config.MaxMetadataBytes); the frame
	// bounds it here.
	if err := registry.CheckMeta(e.Meta, MaxMessageSize); err != nil {
		return err
	}
	if e.Origin != "" {
		return registry.CheckID("origin", e.Origin)
	}
	return nil
}

// reason is what a registry check says is wrong, without its prefix.
func reason(err error) string {
	var re *registry.Error
	if errors.As(err, &re) && re.Message != "" {
		return re.Message
	}
	return err.Error()
}

// metaBytes is what Config.MaxMetadataBytes bounds: keys plus values.
func metaBytes(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	return n
}

// readFrame reads one whole frame (length and body) from r into buf,
// checking the length before reading the body.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	buf = append(buf[:0], 0, 0, 0, 0)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(buf)
	if n == 0 || n > MaxMessageSize {
		return nil, fmt.Errorf("%w: frame of %d bytes (1 to %d)", ErrBadMessage, n, MaxMessageSize)
	}
	if cap(buf) < 4+int(n) {
		buf = append(make([]byte, 0, 4+int(n)), buf...)
	}
	buf = buf[:4+int(n)]
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// quote quotes s for an error message, shortened to 64 bytes.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}
