package join

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/internal/backoff"
	"github.com/hydra-net/hydra/internal/repeatlog"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// dialer dials one peer for as long as the server runs: one session (a
// fresh DEALER socket and routing id) at a time, with backoff between them.
type dialer struct {
	addr   string // HOST:PORT
	stop   chan struct{}
	once   sync.Once
	up     atomic.Bool           // a link of the current session came up
	closed bool                  // loop-owned: the peer refused us for good
	sec    func() zmtp.Mechanism // nil: NULL

	// Loop-owned: why the attempts since the last link up failed.
	fails repeatlog.Failures
}

func (d *dialer) close() { d.once.Do(func() { close(d.stop) }) }

// session is one attempt at a link to a dialled peer, and that link's
// transport. Its reader posts messages to the loop, its writer sends what
// the loop queued; the loop ends it by cancelling ctx.
type session struct {
	d      *dialer
	ctx    context.Context
	cancel context.CancelFunc
	sock   *zmtp.Socket
	out    chan []byte
	queued atomic.Int64  // bytes in out
	link   *link         // loop-owned
	wdone  chan struct{} // closed when the writer returned
	closed bool          // loop-owned: out is closed (Depart): the writer ends once it wrote it
	held   atomic.Bool   // drain waits for the writer: it wakes the loop below holdBytes
	wake   func()        // wakes the loop (registry.Host.Wake)
}

// holdBytes is how much a dialled link's writer may hold before drain
// waits for it.
const holdBytes = 1 << 20

// hold reports whether the writer holds holdBytes or more; if so it wakes
// the loop once it is below.
func (ss *session) hold() bool {
	if ss.queued.Load() < holdBytes {
		return false
	}
	ss.held.Store(true)
	if ss.queued.Load() < holdBytes && ss.held.Swap(false) {
		return false // it caught up meanwhile
	}
	return true
}

var errLinkFull = errors.New("join: link queue full")

// send hands a message to the session's writer without blocking.
func (ss *session) send(body []byte) error {
	if ss.closed {
		return errLinkFull
	}
	if ss.queued.Load()+int64(len(body)) > maxLinkQueue {
		return errLinkFull
	}
	select {
	case ss.out <- bytes.Clone(body):
		ss.queued.Add(int64(len(body)))
		return nil
	default:
		return errLinkFull
	}
}

func (ss *session) dialer() *dialer { return ss.d }

// cause is why a session that never came up failed: the socket's latest
// connection error (no such host, refused, a CURVE refusal) if it has
// one, else reason (the link's own, such as nothing heard).
func (ss *session) cause(reason string) string {
	if err := ss.sock.ConnectError(); err != nil {
		return err.Error()
	}
	return reason
}
func (ss *session) end() { ss.cancel() }

// runDialer is a dialer's goroutine.
func (j *Join) runDialer(d *dialer) {
	defer j.wg.Done()
	b := backoff.Backoff{Min: j.cfg.Interval, Max: j.cfg.RedialMax}
	for {
		if !j.runSession(d) {
			return
		}
		if d.up.Swap(false) {
			b.Reset() // it worked a while: start over
		}
		t := time.NewTimer(b.Next())
		select {
		case <-d.stop:
			t.Stop()
			return
		case <-j.stopCh:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// runSession runs one session to its end; false: stop dialling.
func (j *Join) runSession(d *dialer) bool {
	sec := d.sec
	rid := make([]byte, 8)
	_, _ = rand.Read(rid)
	sock, err := zmtp.NewSocket(zmtp.DEALER, zmtp.Config{
		Logger:               j.h.SocketLogger(),
		RoutingID:            []byte("hydra-join-" + hex.EncodeToString(rid)),
		MaxMsgSize:           j.h.MaxRequestBytes(),
		SendHWM:              4096,
		Linger:               -1,
		HandshakeTimeout:     j.cfg.Timeout,
		ReconnectInterval:    min(100*time.Millisecond, j.cfg.Interval),
		ReconnectIntervalMax: j.cfg.Interval,
		Security:             sec,
	})
	if err == nil {
		err = sock.Connect("tcp://" + d.addr)
		if err != nil {
			sock.Close()
		}
	}
	if err != nil {
		j.log.Error("join: cannot dial", "peer", d.addr, "err", err)
		return false
	}
	// The session ends when the loop ends it (cancel), and when dialling
	// stops, also before the loop took the session in.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-d.stop:
		case <-j.stopCh:
		case <-ctx.Done():
		}
		cancel()
	}()
	wdone := make(chan struct{})
	ss := &session{d: d, sock: sock, ctx: ctx, cancel: cancel, out: make(chan []byte, 4096), wdone: wdone, wake: j.h.Wake}
	go func() { // the one goroutine that writes to sock
		defer close(wdone)
		for {
			select {
			case b, ok := <-ss.out:
				if !ok {
					return // drained (Stop)
				}
				err := sock.SendContext(ctx, syncFrame, b)
				if ss.queued.Add(-int64(len(b))) < holdBytes && ss.held.Swap(false) {
					ss.wake()
				}
				if err != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	ok := j.h.Post(d.stop, func() { j.onOpen(ss) })
	for ok {
		msg, err := sock.RecvContext(ctx)
		if err != nil {
			break
		}
		ok = j.h.Post(ctx.Done(), func() { j.onSessionMsg(ss, msg) })
	}
	cancel()
	<-wdone
	sock.Close()
	select {
	case <-d.stop:
		return false
	case <-j.stopCh:
		return false
	default:
	}
	return true
}

// onOpen makes the link of a new session and says hello (on the loop).
func (j *Join) onOpen(ss *session) {
	if ss.d.closed || ss.ctx.Err() != nil {
		ss.cancel()
		return
	}
	now := time.Now()
	l := j.addLink(ss, now)
	ss.link = l
	j.sendHello(l, now)
}

// onSessionMsg handles one message a session received (on the loop).
func (j *Join) onSessionMsg(ss *session, msg [][]byte) {
	l := ss.link
	if l == nil || l.state == StateDown {
		return
	}
	if len(msg) != 2 || !bytes.EqualFold(msg[0], syncFrame) {
		// An ERR reply: the peer is a server without join, or refused.
		if len(msg) == 2 && string(msg[0]) == registry.StatusError {
			j.warnEvery("err:"+ss.d.addr, "join: the peer does not speak join (an older hydra-server?)",
				"peer", ss.d.addr, "reply", quote(string(msg[1])))
		}
		j.stats.protocolErrors.Add(1)
		return
	}
	j.linkRecv(l, msg[1], time.Now())
}
