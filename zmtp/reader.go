package zmtp

import (
	"fmt"
	"io"
	"math"
	"slices"
)

const (
	// readBufSize is the size of each read buffer. Frames are sliced out of
	// it in place and handed to the application, so a buffer is never
	// overwritten: once its end is reached the unparsed tail moves to a
	// fresh one.
	readBufSize = 64 << 10
	// directReadMin is the body size from which a frame gets a buffer of
	// its own and is read straight into it, skipping one copy.
	directReadMin = readBufSize / 2
	// directReadAlloc is the most a frame's own buffer gets before its
	// bytes arrive: the default MaxMsgSize, so that only a raised limit
	// changes anything.
	directReadAlloc = DefaultMaxMsgSize
)

// frameReader parses frames out of an io.Reader with as few reads, copies
// and allocations as it can: a read fills a large buffer and every frame
// whose bytes are there is returned as a slice of it.
type frameReader struct {
	r          io.Reader
	buf        []byte
	rpos, wpos int
	lent       bool // a slice of buf was handed out: never overwrite it
	// afterBig is set after a frame read into its own buffer: the next read
	// takes just a header's worth, so that a stream of large frames goes
	// from the kernel straight into each frame's buffer, never via buf.
	afterBig bool
	// slab is carved into the buffers of large frames, bodySlab bytes at a
	// time: one allocation for several 64 KiB messages instead of one each.
	slab []byte
	// beforeRead runs before every blocking read: the connection flushes
	// the messages it has parsed so far and arms its read deadline.
	beforeRead func()
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: r, buf: make([]byte, readBufSize)}
}

// buffered returns the bytes read but not yet parsed.
func (fr *frameReader) buffered() []byte { return fr.buf[fr.rpos:fr.wpos] }

// fill reads until at least n (≤ readBufSize) unparsed bytes are buffered.
func (fr *frameReader) fill(n int) error {
	for fr.wpos-fr.rpos < n {
		if len(fr.buf)-fr.rpos < n {
			nb := fr.buf
			if fr.lent {
				nb, fr.lent = make([]byte, readBufSize), false
			}
			fr.wpos = copy(nb, fr.buf[fr.rpos:fr.wpos])
			fr.rpos, fr.buf = 0, nb
		}
		if fr.beforeRead != nil {
			fr.beforeRead()
		}
		dst := fr.buf[fr.wpos:]
		if fr.afterBig && n <= MaxFrameHeader {
			dst = dst[:min(len(dst), MaxFrameHeader-(fr.wpos-fr.rpos))]
		}
		m, err := fr.r.Read(dst)
		fr.wpos += m
		if err != nil {
			if fr.wpos-fr.rpos >= n {
				return nil
			}
			if err == io.EOF && fr.wpos > fr.rpos {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// readFull reads exactly n raw bytes (the greeting).
func (fr *frameReader) readFull(n int) ([]byte, error) {
	if err := fr.fill(n); err != nil {
		return nil, err
	}
	b := fr.buf[fr.rpos : fr.rpos+n : fr.rpos+n]
	fr.rpos += n
	fr.lent = true
	return b, nil
}

// next returns the next frame. The body belongs to the caller: it is never
// overwritten by later reads.
func (fr *frameReader) next(max int64) (flags byte, body []byte, err error) {
	if err := fr.fill(2); err != nil {
		return 0, nil, err
	}
	if fr.buf[fr.rpos]&FlagLong != 0 {
		if err := fr.fill(MaxFrameHeader); err != nil {
			return 0, nil, err
		}
	}
	flags, size, n, err := ParseFrameHeader(fr.buffered(), max)
	if err != nil {
		return 0, nil, err
	}
	fr.afterBig = size >= directReadMin
	if fr.afterBig {
		if size > math.MaxInt {
			// No slice holds it (32-bit platforms).
			return 0, nil, fmt.Errorf("%w: %d bytes announced", ErrFrameTooLarge, size)
		}
		// The size was checked against max, but max may be far more than
		// memory holds: the body is allocated at the announced size only
		// up to directReadAlloc and beyond that grows as bytes arrive, so
		// a peer announcing 2^60 bytes costs what it sends, not a crash.
		body = fr.bodyBuf(min(size, directReadAlloc))
		fr.rpos += n
		got := copy(body, fr.buffered())
		fr.rpos += got
		if int64(got) < size && fr.beforeRead != nil {
			fr.beforeRead()
		}
		for int64(got) < size {
			if got == len(body) {
				body = slices.Grow(body, int(min(size-int64(got), int64(got))))
				body = body[:min(int64(cap(body)), size)]
			}
			m, err := io.ReadFull(fr.r, body[got:])
			got += m
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, nil, err
			}
		}
		return flags, body[:size:size], nil
	}
	end := n + int(size)
	if err := fr.fill(end); err != nil {
		return 0, nil, err
	}
	body = fr.buf[fr.rpos+n : fr.rpos+end : fr.rpos+end]
	fr.rpos += end
	fr.lent = true
	return flags, body, nil
}

// bodySlab is the size of the slabs large frame bodies are carved from.
const bodySlab = 1 << 20

// bodyBuf returns a buffer of n bytes for a large frame's body, carved from
// the current slab when it fits a quarter of one (a slab stays alive while
// any body cut from it does, so bigger bodies get their own allocation).
func (fr *frameReader) bodyBuf(n int64) []byte {
	if n > bodySlab/4 {
		return make([]byte, n)
	}
	if int64(len(fr.slab)) < n {
		fr.slab = make([]byte, bodySlab)
	}
	b := fr.slab[:n:n]
	fr.slab = fr.slab[n:]
	return b
}
