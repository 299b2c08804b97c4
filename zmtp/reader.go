package zmtp

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

const (
	// readBufSize is the size of a read buffer under traffic. Frames are
	// sliced out of it in place and handed to the application, so a buffer
	// is never overwritten: once its end is reached the unparsed tail moves
	// to a fresh one.
	readBufSize = 64 << 10
	// smallBufSize is the read buffer of a connection without traffic: the
	// greeting and the handshake's commands fit (a bigger one gets a buffer
	// its size), and an idle connection, many of which cost a peer nothing
	// to open, holds no more.
	smallBufSize = 2 << 10
	// heavyRead is what a read returns when traffic waits: from it on (or
	// from half of it, when that filled the buffer), the next buffer is
	// readBufSize. After lighter reads it is smallBufSize, and an empty
	// large buffer is let go (idleBig).
	heavyRead = smallBufSize
	// directReadMin is the body size from which a frame gets a buffer of
	// its own and is read straight into it, skipping one copy.
	directReadMin = readBufSize / 2
	// directReadAlloc is the most a frame's own buffer gets before its
	// bytes arrive: the default MaxMsgSize, so that only a raised limit
	// changes anything.
	directReadAlloc = DefaultMaxMsgSize
)

// frameReader parses frames out of an io.Reader with as few reads, copies
// and allocations as it can: a read fills a buffer (large under traffic)
// and every frame whose bytes are there is returned as a slice of it.
type frameReader struct {
	r          io.Reader
	buf        []byte // nil until the first read
	rpos, wpos int
	lent       bool // a slice of buf was handed out: never overwrite it
	heavy      bool // the last read showed traffic waiting (heavyRead)
	// afterBig is set after a frame read into its own buffer: the next read
	// takes just a header's worth, so that a stream of large frames goes
	// from the kernel straight into each frame's buffer, never via buf.
	afterBig bool
	// slab is carved into the buffers of large frames, bodySlab bytes at a
	// time: one allocation for several 64 KiB messages instead of one each.
	slab []byte
	// beforeRead runs before every read once the handshake is done: the
	// connection flushes the messages it has parsed so far and arms its read
	// deadline. midMessage: some of the next message's bytes have arrived.
	beforeRead func(midMessage bool)

	// The message being read, for its progress deadline (msgDeadline).
	inMsg    bool      // msgStart is set
	more     bool      // the last frame had MORE: its message goes on
	msgStart time.Time // when a read first waited for the rest of it
	msgSize  int64     // its frames' sizes so far, as their headers said
}

func newFrameReader(r io.Reader) *frameReader { return &frameReader{r: r} }

// buffered returns the bytes read but not yet parsed.
func (fr *frameReader) buffered() []byte { return fr.buf[fr.rpos:fr.wpos] }

// fill reads until at least n (≤ readBufSize) unparsed bytes are buffered.
func (fr *frameReader) fill(n int) error {
	for fr.wpos-fr.rpos < n {
		if len(fr.buf)-fr.rpos < n || fr.idleBig() {
			fr.moveTail(n)
		}
		if fr.beforeRead != nil {
			fr.beforeRead(fr.more || fr.wpos > fr.rpos)
		}
		dst := fr.buf[fr.wpos:]
		limited := fr.afterBig && n <= MaxFrameHeader
		if limited {
			dst = dst[:min(len(dst), MaxFrameHeader-(fr.wpos-fr.rpos))]
		}
		m, err := fr.r.Read(dst)
		fr.wpos += m
		if !limited {
			fr.heavy = m >= heavyRead || m == len(dst) && m >= heavyRead/2
		}
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

// idleBig reports whether buf is a large buffer that nothing unparsed is
// left in, whose slices were handed out, while traffic is light: it is let
// go for a small one, so that a connection idle after a burst does not hold
// it.
func (fr *frameReader) idleBig() bool {
	return fr.rpos == fr.wpos && fr.lent && !fr.heavy && len(fr.buf) > smallBufSize
}

// moveTail makes room for n unparsed bytes: the unparsed tail moves to the
// front of buf, or to a fresh buffer if buf was lent, is too small for n,
// or is small under traffic.
func (fr *frameReader) moveTail(n int) {
	nb := fr.buf
	if fr.lent || len(nb) < n || fr.heavy && len(nb) < readBufSize || fr.idleBig() {
		size := smallBufSize
		if fr.heavy {
			size = readBufSize
		}
		nb, fr.lent = make([]byte, max(size, n)), false
	}
	fr.wpos = copy(nb, fr.buf[fr.rpos:fr.wpos])
	fr.rpos, fr.buf = 0, nb
}

// msgDeadline returns when the message being read must be complete: base
// after a read first waited for its rest, plus its size (as far as its
// frame headers tell) at rate bytes a second. Reads inside the message do
// not move it, so a peer trickling a message's bytes, or its frames, holds
// the connection no longer than one sending them at rate.
func (fr *frameReader) msgDeadline(base time.Duration, rate int64) time.Time {
	if !fr.inMsg {
		fr.inMsg, fr.msgStart = true, time.Now()
	}
	return fr.msgStart.Add(base + transferTime(fr.msgSize, rate))
}

// transferTime is how long size bytes take at rate bytes a second, at most
// maxTransferTime (a limit of 2^63 bytes must not overflow a Duration).
func transferTime(size, rate int64) time.Duration {
	if size <= 0 || rate <= 0 {
		return 0
	}
	return time.Duration(min(float64(size)/float64(rate), maxTransferTime.Seconds()) * float64(time.Second))
}

const maxTransferTime = 24 * time.Hour

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
	if !fr.more {
		fr.inMsg, fr.msgSize = false, 0
	}
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
	fr.msgSize += size
	fr.more = flags&(FlagMore|FlagCommand) == FlagMore
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
		for int64(got) < size {
			if got == len(body) {
				body = slices.Grow(body, int(min(size-int64(got), int64(got))))
				body = body[:min(int64(cap(body)), size)]
			}
			if fr.beforeRead != nil {
				fr.beforeRead(true)
			}
			m, err := fr.r.Read(body[got:])
			got += m
			if err != nil && int64(got) < size {
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
