package secure

import (
	"encoding/binary"
	"fmt"
)

// z85Alphabet is the Z85 alphabet of rfc.zeromq.org spec 32, the encoding
// libzmq uses for CURVE keys (zmq_z85_encode, zmq_curve_keypair).
const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// z85Decoder maps a byte to its Z85 digit value, 0xFF for bytes outside the
// alphabet.
var z85Decoder = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for i := 0; i < len(z85Alphabet); i++ {
		t[z85Alphabet[i]] = byte(i)
	}
	return t
}()

// Z85Encode encodes src, whose length must be a multiple of 4, as Z85
// (spec 32): every 4 bytes, read big-endian, become 5 characters. It is
// byte-for-byte what libzmq's zmq_z85_encode produces.
func Z85Encode(src []byte) (string, error) {
	if len(src)%4 != 0 {
		return "", fmt.Errorf("%w: Z85 encodes multiples of 4 bytes, got %d", ErrZ85, len(src))
	}
	return string(AppendZ85(make([]byte, 0, len(src)/4*5), src)), nil
}

// AppendZ85 appends the Z85 encoding of src to dst. len(src) must be a
// multiple of 4; a trailing partial group is ignored.
func AppendZ85(dst, src []byte) []byte {
	for ; len(src) >= 4; src = src[4:] {
		v := binary.BigEndian.Uint32(src)
		var g [5]byte
		for i := 4; i >= 0; i-- {
			g[i] = z85Alphabet[v%85]
			v /= 85
		}
		dst = append(dst, g[:]...)
	}
	return dst
}

// Z85Decode decodes a Z85 string, whose length must be a multiple of 5. Like
// libzmq's zmq_z85_decode it rejects characters outside the alphabet and
// groups whose value exceeds 2^32-1.
func Z85Decode(s string) ([]byte, error) {
	if len(s)%5 != 0 {
		return nil, fmt.Errorf("%w: Z85 decodes multiples of 5 characters, got %d", ErrZ85, len(s))
	}
	out := make([]byte, 0, len(s)/5*4)
	for i := 0; i < len(s); i += 5 {
		var v uint64
		for j := i; j < i+5; j++ {
			d := z85Decoder[s[j]]
			if d == 0xFF {
				return nil, fmt.Errorf("%w: byte 0x%02x at offset %d is not a Z85 character", ErrZ85, s[j], j)
			}
			v = v*85 + uint64(d)
		}
		if v > 0xFFFFFFFF {
			return nil, fmt.Errorf("%w: group %q at offset %d exceeds 32 bits", ErrZ85, s[i:i+5], i)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(v))
	}
	return out, nil
}
