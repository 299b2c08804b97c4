package mux

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// yamux frame header (spec.md, "Framing"): version, type, flags, stream id,
// length, big endian, 12 bytes.
const (
	hdrSize = 12

	protoVersion = 0

	typeData         = 0
	typeWindowUpdate = 1
	typePing         = 2
	typeGoAway       = 3

	flagSYN = 1
	flagACK = 2
	flagFIN = 4
	flagRST = 8
)

// Frame sizes are chosen to line up with the Noise transport below, whose
// messages carry at most noisePayload bytes (65535 minus the 16-byte tag).
//
// maxFrameData is the largest data frame body the session sends: a stream
// Write is cut into frames of at most this size, so that a whole frame
// (header included) is exactly four full Noise messages. Larger frames mean
// fewer trips through yamux's send goroutine; smaller ones would let other
// streams in sooner (bench/RESULTS.md, "Design notes", has the trade-off).
//
// proxyBufSize, the size of Proxy's copy buffers on a bulk transfer, lets
// one read from a TCP connection fill a whole frame, so a bulk stream costs
// a quarter of the trips through yamux that 64 KiB reads would; a read
// returns whatever has arrived, so small exchanges are not delayed. Until a
// read fills it, a direction copies with smallProxyBufSize, a frame of
// exactly one Noise message.
const (
	noisePayload      = 65535 - 16
	maxFrameData      = 4*noisePayload - hdrSize
	proxyBufSize      = maxFrameData
	smallProxyBufSize = noisePayload - hdrSize
)

// livePingBit marks the ids of the session's own liveness pings, so that
// their answers are consumed here and the ids of yamux's Ping never collide.
const livePingBit = 1 << 31

// Bounds on what the control queue may hold.
const (
	maxPendingPongs = 64       // further pings from a flooding peer go unanswered
	maxCtrlBytes    = 64 << 10 // a peer that makes us queue more is not reading
	readBufSize     = 8 << 10
)

func appendHeader(dst []byte, typ uint8, flags uint16, id, length uint32) []byte {
	dst = append(dst, protoVersion, typ, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	h := dst[len(dst)-hdrSize:]
	binary.BigEndian.PutUint16(h[2:4], flags)
	binary.BigEndian.PutUint32(h[4:8], id)
	binary.BigEndian.PutUint32(h[8:12], length)
	return dst
}

// frameConn sits between yamux and the real connection. It knows yamux's
// framing, which lets it:
//
//   - coalesce writes: yamux writes a frame's header and its body with two
//     Write calls; frameConn holds the header and writes both with one, so a
//     record layer below (Noise) seals one record per frame instead of a
//     12-byte record and a body record;
//   - send control frames (pings, pongs, resets) at the next frame boundary,
//     without waiting in yamux's send queue behind data;
//   - answer the peer's pings itself, instead of yamux's goroutine per ping;
//   - see every frame header the peer sends before yamux does: to time
//     liveness, to admit or refuse new streams (MaxStreams, AcceptBacklog),
//     to note FIN and RST per stream, and to reject malformed frames;
//   - hand yamux frames of our own making (a reset of a stream we closed),
//     which is how a stream is dropped locally: yamux has no API for it.
type frameConn struct {
	net.Conn
	sess  *Session
	epoch time.Time

	lastRead  atomic.Int64 // time.Duration since epoch of the last byte read
	lastWrite atomic.Int64 // ... and of the last write completed

	// Read side, used only by yamux's receive goroutine (through Read).
	rbuf   []byte
	rr, rw int    // unread bytes are rbuf[rr:rw]
	pass   uint64 // bytes of the current frame still to hand to yamux as they are
	skip   uint64 // bytes of a refused frame still to drop
	rerr   error  // read error held back until buffered bytes are handed over
	maxLen uint32 // largest data frame the peer may send (the stream window)

	imu       sync.Mutex
	inject    []byte      // frames for our yamux, delivered at a frame boundary
	injecting atomic.Bool // len(inject) > 0

	// Write side. wmu is held across each write to Conn, by yamux's send
	// goroutine (Write) or the session's control goroutine (flushCtrl).
	wmu      sync.Mutex
	held     bool // whdr is a data frame header whose body comes next
	whdr     [hdrSize]byte
	wbuf     []byte
	deadline time.Time
	wto      time.Duration

	cmu         sync.Mutex
	ctrl        []byte // control frames waiting for the next frame boundary
	pongs       int    // pongs in ctrl
	pingQueued  bool   // a liveness ping is in ctrl
	pingSeq     uint32
	ctrlOverrun bool
	kick        chan struct{} // wakes the control goroutine
}

func newFrameConn(c net.Conn, s *Session) *frameConn {
	fc := &frameConn{
		Conn:   c,
		sess:   s,
		epoch:  time.Now(),
		rbuf:   make([]byte, readBufSize),
		maxLen: s.cfg.StreamWindow,
		wto:    s.cfg.WriteTimeout,
		kick:   make(chan struct{}, 1),
	}
	return fc
}

// now is the monotonic time since the connection was wrapped.
func (c *frameConn) now() time.Duration { return time.Since(c.epoch) }

// Read hands yamux the peer's bytes, one frame at a time at most, after
// inspecting each frame header; see frameConn.
func (c *frameConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		// Inside a frame: hand over its bytes, from the buffer or, once
		// that is empty, straight from the connection into p.
		if c.pass > 0 {
			if c.rr < c.rw {
				n := copy(p[:min(uint64(len(p)), c.pass)], c.rbuf[c.rr:c.rw])
				c.rr += n
				c.pass -= uint64(n)
				return n, nil
			}
			if c.rerr != nil {
				return 0, c.rerr
			}
			q := p[:min(uint64(len(p)), c.pass)]
			n, err := c.Conn.Read(q)
			if n > 0 {
				c.touchRead()
				c.pass -= uint64(n)
			}
			if err != nil {
				err = c.readFailed(err)
			}
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		// Inside a refused frame: drop its bytes.
		if c.skip > 0 {
			if c.rr < c.rw {
				d := min(c.skip, uint64(c.rw-c.rr))
				c.rr += int(d)
				c.skip -= d
				continue
			}
			if err := c.fill(); err != nil {
				return 0, err
			}
			continue
		}
		// At a frame boundary: our own frames first, then the next header.
		if c.injecting.Load() && len(p) >= hdrSize {
			if n := c.takeInjected(p); n > 0 {
				return n, nil
			}
		}
		if c.rw-c.rr < hdrSize {
			if err := c.fill(); err != nil {
				return 0, err
			}
			continue
		}
		if err := c.inspect(c.rbuf[c.rr : c.rr+hdrSize]); err != nil {
			c.sess.noteCause(err)
			c.rerr = err
			return 0, err
		}
	}
}

// fill reads more of the connection into rbuf, keeping unread bytes.
func (c *frameConn) fill() error {
	if c.rerr != nil {
		return c.rerr
	}
	if c.rr > 0 {
		c.rw = copy(c.rbuf, c.rbuf[c.rr:c.rw])
		c.rr = 0
	}
	for {
		n, err := c.Conn.Read(c.rbuf[c.rw:])
		if n > 0 {
			c.touchRead()
			c.rw += n
			if err != nil {
				c.rerr = c.readFailed(err)
			}
			return nil
		}
		if err != nil {
			return c.readFailed(err)
		}
	}
}

func (c *frameConn) readFailed(err error) error {
	c.rerr = err
	c.sess.noteCause(fmt.Errorf("reading connection: %w", err))
	return err
}

func (c *frameConn) touchRead() { c.lastRead.Store(int64(c.now())) }

// inspect looks at the frame header h (the next 12 unread bytes) and
// decides what happens to the frame: handed to yamux (pass), consumed here
// (our pings and pongs), or refused (skip, and a reset sent back).
func (c *frameConn) inspect(h []byte) error {
	ver, typ := h[0], h[1]
	flags := binary.BigEndian.Uint16(h[2:4])
	id := binary.BigEndian.Uint32(h[4:8])
	length := binary.BigEndian.Uint32(h[8:12])
	if ver != protoVersion {
		return protocolError(fmt.Sprintf("version %d", ver), h)
	}
	switch typ {
	case typePing:
		if flags&flagSYN != 0 {
			c.queuePong(length)
			c.rr += hdrSize
			return nil
		}
		if flags&flagACK != 0 && length&livePingBit != 0 {
			c.rr += hdrSize // the answer to a liveness ping: reading it was the point
			return nil
		}
		c.pass = hdrSize // the answer to yamux's Ping
		return nil
	case typeGoAway:
		c.pass = hdrSize
		return nil
	case typeData, typeWindowUpdate:
	default:
		return protocolError(fmt.Sprintf("type %d", typ), h)
	}
	var body uint64
	if typ == typeData {
		if length > c.maxLen {
			return protocolError(fmt.Sprintf("data frame of %d bytes exceeds the %d-byte window", length, c.maxLen), h)
		}
		body = uint64(length)
	}
	if id == 0 {
		return protocolError("stream frame for stream 0", h)
	}
	if flags&flagSYN != 0 {
		admit, err := c.sess.admit(id)
		if err != nil {
			return protocolError(err.Error(), h)
		}
		if !admit {
			c.rr += hdrSize
			c.skip = body
			c.queueRST(id)
			return nil
		}
	}
	if flags&(flagACK|flagFIN|flagRST) != 0 {
		c.sess.peerFlags(id, flags)
	}
	if body > 0 && c.sess.orphans.Load() > 0 {
		c.sess.orphanData(id)
	}
	c.pass = hdrSize + body
	return nil
}

// takeInjected copies whole injected frames into p.
func (c *frameConn) takeInjected(p []byte) int {
	c.imu.Lock()
	defer c.imu.Unlock()
	n := min(len(p), len(c.inject)) / hdrSize * hdrSize
	copy(p, c.inject[:n])
	c.inject = c.inject[:copy(c.inject, c.inject[n:])]
	if len(c.inject) == 0 {
		c.injecting.Store(false)
	}
	return n
}

// injectRST makes our yamux drop stream id as if the peer had reset it. It
// is delivered at the next frame boundary of the read side; a ping is sent
// so that an idle peer's answer brings that boundary soon.
func (c *frameConn) injectRST(id uint32) {
	c.imu.Lock()
	c.inject = appendHeader(c.inject, typeWindowUpdate, flagRST, id, 0)
	c.injecting.Store(true)
	c.imu.Unlock()
	c.queuePing()
}

// Write is called by yamux's send goroutine only, once with a frame header
// and, for a data frame, once more with its body. The header of a data
// frame is held back and written together with its body; control frames
// queued meanwhile go in front, at a frame boundary. Every call results in
// at most one Write on the connection.
func (c *frameConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.held && len(b) == hdrSize && b[1] == typeData && binary.BigEndian.Uint32(b[8:12]) > 0 {
		copy(c.whdr[:], b)
		c.held = true
		return len(b), nil
	}
	buf := c.takeCtrl(c.wbuf[:0])
	if c.held {
		buf = append(buf, c.whdr[:]...)
		c.held = false
	}
	if len(buf) == 0 {
		if err := c.write(b); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	buf = append(buf, b...)
	err := c.write(buf)
	if cap(buf) <= maxFrameData+hdrSize+maxCtrlBytes {
		c.wbuf = buf[:0]
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// flushCtrl writes queued control frames if yamux's send goroutine is not
// in the middle of a frame (if it is, it takes them with the frame's body).
func (c *frameConn) flushCtrl() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.held {
		return nil
	}
	buf := c.takeCtrl(c.wbuf[:0])
	if len(buf) == 0 {
		return nil
	}
	err := c.write(buf)
	c.wbuf = buf[:0]
	return err
}

// write writes b to the connection under the write timeout. The deadline is
// moved only when less than 7/8 of the timeout is left, not on every write.
// Called with wmu held.
func (c *frameConn) write(b []byte) error {
	if c.wto > 0 {
		now := time.Now()
		if c.deadline.Sub(now) < c.wto-c.wto/8 {
			c.deadline = now.Add(c.wto)
			_ = c.Conn.SetWriteDeadline(c.deadline)
		}
	}
	if _, err := c.Conn.Write(b); err != nil {
		c.sess.noteCause(fmt.Errorf("writing connection: %w", err))
		return err
	}
	c.lastWrite.Store(int64(c.now()))
	return nil
}

// takeCtrl appends the queued control frames to dst and empties the queue.
func (c *frameConn) takeCtrl(dst []byte) []byte {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	dst = append(dst, c.ctrl...)
	c.ctrl = c.ctrl[:0]
	c.pongs = 0
	c.pingQueued = false
	return dst
}

// queue appends a control frame and wakes the control goroutine. It never
// blocks: the reader calls it.
func (c *frameConn) queue(typ uint8, flags uint16, id, length uint32) {
	c.cmu.Lock()
	if len(c.ctrl)+hdrSize > maxCtrlBytes {
		c.ctrlOverrun = true
	} else {
		c.ctrl = appendHeader(c.ctrl, typ, flags, id, length)
	}
	c.cmu.Unlock()
	c.wake()
}

func (c *frameConn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *frameConn) queueRST(id uint32) { c.queue(typeWindowUpdate, flagRST, id, 0) }

func (c *frameConn) queuePong(id uint32) {
	c.cmu.Lock()
	if c.pongs >= maxPendingPongs {
		c.cmu.Unlock()
		return
	}
	c.pongs++
	c.cmu.Unlock()
	c.queue(typePing, flagACK, 0, id)
}

// queuePing queues a liveness ping unless one is already waiting.
func (c *frameConn) queuePing() {
	c.cmu.Lock()
	if c.pingQueued {
		c.cmu.Unlock()
		return
	}
	c.pingQueued = true
	c.pingSeq++
	id := livePingBit | c.pingSeq&(livePingBit-1)
	c.cmu.Unlock()
	c.queue(typePing, flagSYN, 0, id)
}

// overrun reports whether the control queue overflowed: the peer makes us
// answer faster than it reads.
func (c *frameConn) overrun() bool {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	return c.ctrlOverrun
}
