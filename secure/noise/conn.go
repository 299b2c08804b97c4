package noise

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	flynn "github.com/flynn/noise"

	"github.com/hydra-net/hydra/secure"
)

// Transport records: a 2-byte big-endian length, then that many bytes of
// AEAD output (ciphertext and 16-byte tag), at most 65535 (the Noise
// message limit, which flynn/noise does not enforce for transport
// messages), so at most 65519 bytes of plaintext per record.
const (
	recHdr    = 2
	tagSize   = 16
	maxRecord = flynn.MaxMsgLen     // 65535
	maxPlain  = maxRecord - tagSize // 65519
	// Eight records (512 KiB) per socket write and per socket read: the
	// fewer hand-offs between writer and reader, the less CPU per byte
	// (bench/RESULTS.md has the measurements).
	pendingCap   = 8 * (recHdr + maxRecord)
	rbufSize     = 8 * (recHdr + maxRecord)
	closeFlush   = 5 * time.Second
	defaultRekey = 1 << 20 // records between rekeys (64 GiB of full records)
	// defaultNonceLimit is where a direction stops: far below 2^64-1, so
	// the nonce never wraps (flynn/noise's Rekey does not reset it).
	defaultNonceLimit = 1 << 60
)

// Conn is an established tunnel link: a net.Conn carrying length-prefixed
// Noise transport records over one TCP connection.
//
// Each direction's CipherState (flynn/noise's are not safe for concurrent
// use) has one owner at a time: the receiving one belongs to Read's
// caller, under the read mutex; the sending one is only touched under the
// write mutex, by Write (which seals each record as it fills, a whole
// record straight out of the caller's buffer) and by the writer goroutine
// (which seals a last partial record only when it is all there is to
// send). Writes coalesce: small writes share a record, a bulk stream fills
// records to 65519 bytes, and the writer goroutine sends everything queued
// in one socket write. Write blocks only while 8 records are queued, and
// honours the write deadline while it waits.
//
// A record must arrive within RecordTimeout of its first byte (a deadline
// armed once per record, which reads do not extend), else the link fails
// with ErrRecordStalled: trickling a record's bytes holds nothing for
// long. The caller's read deadline applies as well; whichever comes first
// is set on the socket.
//
// Both directions rekey (Noise REKEY) every 2^20 records, at the same
// record number on both ends, and close at the nonce limit instead of
// wrapping. A record that fails authentication, a record cut short, and a
// failed or partial socket write are fatal: the link closes and the error,
// logged with its reason, is returned from then on.
type Conn struct {
	nc          net.Conn
	log         *slog.Logger
	peer        secure.PublicKey
	peerPayload []byte
	suite       string
	limit       uint64
	rekeyEvery  uint64

	rmu   sync.Mutex
	recv  *flynn.CipherState
	rbuf  []byte
	rpos  int
	wpos  int
	plain []byte // decrypted, not yet returned (a slice of rbuf)
	rerr  error
	// The record in progress (bytes of it in rbuf, not all): its deadline
	// is armed once, when its first bytes are seen waiting for more.
	recTimeout time.Duration // 0: none
	recSeq     uint64        // records consumed so far
	armed      bool          // a record deadline is armed...
	armedSeq   uint64        // ...for the record after this many
	armedAt    time.Time     // ...expiring then

	dlmu sync.Mutex // the socket's read deadline: the earlier of
	rdl  time.Time  // the caller's (SetReadDeadline) and
	rec  time.Time  // the record in progress's (zero: none)

	wmu        sync.Mutex
	send       *flynn.CipherState // only used under wmu
	pending    []byte             // sealed records [len][ciphertext+tag]..., then maybe the open one [len][plaintext]
	openRec    int                // offset of the open (unsealed) record in pending, -1 if none
	spare      []byte
	werr       error
	wstop      bool          // Close/CloseWrite: the writer exits once pending is sent
	wake       chan struct{} // cap 1: pending has data, or wstop
	space      chan struct{} // closed and replaced whenever the writer takes pending
	wdl        time.Time
	wdlCh      chan struct{} // closed and replaced when the write deadline changes
	writerDone chan struct{}
	started    bool

	fatal     atomic.Pointer[error]
	stopOnce  sync.Once
	closeOnce sync.Once
	closed    chan struct{}
}

func newConn(nc net.Conn, log *slog.Logger, send, recv *flynn.CipherState, peer secure.PublicKey, payload []byte, suite string) *Conn {
	return &Conn{
		nc: nc, peer: peer, peerPayload: payload, suite: suite,
		log:   log.With("remote", nc.RemoteAddr().String(), "peer", peer.String()),
		limit: defaultNonceLimit, rekeyEvery: defaultRekey,
		recv: recv, send: send,
		rbuf:       make([]byte, rbufSize),
		openRec:    -1,
		wake:       make(chan struct{}, 1),
		space:      make(chan struct{}),
		wdlCh:      make(chan struct{}),
		closed:     make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// start launches the writer goroutine; until then the handshake owns the
// connection.
func (c *Conn) start() {
	c.started = true
	go c.writeLoop()
}

// PeerKey is the other side's authenticated static public key.
func (c *Conn) PeerKey() secure.PublicKey { return c.peer }

// PeerPayload is what the peer sent in its handshake payload.
func (c *Conn) PeerPayload() []byte { return c.peerPayload }

// Suite is the Noise protocol name, e.g. "Noise_IK_25519_AESGCM_BLAKE2s".
func (c *Conn) Suite() string { return c.suite }

func (c *Conn) LocalAddr() net.Addr  { return c.nc.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetReadDeadline bounds Read's wait; a record's own deadline
// (RecordTimeout) applies as well.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dlmu.Lock()
	defer c.dlmu.Unlock()
	c.rdl = t
	return c.nc.SetReadDeadline(earliest(t, c.rec))
}

// setRecordDeadline makes t (zero: none) the record's deadline on the
// socket, with the caller's.
func (c *Conn) setRecordDeadline(t time.Time) {
	c.dlmu.Lock()
	defer c.dlmu.Unlock()
	c.rec = t
	_ = c.nc.SetReadDeadline(earliest(c.rdl, t))
}

// earliest is the earlier of two deadlines, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// trackRecordLocked arms the deadline of a record whose first bytes wait
// for more, once per record, and disarms it at a record boundary.
func (c *Conn) trackRecordLocked() {
	if c.recTimeout <= 0 {
		return
	}
	partial := c.wpos > c.rpos
	switch {
	case partial && (!c.armed || c.armedSeq != c.recSeq):
		c.armed, c.armedSeq, c.armedAt = true, c.recSeq, time.Now().Add(c.recTimeout)
		c.setRecordDeadline(c.armedAt)
	case !partial && c.armed:
		c.armed = false
		c.setRecordDeadline(time.Time{})
	}
}

// recordStalled reports whether a read timeout is the record's deadline
// (not the caller's).
func (c *Conn) recordStalled() bool {
	return c.armed && c.armedSeq == c.recSeq && !time.Now().Before(c.armedAt)
}

func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// SetWriteDeadline bounds Write's wait for queue space and the writer's
// socket writes. A deadline that expires with data in flight kills the
// link (a partial record write cannot be resumed), as with crypto/tls.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	c.wdl = t
	close(c.wdlCh)
	c.wdlCh = make(chan struct{})
	c.wmu.Unlock()
	return c.nc.SetWriteDeadline(t)
}

// fail makes err the link's fatal error (the first one wins), logs it and
// closes the socket, which stops the other direction too.
func (c *Conn) fail(err error) error {
	if c.fatal.CompareAndSwap(nil, &err) {
		select {
		case <-c.closed:
			// Closed by us: not worth a warning.
		default:
			c.log.Warn("noise: link closed", "err", err)
		}
		c.nc.Close()
	}
	return *c.fatal.Load()
}

// Read returns decrypted bytes. It reads as many records per system call
// as fit and decrypts straight into p when a record fits there.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.plain) > 0 {
		n := copy(p, c.plain)
		c.plain = c.plain[n:]
		return n, nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for {
		if c.rerr != nil {
			if n > 0 {
				return n, nil
			}
			return 0, c.rerr
		}
		if avail := c.wpos - c.rpos; avail >= recHdr {
			size := int(binary.BigEndian.Uint16(c.rbuf[c.rpos:]))
			if size < tagSize {
				c.rerr = c.fail(fmt.Errorf("%w: record of %d bytes, shorter than its tag", ErrRecordLength, size))
				continue
			}
			if avail >= recHdr+size {
				ct := c.rbuf[c.rpos+recHdr : c.rpos+recHdr+size]
				if size-tagSize <= len(p)-n {
					pt, err := c.open(p[n:n], ct)
					if err != nil {
						c.rerr = err
						continue
					}
					n += len(pt)
					c.rpos += recHdr + size
					c.recSeq++
					continue
				}
				if n > 0 {
					return n, nil
				}
				pt, err := c.open(ct[:0], ct) // in place
				if err != nil {
					c.rerr = err
					continue
				}
				c.rpos += recHdr + size
				c.recSeq++
				k := copy(p, pt)
				c.plain = pt[k:]
				return k, nil
			}
		}
		if n > 0 {
			return n, nil
		}
		// Need more bytes. Nothing in rbuf is lent out now (plain is
		// empty), so the unparsed tail may move to the front.
		if c.rpos > 0 && (c.rpos == c.wpos || len(c.rbuf)-c.rpos < recHdr+maxRecord) {
			c.wpos = copy(c.rbuf, c.rbuf[c.rpos:c.wpos])
			c.rpos = 0
		}
		c.trackRecordLocked()
		m, err := c.nc.Read(c.rbuf[c.wpos:])
		c.wpos += m
		if m > 0 {
			continue
		}
		switch {
		case err == nil:
		case isTimeout(err) && c.fatal.Load() == nil && c.recordStalled():
			c.rerr = c.fail(fmt.Errorf("%w: %d bytes of a record in %v", ErrRecordStalled, c.wpos-c.rpos, c.recTimeout))
		case isTimeout(err) && c.fatal.Load() == nil:
			return 0, err // a read deadline: not fatal
		case err == io.EOF && c.wpos == c.rpos:
			c.rerr = io.EOF // the peer closed at a record boundary
		case err == io.EOF:
			c.rerr = c.fail(fmt.Errorf("%w: the link ended %d bytes into a record", ErrRecordTruncated, c.wpos-c.rpos))
		default:
			c.rerr = c.fail(err)
		}
	}
}

// open decrypts one record, enforcing the nonce limit and rekeying on
// schedule.
func (c *Conn) open(out, ct []byte) ([]byte, error) {
	if c.recv.Nonce() >= c.limit {
		return nil, c.fail(fmt.Errorf("%w: %d records received", ErrNonceLimit, c.recv.Nonce()))
	}
	pt, err := c.recv.Decrypt(out, nil, ct)
	if err != nil {
		return nil, c.fail(fmt.Errorf("%w: record %d", ErrRecordAuth, c.recv.Nonce()))
	}
	if c.recv.Nonce()%c.rekeyEvery == 0 {
		c.recv.Rekey()
	}
	return pt, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// Write queues p for the writer goroutine, which sends it. It returns once
// p is queued (or the deadline passes, or the link failed); errors of the
// sending that follows surface on later calls and Close. Records are
// sealed here, under the write mutex, as soon as they are full (a write
// of a whole record is encrypted straight out of p), so the writer
// goroutine mostly just writes to the socket.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := 0
	for len(p) > 0 {
		if err := c.writeErrLocked(); err != nil {
			return n, err
		}
		if !c.wdl.IsZero() && !time.Now().Before(c.wdl) {
			return n, os.ErrDeadlineExceeded
		}
		if c.pending == nil {
			c.pending = make([]byte, 0, pendingCap)
		}
		if c.openRec < 0 {
			if len(c.pending)+recHdr+1+tagSize > pendingCap {
				if err := c.waitSpaceLocked(); err != nil {
					return n, err
				}
				continue
			}
			if len(p) >= maxPlain && len(c.pending)+recHdr+maxRecord <= pendingCap {
				// A whole record: encrypt while copying.
				if err := c.sealLocked(p[:maxPlain]); err != nil {
					return n, err
				}
				p = p[maxPlain:]
				n += maxPlain
				c.kickLocked()
				continue
			}
			c.openRec = len(c.pending)
			c.pending = append(c.pending, 0, 0)
		}
		used := len(c.pending) - c.openRec - recHdr
		take := min(len(p), maxPlain-used, pendingCap-tagSize-len(c.pending))
		if take <= 0 {
			if err := c.waitSpaceLocked(); err != nil {
				return n, err
			}
			continue
		}
		c.pending = append(c.pending, p[:take]...)
		p = p[take:]
		n += take
		if used+take == maxPlain {
			if err := c.sealOpenLocked(); err != nil {
				return n, err
			}
		}
		c.kickLocked()
	}
	return n, nil
}

func (c *Conn) kickLocked() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Conn) writeErrLocked() error {
	if f := c.fatal.Load(); f != nil {
		return *f
	}
	if c.werr != nil {
		return c.werr
	}
	if c.wstop {
		return ErrConnClosed
	}
	return nil
}

// beforeSeal enforces the nonce limit of the sending direction.
func (c *Conn) beforeSeal() error {
	if c.send.Nonce() >= c.limit {
		return c.fail(fmt.Errorf("%w: %d records sent", ErrNonceLimit, c.send.Nonce()))
	}
	return nil
}

func (c *Conn) afterSeal() {
	if c.send.Nonce()%c.rekeyEvery == 0 {
		c.send.Rekey()
	}
}

// sealLocked appends one record sealing pt (which is not in pending).
func (c *Conn) sealLocked(pt []byte) error {
	if err := c.beforeSeal(); err != nil {
		return err
	}
	h := len(c.pending)
	c.pending = append(c.pending, 0, 0)
	var err error
	if c.pending, err = c.send.Encrypt(c.pending, nil, pt); err != nil {
		return c.fail(err)
	}
	binary.BigEndian.PutUint16(c.pending[h:], uint16(len(pt)+tagSize))
	c.afterSeal()
	return nil
}

// sealOpenLocked seals the open record in place (its tag fits: Write
// keeps tagSize bytes of capacity free after it).
func (c *Conn) sealOpenLocked() error {
	if err := c.beforeSeal(); err != nil {
		return err
	}
	pt := c.pending[c.openRec+recHdr:]
	ct, err := c.send.Encrypt(pt[:0], nil, pt)
	if err != nil {
		return c.fail(err)
	}
	binary.BigEndian.PutUint16(c.pending[c.openRec:], uint16(len(ct)))
	c.pending = c.pending[:c.openRec+recHdr+len(ct)]
	c.openRec = -1
	c.afterSeal()
	return nil
}

// waitSpaceLocked releases wmu until the writer takes the queue, the write
// deadline passes or changes, or the link fails.
func (c *Conn) waitSpaceLocked() error {
	space, dlCh, dl := c.space, c.wdlCh, c.wdl
	c.wmu.Unlock()
	var expired <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		expired = t.C
	}
	var err error
	select {
	case <-space:
	case <-dlCh:
	case <-c.closed:
	case <-c.writerDone:
	case <-expired:
		err = os.ErrDeadlineExceeded
	}
	c.wmu.Lock()
	return err
}

// writeLoop sends what Write queued, all of it in one write each time.
func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	for {
		c.wmu.Lock()
		for len(c.pending) == 0 && !c.wstop {
			c.wmu.Unlock()
			<-c.wake
			c.wmu.Lock()
		}
		if len(c.pending) == 0 { // stopping, all sent
			c.wmu.Unlock()
			return
		}
		// Send every sealed record; keep a partial open record back for
		// more data if there are sealed ones to send (a bulk stream then
		// fills its records), seal and send it if it is all there is (no
		// added latency when the writer keeps up).
		var buf, rest []byte
		if c.openRec > 0 {
			buf, rest = c.pending[:c.openRec], c.pending[c.openRec:]
		} else {
			if c.openRec == 0 {
				if err := c.sealOpenLocked(); err != nil {
					c.werr = err
					c.wmu.Unlock()
					return
				}
			}
			buf = c.pending
		}
		next := c.spare[:0]
		if next == nil && len(rest) > 0 {
			next = make([]byte, 0, pendingCap)
		}
		c.pending, c.spare = append(next, rest...), nil
		if len(rest) > 0 {
			c.openRec = 0
		}
		close(c.space)
		c.space = make(chan struct{})
		c.wmu.Unlock()

		_, err := c.nc.Write(buf)
		c.wmu.Lock()
		if err != nil {
			c.werr = c.fail(fmt.Errorf("noise: write: %w", err))
			close(c.space)
			c.space = make(chan struct{})
			c.wmu.Unlock()
			return
		}
		c.spare = buf[:0]
		c.wmu.Unlock()
	}
}

// stopWriter lets the writer send what is queued (bounded by closeFlush)
// and waits for it to exit.
func (c *Conn) stopWriter() {
	c.stopOnce.Do(func() {
		c.wmu.Lock()
		c.wstop = true
		c.wmu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
		if !c.started {
			return
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(closeFlush))
		<-c.writerDone
	})
}

// CloseWrite sends what Write queued, then half-closes the TCP connection:
// the peer reads EOF after the last record; this side can still Read.
func (c *Conn) CloseWrite() error {
	c.stopWriter()
	if f := c.fatal.Load(); f != nil {
		return *f
	}
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close sends what Write queued (for at most 5s) and closes the link.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.stopWriter()
		c.wmu.Lock()
		werr := c.werr
		c.wmu.Unlock()
		close(c.closed)
		err = c.nc.Close()
		if werr != nil {
			err = werr
		}
	})
	return err
}
