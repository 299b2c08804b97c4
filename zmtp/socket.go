package zmtp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/internal/acceptloop"
	"github.com/hydra-net/hydra/internal/backoff"
	"github.com/hydra-net/hydra/zmtp/inproc"
)

// SocketType names a ZeroMQ socket pattern role, as sent in the
// Socket-Type metadata property.
type SocketType string

// The socket types.
const (
	REQ    SocketType = "REQ"
	REP    SocketType = "REP"
	DEALER SocketType = "DEALER"
	ROUTER SocketType = "ROUTER"
	PUB    SocketType = "PUB"
	SUB    SocketType = "SUB"
	XPUB   SocketType = "XPUB"
	XSUB   SocketType = "XSUB"
	PUSH   SocketType = "PUSH"
	PULL   SocketType = "PULL"
	PAIR   SocketType = "PAIR"
)

// peers lists which socket types each type may talk to (spec 23, 28, 29, 30).
var peers = map[SocketType][]SocketType{
	REQ:    {REP, ROUTER},
	REP:    {REQ, DEALER},
	DEALER: {REP, DEALER, ROUTER},
	ROUTER: {REQ, DEALER, ROUTER},
	PUB:    {SUB, XSUB},
	XPUB:   {SUB, XSUB},
	SUB:    {PUB, XPUB},
	XSUB:   {PUB, XPUB},
	PUSH:   {PULL},
	PULL:   {PUSH},
	PAIR:   {PAIR},
}

func compatible(ours, theirs SocketType) bool {
	for _, t := range peers[ours] {
		if t == theirs {
			return true
		}
	}
	return false
}

// Socket is a ZeroMQ socket: any number of bound and connected endpoints,
// each peer connection feeding a pipe with its own send and receive queue.
// Send, Recv and Close are safe for concurrent use; like libzmq sockets,
// REQ and REP expect one goroutine to drive their alternation.
type Socket struct {
	typ    SocketType
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // cancelled when Close has flushed: stops dialers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool // Close called: Send and Recv fail
	shutting  bool // past the linger wait: no new connection is admitted
	pipes     []*pipe
	byID      map[string]*pipe // ROUTER: routing id → pipe
	nextID    uint32
	rr, fq    int // round-robin cursors for send and receive
	recvWait  chan struct{}
	sendWait  chan struct{}
	recvTimer timerSlot // RecvTimeout, reused by each Recv that waits
	sendTimer timerSlot
	connErr   error         // why the latest outgoing connection attempt failed; see ConnectError
	connFail  chan struct{} // closed at the next failed attempt; see ConnectFailed
	listeners []net.Listener
	conns     map[*conn]struct{}
	// Handshake failures of accepted connections by source host and
	// error, so that one repeated at every retry of a client is logged at
	// Warn once a handshakeWarnEvery with a count, not each time.
	hsFails  map[string]*hsFail
	hsCount  hsCounters // failed handshakes by reason (hsstats.go)
	endpoint string
	subs     [][]byte // SUB, XSUB: our subscriptions, in order

	// REQ: the pipe the request went to; REP: the pipe and envelope of
	// the request being answered.
	reqPipe    *pipe
	reqPending bool
	repPipe    *pipe
	repEnv     [][]byte
	repPending bool

	// Bytes pending for all peers (queued plus held by writers), bounded
	// by MaxPendingTotal; prune is set when a cut left a dead pipe in
	// pipes (see cutLocked).
	pending       int64
	prune         bool
	slowConsumers atomic.Int64
}

// pipe is the socket's side of one peer: its queues outlive a connection
// when the socket connected (so messages wait for the reconnect), and end
// with it when the peer connected to us.
type pipe struct {
	c          *conn // current connection; nil while disconnected
	persistent bool  // made by Connect: survives reconnects
	dead       bool  // gone for good: no sends; removed once its input is read
	id         []byte

	out     []byte // encoded frames waiting for the writer
	outMsgs int
	ctrl    []byte // commands and subscriptions, written before out
	// The buffers the writer last wrote, swapped in as out and ctrl at its
	// next write so that a busy connection reuses two buffers.
	spareOut, spareCtrl []byte
	kicked              bool // the writer was woken and has not gone idle since
	writing             bool
	inflight            int   // bytes the writer took from out and ctrl and has not finished writing
	maxPending          int64 // this peer's MaxPendingBytes, if SetPendingLimit set one

	in       msgQueue
	roomWait chan struct{} // closed when in drops below RecvHWM

	peerSubs     [][]byte // PUB, XPUB: the peer's subscriptions
	peerSubBytes int
	v31          bool

	// The handshake error of this Connect's latest failed attempt, and when
	// it was last logged at Warn, so that one repeated at every retry is
	// not. Only the dial loop's goroutine uses them.
	lastHandshakeErr  string
	lastHandshakeWarn time.Time
}

// NewSocket returns a socket of type t. The zero Config gives libzmq-like
// defaults (see Config).
func NewSocket(t SocketType, cfg Config) (*Socket, error) {
	if _, ok := peers[t]; !ok {
		return nil, fmt.Errorf("zmtp: unknown socket type %q", t)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Socket{
		typ: t, cfg: cfg, log: cfg.Logger.With("socket", string(t)),
		ctx: ctx, cancel: cancel,
		byID:  map[string]*pipe{},
		conns: map[*conn]struct{}{},
	}, nil
}

// Type returns the socket's type.
func (s *Socket) Type() SocketType { return s.typ }

func (s *Socket) localMetadata() Metadata {
	m := Metadata{{Name: PropSocketType, Value: []byte(s.typ)}}
	if len(s.cfg.RoutingID) > 0 {
		m = append(m, Property{Name: PropIdentity, Value: s.cfg.RoutingID})
	}
	return append(m, s.cfg.Properties...)
}

// Bind listens on endpoint ("tcp://127.0.0.1:8420", "tcp://*:0",
// "tcp://[::1]:0", "ipc:///tmp/x.sock", "inproc://name") and accepts peers
// until Close.
// Endpoint reports the address actually bound.
func (s *Socket) Bind(endpoint string) error {
	l, err := Listen(endpoint)
	if err != nil {
		return err
	}
	return s.BindListener(l)
}

// Listen opens the listener Bind would for endpoint, for a caller that
// shares the port through BindListener.
func Listen(endpoint string) (net.Listener, error) {
	network, addr, err := parseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	if network == "inproc" {
		l, err := inproc.Listen(addr)
		if err != nil {
			return nil, fmt.Errorf("zmtp: bind %s: %w", endpoint, err)
		}
		return l, nil
	}
	if network == "unix" {
		// libzmq replaces a stale socket file; only ever remove a socket.
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.Dial("unix", addr); err == nil {
				c.Close()
				return nil, fmt.Errorf("zmtp: bind %s: address in use", endpoint)
			}
			os.Remove(addr)
		}
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("zmtp: bind %s: %w", endpoint, err)
	}
	return l, nil
}

// BindListener accepts peers from l until Close, which closes l. It lets a
// caller share one port between ZMTP and something else: a listener whose
// Accept returns only the connections that start with a ZMTP greeting
// (first byte 0xFF) while it hands the others elsewhere.
func (s *Socket) BindListener(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	s.listeners = append(s.listeners, l)
	s.endpoint = endpointOf(l.Addr())
	s.mu.Unlock()
	s.wg.Add(1)
	go s.acceptLoop(l)
	return nil
}

// Endpoint returns the endpoint of the last successful Bind, with the port
// the system chose for ":0".
func (s *Socket) Endpoint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoint
}

func (s *Socket) acceptLoop(l net.Listener) {
	defer s.wg.Done()
	_ = acceptloop.Serve(l, s.log, func(nc net.Conn) {
		c := newConn(s, nc, nil)
		c.accepted = true
		if !s.admitHandshake(c) {
			nc.Close()
			return
		}
		if !s.track(c) {
			// Close has begun and closed l: Accept ends the loop next.
			c.hsSlot.Release()
			nc.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.untrack(c)
		}()
	})
}

// admitHandshake takes a handshake slot (Config.Handshakes) for an
// accepted connection, or counts and logs its refusal (FailLimit). A
// refused connection is closed unanswered: nothing was read from it.
func (s *Socket) admitHandshake(c *conn) bool {
	var err error
	if c.hsSlot, err = s.cfg.Handshakes.Acquire(c.nc.RemoteAddr(), c.evict); err != nil {
		s.hsCount[FailLimit].Add(1)
		c.logHandshakeFailure(fmt.Errorf("zmtp: handshake refused: %w", err), FailLimit)
		return false
	}
	return true
}

// Connect connects to endpoint in the background, now and again whenever
// the connection drops, backing off between attempts. Messages sent before
// the connection is up wait in its queue.
func (s *Socket) Connect(endpoint string) error {
	network, addr, err := parseEndpoint(endpoint)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	p := &pipe{persistent: true}
	s.pipes = append(s.pipes, p)
	s.mu.Unlock()
	s.wg.Add(1)
	go s.dialLoop(network, addr, p)
	return nil
}

func (s *Socket) dialLoop(network, addr string, p *pipe) {
	defer s.wg.Done()
	bo := backoff.Backoff{Min: s.cfg.ReconnectInterval, Max: s.cfg.ReconnectIntervalMax}
	d := net.Dialer{Timeout: s.cfg.HandshakeTimeout}
	for {
		nc, err := dial(s.ctx, &d, network, addr)
		if err == nil {
			c := newConn(s, nc, p)
			if !s.track(c) {
				nc.Close()
				return
			}
			start := time.Now()
			err = c.serve()
			if c.ready.Load() {
				err = nil // it connected; how it ended is not a connect error
			}
			s.untrack(c)
			if time.Since(start) > s.cfg.ReconnectIntervalMax {
				bo.Reset() // it was up a while: start over
			}
		} else if s.ctx.Err() == nil {
			s.log.Debug("zmtp: connect", "addr", addr, "err", err)
		}
		if err != nil && s.ctx.Err() == nil {
			s.mu.Lock()
			s.connErr = fmt.Errorf("connecting to %s: %w", addr, err)
			if s.connFail != nil {
				close(s.connFail)
				s.connFail = nil
			}
			s.mu.Unlock()
		} else if err == nil {
			p.lastHandshakeErr = ""
		}
		if !backoff.Sleep(s.ctx, bo.Next()) {
			return
		}
	}
}

// ConnectError says why the latest attempt of this socket to connect to a
// peer (Connect's endpoints) failed: a dial error, or a handshake error such
// as ErrMechanism or the peer's ERROR command. It is nil before any attempt
// failed and again once a handshake succeeds. A Send or Recv that waits for a
// peer can use it to explain the wait.
func (s *Socket) ConnectError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connErr
}

// ConnectFailed returns a channel that is closed when the next attempt to
// connect fails (ConnectError then says why). A caller waiting for a reply
// can give up at once on a failure that retrying will not mend, such as
// ErrMechanism or a peer's ERROR.
func (s *Socket) ConnectFailed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connFail == nil {
		s.connFail = make(chan struct{})
	}
	return s.connFail
}

// PeerType returns the Socket-Type a ROUTER's peer announced in its
// handshake, by the routing id its messages carry; false when no such peer
// is connected. A server uses it to refuse what that kind of socket cannot
// take (a REQ drops messages it did not ask for).
func (s *Socket) PeerType(routingID []byte) (SocketType, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byID[string(routingID)]
	if p == nil || p.c == nil {
		return "", false
	}
	return SocketType(p.c.peerType()), true
}

// PeerInfo is what a socket knows of a connected peer: what it announced
// and what its handshake proved.
type PeerInfo struct {
	Type       SocketType // the Socket-Type it announced
	UserID     string     // the mechanism's identity: CURVE client key in Z85, PLAIN user; "" for NULL
	RemoteAddr net.Addr   // the connection's remote address (a pipe's for inproc, a path for ipc)
}

func (c *conn) info() PeerInfo {
	return PeerInfo{Type: SocketType(c.peerType()), UserID: c.userID, RemoteAddr: c.nc.RemoteAddr()}
}

// Peer returns what a ROUTER knows of the peer whose messages carry
// routingID; false when no such peer is connected. A server uses it to
// decide what that peer may ask for.
func (s *Socket) Peer(routingID []byte) (PeerInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byID[string(routingID)]
	if p == nil || p.c == nil {
		return PeerInfo{}, false
	}
	return p.c.info(), true
}

// DropPeers closes every established connection for whose peer drop
// returns true (a key was revoked) and returns how many it closed. A
// connection made by Connect reconnects as usual; the peer's handshake is
// then checked afresh. drop runs under the socket's lock: it must not call
// the socket.
func (s *Socket) DropPeers(drop func(PeerInfo) bool) int {
	s.mu.Lock()
	var doomed []*conn
	for c := range s.conns {
		if c.ready.Load() && c.pipe != nil && c.pipe.c == c && drop(c.info()) {
			doomed = append(doomed, c)
		}
	}
	s.mu.Unlock()
	for _, c := range doomed {
		c.nc.Close() // the reader fails at once and detaches the pipe
	}
	return len(doomed)
}

// Disconnect closes the connection of the ROUTER peer routingID once what
// is queued for it has been written (a refusal that explains itself), or
// after a second if the peer does not read. It reports whether such a peer
// was connected.
func (s *Socket) Disconnect(routingID []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byID[string(routingID)]
	if p == nil || p.c == nil {
		return false
	}
	c := p.c
	c.closeFlushed.Store(true)
	time.AfterFunc(time.Second, func() { c.nc.Close() })
	p.kicked = false // wake the writer even if it is idle now
	s.kick(p)
	return true
}

func (s *Socket) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Socket) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// attach joins a connection that finished its handshake to a pipe.
func (s *Socket) attach(c *conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return ErrClosed
	}
	p := c.pipe
	if p == nil {
		if s.typ == PAIR && len(s.livePipes()) > 0 {
			return fmt.Errorf("%w: PAIR socket already has a peer", ErrSocketType)
		}
		p = &pipe{}
	}
	if s.typ == ROUTER {
		id, _ := c.meta.Get(PropRoutingID)
		if len(id) == 0 {
			id, _ = c.meta.Get(PropIdentity)
		}
		if len(id) == 0 || id[0] == 0 {
			// libzmq's generated ids: a zero byte then a counter.
			s.nextID++
			id = binary.BigEndian.AppendUint32([]byte{0}, s.nextID)
		} else {
			id = bytes.Clone(id)
		}
		if old, ok := s.byID[string(id)]; ok && old != p {
			return fmt.Errorf("%w: routing id %q already in use", ErrHandshake, id)
		}
		if p.id != nil {
			delete(s.byID, string(p.id))
		}
		p.id = id
		s.byID[string(id)] = p
		c.routerID = id
	}
	if c.pipe == nil {
		s.pipes = append(s.pipes, p)
	}
	if p.persistent {
		s.connErr = nil // an outgoing connection made it
	}
	c.pipe, p.c, p.v31 = p, c, c.v31
	p.dead = false
	// A new peer of a SUB learns every subscription.
	before := len(p.ctrl)
	for _, topic := range s.subs {
		p.ctrl = appendSubscription(p.ctrl, p.v31, topic, true)
	}
	s.pending += int64(len(p.ctrl) - before)
	p.kicked = false
	if len(p.out) > 0 || len(p.ctrl) > 0 {
		s.kick(p)
	}
	s.wakeSenders()
	return nil
}

// detach unhooks a finished connection from its pipe. A pipe made by
// Connect keeps its queued messages for the next connection; one made by
// an accepted peer dies, after its received messages are read.
func (s *Socket) detach(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := c.pipe
	if p == nil || p.c != c {
		return
	}
	s.detachLocked(p)
	s.dropPipe(p)
}

// detachLocked unhooks p from its connection; the caller drops the pipe
// from pipes if it died.
func (s *Socket) detachLocked(p *pipe) {
	p.c = nil
	p.maxPending = 0
	p.writing = false
	p.peerSubs, p.peerSubBytes = nil, 0
	s.settle(p) // what the writer holds is lost with the connection
	if !p.persistent {
		p.dead = true
		s.pending -= int64(len(p.out) + len(p.ctrl))
		p.out, p.outMsgs, p.ctrl = nil, 0, nil
	}
	p.spareOut, p.spareCtrl = nil, nil
	if s.typ == ROUTER && p.id != nil {
		delete(s.byID, string(p.id)) // unroutable until it reconnects and says its id
	}
	s.wakeSenders()
	s.wakeReceivers()
}

// settle ends the accounting of what p's writer took: written, or lost
// with the connection.
func (s *Socket) settle(p *pipe) {
	s.pending -= int64(p.inflight)
	p.inflight = 0
}

// pendingOf is what p holds that its peer has not been sent yet.
func (p *pipe) pendingOf() int64 { return int64(len(p.out) + len(p.ctrl) + p.inflight) }

// makeRoom checks that n more bytes for p's peer fit the byte budgets of
// the non-blocking patterns. Past MaxPendingBytes with something already
// pending, p is cut off and ErrSlowConsumer returned. Past
// MaxPendingTotal, the peers with the most pending are cut until it fits;
// ErrSlowConsumer if p was one of them.
func (s *Socket) makeRoom(p *pipe, n int64) error {
	limit := s.cfg.MaxPendingBytes
	if p.maxPending > 0 {
		limit = p.maxPending
	}
	if have := p.pendingOf(); have > 0 && have+n > limit {
		s.cutLocked(p, "max pending bytes", have+n)
		return ErrSlowConsumer
	}
	for s.pending+n > s.cfg.MaxPendingTotal {
		v := s.biggestPending()
		if v == nil {
			return nil // nothing queued anywhere: one big message may go
		}
		s.cutLocked(v, "max pending total", s.pending+n)
		if v == p {
			return ErrSlowConsumer
		}
	}
	return nil
}

// biggestPending returns the connected pipe with the most bytes pending.
func (s *Socket) biggestPending() *pipe {
	var big *pipe
	for _, p := range s.pipes {
		if p.c != nil && p.pendingOf() > 0 && (big == nil || p.pendingOf() > big.pendingOf()) {
			big = p
		}
	}
	return big
}

// cutLocked cuts off p's peer as a slow consumer: what was queued for it
// and what it sent that nobody received yet are dropped (a cut client's
// requests are not served), its buffers let go, its connection closed.
// A dead pipe stays in pipes until prunePipes, so that a Send looping over
// pipes may cut one.
func (s *Socket) cutLocked(p *pipe, why string, pending int64) {
	c := p.c
	if c == nil || c.cut {
		return
	}
	c.cut = true
	s.slowConsumers.Add(1)
	// Logged once per source and reason, with a count after: a client
	// that reconnects and is cut again must not flood the log.
	args := []any{"reason", why, "pending_bytes", pending,
		"max_pending_bytes", s.cfg.MaxPendingBytes, "max_pending_total", s.cfg.MaxPendingTotal}
	level, repeated := s.repeatedLocked(c.nc.RemoteAddr(), "slow consumer", why)
	if repeated > 0 {
		args = append(args, "repeated", repeated)
	}
	c.log.Log(context.Background(), level, "zmtp: slow consumer cut off", args...)
	s.pending -= int64(len(p.out) + len(p.ctrl))
	p.out, p.outMsgs, p.ctrl = nil, 0, nil
	p.in = msgQueue{}
	if p.roomWait != nil { // its reader may wait in deliver
		close(p.roomWait)
		p.roomWait = nil
	}
	s.detachLocked(p)
	s.prune = s.prune || p.dead
	c.nc.Close() // the reader and writer fail and end
}

// prunePipes drops the dead pipes cutLocked left.
func (s *Socket) prunePipes() {
	s.prune = false
	s.pipes = slices.DeleteFunc(s.pipes, func(p *pipe) bool { return p.dead && p.in.len() == 0 })
}

// SetPendingLimit gives the ROUTER peer routingID a MaxPendingBytes of its
// own (a trusted peer that is sent bursts, such as a joined server's
// snapshot); MaxPendingTotal still bounds it. It reports whether such a
// peer is connected; the limit ends with its connection.
func (s *Socket) SetPendingLimit(routingID []byte, n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byID[string(routingID)]
	if p == nil || p.c == nil {
		return false
	}
	p.maxPending = n
	return true
}

// SlowConsumers is how many peers the socket has cut off as slow
// consumers (Config.MaxPendingBytes, MaxPendingTotal, WriteTimeout).
func (s *Socket) SlowConsumers() int64 { return s.slowConsumers.Load() }

// dropPipe forgets a dead pipe once nothing is left to read from it.
func (s *Socket) dropPipe(p *pipe) {
	if p.dead && p.in.len() == 0 {
		s.removePipe(p)
	}
}

func (s *Socket) removePipe(p *pipe) {
	for i, q := range s.pipes {
		if q == p {
			s.pipes = append(s.pipes[:i], s.pipes[i+1:]...)
			return
		}
	}
}

func (s *Socket) livePipes() []*pipe {
	var live []*pipe
	for _, p := range s.pipes {
		if !p.dead {
			live = append(live, p)
		}
	}
	return live
}

// kick wakes p's writer unless it is already awake.
func (s *Socket) kick(p *pipe) {
	if p.c != nil && !p.kicked {
		p.kicked = true
		select {
		case p.c.wake <- struct{}{}:
		default:
		}
	}
}

func (s *Socket) wakeSenders() {
	if s.sendWait != nil {
		close(s.sendWait)
		s.sendWait = nil
	}
}

func (s *Socket) wakeReceivers() {
	if s.recvWait != nil {
		close(s.recvWait)
		s.recvWait = nil
	}
}

// wait releases s.mu until ch is closed, ctx ends or the deadline passes,
// then takes it again.
func (s *Socket) wait(ctx context.Context, ch chan struct{}, timer *time.Timer) error {
	var expired <-chan time.Time
	if timer != nil {
		expired = timer.C
	}
	s.mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = ErrTimeout
	}
	s.mu.Lock()
	return err
}

// timerSlot keeps one timer for the waits of a socket's Send or Recv, so
// that a request-reply loop with a timeout does not allocate one per call
// (the registry's server loop is one). A second concurrent waiter gets a
// timer of its own. Used under s.mu.
type timerSlot struct {
	t    *time.Timer
	busy bool
}

func (ts *timerSlot) get(d time.Duration) *time.Timer {
	if ts.busy {
		return time.NewTimer(d)
	}
	ts.busy = true
	if ts.t == nil {
		ts.t = time.NewTimer(d)
	} else {
		ts.t.Reset(d) // stopped by put; since Go 1.23 no stale tick remains
	}
	return ts.t
}

func (ts *timerSlot) put(t *time.Timer) {
	t.Stop()
	if t == ts.t {
		ts.busy = false
	}
}

func (s *Socket) sendWaitCh() chan struct{} {
	if s.sendWait == nil {
		s.sendWait = make(chan struct{})
	}
	return s.sendWait
}

func (s *Socket) recvWaitCh() chan struct{} {
	if s.recvWait == nil {
		s.recvWait = make(chan struct{})
	}
	return s.recvWait
}

// maxCtrl bounds the commands queued for one peer by what the peer sends
// (PONGs), and maxPeerSubs the bytes of subscriptions one peer may hold.
const (
	maxCtrl     = 64 << 10
	maxPeerSubs = 1 << 20
)

// queueCommand queues a command for c's peer ahead of its messages.
func (s *Socket) queueCommand(c *conn, name string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := c.pipe; p != nil && p.c == c && len(p.ctrl) < maxCtrl {
		// A peer that PINGs but never reads gets no more PONGs once
		// maxCtrl bytes of them wait: its TTL will expire instead.
		before := len(p.ctrl)
		p.ctrl = AppendCommand(p.ctrl, name, body)
		s.pending += int64(len(p.ctrl) - before)
		s.kick(p)
	}
}

// appendSubscription encodes a subscription change the way the peer's
// version expects: a SUBSCRIBE/CANCEL command for 3.1, a message whose
// first byte is 1 or 0 for 3.0.
func appendSubscription(dst []byte, v31 bool, topic []byte, on bool) []byte {
	if v31 {
		name := CmdCancel
		if on {
			name = CmdSubscribe
		}
		return AppendCommand(dst, name, topic)
	}
	flag := byte(0)
	if on {
		flag = 1
	}
	dst = AppendFrameHeader(dst, 0, 1+len(topic))
	return append(append(dst, flag), topic...)
}

// Close stops accepting and connecting, waits up to Linger for queued
// messages to be written, then closes every connection. No goroutine of
// the socket survives it.
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.wakeReceivers()
	s.wakeSenders()
	for _, p := range s.pipes {
		if p.roomWait != nil {
			close(p.roomWait)
			p.roomWait = nil
		}
	}
	listeners := s.listeners
	s.mu.Unlock()
	for _, l := range listeners {
		l.Close()
	}

	// Linger: let the writers drain what Send accepted.
	flushed := true
	if s.cfg.Linger > 0 {
		timer := time.NewTimer(s.cfg.Linger)
		s.mu.Lock()
		for !s.flushedLocked() {
			if s.wait(context.Background(), s.sendWaitCh(), timer) != nil {
				break
			}
		}
		flushed = s.flushedLocked()
		s.mu.Unlock()
		timer.Stop()
	} else {
		s.mu.Lock()
		flushed = s.flushedLocked()
		s.mu.Unlock()
	}
	if !flushed && s.cfg.Linger > 0 {
		s.log.Warn("zmtp: closing with unsent messages", "linger", s.cfg.Linger)
	} else if !flushed {
		s.log.Debug("zmtp: closing: unsent messages dropped (negative Linger)")
	}

	s.mu.Lock()
	s.shutting = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()
	for _, c := range conns {
		c.shutdown(flushed)
	}
	s.wg.Wait()
	return nil
}

func (s *Socket) flushedLocked() bool {
	for _, p := range s.pipes {
		if !p.dead && (len(p.out) > 0 || len(p.ctrl) > 0 || p.writing) {
			return false
		}
	}
	return true
}
