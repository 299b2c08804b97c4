package zmtp

import (
	"bytes"
	"fmt"
	"io"
)

// GreetingSize is the length of a ZMTP 3.x greeting.
const GreetingSize = 64

// signatureSize is the part of the greeting sent before anything else: 0xFF,
// eight padding bytes, 0x7F. libzmq waits for it before sending the rest.
const signatureSize = 10

// Greeting is the fixed 64-byte preamble each side sends first.
type Greeting struct {
	Major, Minor byte
	Mechanism    string // "NULL", "PLAIN", "CURVE"; at most 20 bytes
	AsServer     bool
}

// AppendGreeting appends the 64-byte encoding of g.
func AppendGreeting(dst []byte, g Greeting) []byte {
	var b [GreetingSize]byte
	b[0] = 0xFF
	b[8] = 0x01 // padding; libzmq puts 1 here so ZMTP 1.0 peers read a length
	b[9] = 0x7F
	b[10], b[11] = g.Major, g.Minor
	copy(b[12:32], g.Mechanism)
	if g.AsServer {
		b[32] = 1
	}
	return append(dst, b[:]...)
}

// ParseGreeting decodes a 64-byte greeting. The padding and filler bytes are
// not checked: libzmq leaves non-zero bytes there. Versions below 3.0 are
// refused with ErrBadVersion.
func ParseGreeting(b []byte) (Greeting, error) {
	if len(b) < GreetingSize {
		return Greeting{}, io.ErrUnexpectedEOF
	}
	if err := checkSignature(b); err != nil {
		return Greeting{}, err
	}
	g := Greeting{Major: b[10], Minor: b[11], AsServer: b[32] == 1}
	if g.Major < 3 {
		return Greeting{}, fmt.Errorf("%w: %d.%d", ErrBadVersion, g.Major, g.Minor)
	}
	if b[32] > 1 {
		return Greeting{}, fmt.Errorf("%w: as-server byte 0x%02x", ErrHandshake, b[32])
	}
	mech := b[12:32]
	if i := bytes.IndexByte(mech, 0); i >= 0 {
		// Everything after the name must be padding.
		for _, c := range mech[i:] {
			if c != 0 {
				return Greeting{}, fmt.Errorf("%w: mechanism field %q", ErrMechanism, mech)
			}
		}
		mech = mech[:i]
	}
	for _, c := range mech {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '+') {
			return Greeting{}, fmt.Errorf("%w: mechanism name %q", ErrMechanism, mech)
		}
	}
	g.Mechanism = string(mech)
	return g, nil
}

func checkSignature(b []byte) error {
	if b[0] != 0xFF || b[9]&0x01 != 0x01 {
		return fmt.Errorf("%w: % x", ErrBadSignature, b[:signatureSize])
	}
	return nil
}
