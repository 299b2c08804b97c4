package zmtp

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Command names of ZMTP 3.x (spec 23 and 37). CURVE adds its own.
const (
	CmdReady     = "READY"
	CmdError     = "ERROR"
	CmdPing      = "PING"
	CmdPong      = "PONG"
	CmdSubscribe = "SUBSCRIBE"
	CmdCancel    = "CANCEL"
)

// Command is a decoded command frame: a name of 1 to 255 bytes and a body.
type Command struct {
	Name string
	Body []byte
}

// ParseCommand decodes the body of a command frame. Body aliases b.
func ParseCommand(b []byte) (Command, error) {
	if len(b) < 1 || b[0] == 0 || int(b[0]) > len(b)-1 {
		return Command{}, fmt.Errorf("%w: name length in % x", ErrBadCommand, head(b))
	}
	n := int(b[0])
	return Command{Name: string(b[1 : 1+n]), Body: b[1+n:]}, nil
}

// AppendCommandBody appends the body of a command frame (name length, name,
// data), without the frame header.
func AppendCommandBody(dst []byte, name string, data []byte) []byte {
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	return append(dst, data...)
}

// AppendCommand appends a whole command frame.
func AppendCommand(dst []byte, name string, data []byte) []byte {
	dst = AppendFrameHeader(dst, FlagCommand, 1+len(name)+len(data))
	return AppendCommandBody(dst, name, data)
}

// Property is one metadata name/value pair of a READY or INITIATE command.
type Property struct {
	Name  string
	Value []byte
}

// Metadata is a list of properties in wire order. Names compare
// case-insensitively.
type Metadata []Property

// Standard property names.
const (
	PropSocketType = "Socket-Type"
	PropIdentity   = "Identity"
	PropRoutingID  = "Routing-Id"
	PropUserID     = "User-Id"
)

// Get returns the value of the first property called name (any case).
func (m Metadata) Get(name string) ([]byte, bool) {
	for _, p := range m {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return nil, false
}

// AppendMetadata appends the wire encoding of m: for each property a 1-byte
// name length, the name, a 4-byte big-endian value length and the value.
func AppendMetadata(dst []byte, m Metadata) []byte {
	for _, p := range m {
		dst = append(dst, byte(len(p.Name)))
		dst = append(dst, p.Name...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(p.Value)))
		dst = append(dst, p.Value...)
	}
	return dst
}

// validPropertyName reports whether name is 1 to 255 characters from
// [A-Za-z0-9-_.+], as spec 37 requires of metadata names.
func validPropertyName[T string | []byte](name T) bool {
	if len(name) == 0 || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '+') {
			return false
		}
	}
	return true
}

// ParseMetadata decodes a metadata block. Every length is checked against
// what remains of b before use, so no input allocates more than len(b).
// Values alias b.
func ParseMetadata(b []byte) (Metadata, error) {
	var m Metadata
	for off := 0; off < len(b); {
		nl := int(b[off])
		off++
		if nl == 0 || nl > len(b)-off {
			return nil, fmt.Errorf("%w: name length %d at offset %d of %d", ErrBadMetadata, nl, off-1, len(b))
		}
		name := b[off : off+nl]
		if !validPropertyName(name) {
			return nil, fmt.Errorf("%w: property name %q", ErrBadMetadata, name)
		}
		off += nl
		if len(b)-off < 4 {
			return nil, fmt.Errorf("%w: truncated value length of %q", ErrBadMetadata, name)
		}
		vl := binary.BigEndian.Uint32(b[off:])
		off += 4
		if uint64(vl) > uint64(len(b)-off) {
			return nil, fmt.Errorf("%w: value of %q announces %d bytes, %d left", ErrBadMetadata, name, vl, len(b)-off)
		}
		m = append(m, Property{Name: string(name), Value: b[off : off+int(vl) : off+int(vl)]})
		off += int(vl)
	}
	return m, nil
}

// ParseError decodes the body of an ERROR command: a 1-byte length and a
// reason.
func ParseError(body []byte) (string, error) {
	if len(body) < 1 || int(body[0]) != len(body)-1 {
		return "", fmt.Errorf("%w: ERROR body % x", ErrBadCommand, head(body))
	}
	return string(body[1:]), nil
}

// AppendErrorBody appends an ERROR command's body; reasons longer than 255
// bytes are cut.
func AppendErrorBody(dst []byte, reason string) []byte {
	if len(reason) > 255 {
		reason = reason[:255]
	}
	return append(append(dst, byte(len(reason))), reason...)
}

// Ping is the body of a PING command (ZMTP 3.1): the time to live the sender
// asks for, in tenths of a second, and up to 16 bytes of context the PONG
// echoes.
type Ping struct {
	TTL     uint16
	Context []byte
}

// ParsePing decodes a PING body.
func ParsePing(body []byte) (Ping, error) {
	if len(body) < 2 || len(body) > 2+16 {
		return Ping{}, fmt.Errorf("%w: PING body of %d bytes", ErrBadCommand, len(body))
	}
	return Ping{TTL: binary.BigEndian.Uint16(body), Context: body[2:]}, nil
}

// head returns at most the first 16 bytes of b, for error messages.
func head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}
