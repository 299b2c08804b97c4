package zmtp

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Frame flag bits (spec 23, "Framing").
const (
	FlagMore    byte = 0x01 // another frame of the same message follows
	FlagLong    byte = 0x02 // the size field is 8 bytes, not 1
	FlagCommand byte = 0x04 // the frame is a command, not message data

	flagReserved byte = 0xF8
)

// MaxFrameHeader is the largest frame header: flags plus an 8-byte size.
const MaxFrameHeader = 9

// ParseFrameHeader decodes the frame header at the start of b: the flags
// byte and the body size, and the header's length n. It returns
// io.ErrUnexpectedEOF when b holds only part of a header, ErrBadFlags for
// reserved bits, and ErrFrameTooLarge (before anything is allocated) when
// the size exceeds max.
func ParseFrameHeader(b []byte, max int64) (flags byte, size int64, n int, err error) {
	if len(b) < 2 {
		return 0, 0, 0, io.ErrUnexpectedEOF
	}
	flags = b[0]
	if flags&flagReserved != 0 {
		return 0, 0, 0, fmt.Errorf("%w: flags 0x%02x", ErrBadFlags, flags)
	}
	if flags&FlagLong == 0 {
		size, n = int64(b[1]), 2
	} else {
		if len(b) < 9 {
			return 0, 0, 0, io.ErrUnexpectedEOF
		}
		u := binary.BigEndian.Uint64(b[1:9])
		if u > math.MaxInt64 || int64(u) > max { // uint64(max) wraps for max < 0
			return 0, 0, 0, fmt.Errorf("%w: %d bytes announced, limit %d", ErrFrameTooLarge, u, max)
		}
		size, n = int64(u), 9
	}
	if size > max {
		return 0, 0, 0, fmt.Errorf("%w: %d bytes announced, limit %d", ErrFrameTooLarge, size, max)
	}
	return flags, size, n, nil
}

// AppendFrameHeader appends the header of a frame with the given flags
// (FlagMore and FlagCommand; FlagLong is set from size) and body size.
func AppendFrameHeader(dst []byte, flags byte, size int) []byte {
	flags &^= FlagLong
	if size <= 255 {
		return append(dst, flags, byte(size))
	}
	return binary.BigEndian.AppendUint64(append(dst, flags|FlagLong), uint64(size))
}

// AppendFrame appends one whole frame, header and body.
func AppendFrame(dst []byte, flags byte, body []byte) []byte {
	return append(AppendFrameHeader(dst, flags, len(body)), body...)
}

// AppendMessage appends the frames of a multipart message, FlagMore set on
// all but the last.
func AppendMessage(dst []byte, frames [][]byte) []byte {
	for i, f := range frames {
		var flags byte
		if i < len(frames)-1 {
			flags = FlagMore
		}
		dst = AppendFrame(dst, flags, f)
	}
	return dst
}
