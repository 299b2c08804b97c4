package selfbench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/zmtp"
)

// The control protocol between the bench client (ZMTP) and a Responder.
// The responder binds a REP socket; every request and reply is one frame
// of JSON. A client says hello (several times: the replies' clock readings
// give the clock offset between the two hosts), opens a session, which
// binds the data sockets on ports of the system's choosing, sends its
// load, and finishes, which waits for the data to arrive and returns what
// the receivers measured. One session runs at a time.
const controlProto = 1

// ctlRequest is a control request.
type ctlRequest struct {
	Op      string  `json:"op"` // hello, open, status, finish
	Session string  `json:"session,omitempty"`
	Pattern Pattern `json:"pattern,omitempty"`
	Size    int     `json:"size,omitempty"`
	Conns   int     `json:"conns,omitempty"`
	HWM     int     `json:"hwm,omitempty"`
	// Offset is the responder's clock minus the client's, in ns, to turn
	// the send times stamped in messages into the responder's time.
	Offset int64 `json:"offset,omitempty"`
	// Sent is the number of data messages the client sent (finish): each
	// receiver expects them all (pub-sub) or their sum arrives at the one
	// receiver (push-pull).
	Sent int64 `json:"sent,omitempty"`
	// IdleMS is how long finish waits for the next message before it
	// gives up on the rest.
	IdleMS int64 `json:"idle_ms,omitempty"`
}

// ctlReply is a control reply.
type ctlReply struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	Proto   int    `json:"proto,omitempty"`   // hello
	Version string `json:"version,omitempty"` // hello: the responder's build
	Time    int64  `json:"time,omitempty"`    // hello: the responder's clock, Unix ns
	Session string `json:"session,omitempty"` // open
	// Endpoints are the data sockets bound (open).
	Endpoints []string `json:"endpoints,omitempty"`
	// Warm says, per receiver, whether a warm-up message arrived (status).
	Warm []bool `json:"warm,omitempty"`
	// Received is the data messages each receiver got (status, finish).
	Received []int64 `json:"received,omitempty"`
	// finish: first and last data message received (Unix ns, responder's
	// clock), malformed messages, and the one-way latency.
	First     int64    `json:"first,omitempty"`
	Last      int64    `json:"last,omitempty"`
	Malformed int64    `json:"malformed,omitempty"`
	Latency   *wireLat `json:"latency,omitempty"`
}

type wireLat struct {
	Samples int64 `json:"samples"`
	P50     int64 `json:"p50"`
	P90     int64 `json:"p90"`
	P99     int64 `json:"p99"`
	Max     int64 `json:"max"`
}

func (l *Latency) wire() *wireLat {
	if l == nil {
		return nil
	}
	return &wireLat{l.Samples, int64(l.P50), int64(l.P90), int64(l.P99), int64(l.Max)}
}

func (w *wireLat) latency() *Latency {
	if w == nil || w.Samples == 0 {
		return nil
	}
	return &Latency{w.Samples, time.Duration(w.P50), time.Duration(w.P90), time.Duration(w.P99), time.Duration(w.Max)}
}

// Responder is the far end of the zmtp bench (`hydra-server bench serve`):
// it receives push-pull and pub-sub load and measures it, and echoes
// req-rep requests. Data sockets bind the control endpoint's host on ports
// the system picks, so a firewall between bench client and responder must
// let those through.
type Responder struct {
	ctl     *zmtp.Socket
	network string // "tcp" or "ipc"
	host    string // where data sockets bind
	version string
	log     *slog.Logger

	mu   sync.Mutex
	sess *session
	seq  int
}

// Defaults of ResponderConfig.
const (
	DefaultResponderEndpoint = "tcp://127.0.0.1:0"
	DefaultResponderVersion  = "selfbench"
)

// ResponderConfig configures NewResponder. The zero value listens on
// 127.0.0.1, on a port the system picks.
type ResponderConfig struct {
	// Endpoint is where the control socket binds: tcp://HOST:PORT (port 0:
	// the system picks) or ipc://PATH. Default tcp://127.0.0.1:0.
	Endpoint string
	// Version is reported to clients (hello). Default "selfbench".
	Version string
	// Logger receives session events. Default nil: discarded.
	Logger *slog.Logger
}

// Validate reports an Endpoint that is neither tcp://HOST:PORT nor
// ipc://PATH.
func (c ResponderConfig) Validate() error {
	if c.Endpoint == "" {
		return nil
	}
	if _, _, err := splitEndpoint(c.Endpoint); err != nil {
		return configError("ResponderConfig", "Endpoint", "%v", err)
	}
	return nil
}

func (c ResponderConfig) withDefaults() ResponderConfig {
	if c.Endpoint == "" {
		c.Endpoint = DefaultResponderEndpoint
	}
	if c.Version == "" {
		c.Version = DefaultResponderVersion
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// splitEndpoint returns the network of a tcp://HOST:PORT or ipc://PATH
// endpoint, and the HOST or PATH its data sockets bind.
func splitEndpoint(ep string) (network, host string, err error) {
	switch {
	case strings.HasPrefix(ep, "tcp://"):
		hp := strings.TrimPrefix(ep, "tcp://")
		i := strings.LastIndexByte(hp, ':')
		if i < 0 {
			return "", "", fmt.Errorf("%q: want tcp://HOST:PORT", ep)
		}
		return "tcp", hp[:i], nil
	case strings.HasPrefix(ep, "ipc://"):
		return "ipc", strings.TrimPrefix(ep, "ipc://"), nil
	}
	return "", "", fmt.Errorf("%q: want tcp://HOST:PORT or ipc://PATH", ep)
}

// NewResponder binds the control socket. Serve answers it.
func NewResponder(cfg ResponderConfig) (*Responder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &Responder{version: cfg.Version, log: cfg.Logger}
	r.network, r.host, _ = splitEndpoint(cfg.Endpoint)
	ctl, err := zmtp.NewSocket(zmtp.REP, zmtp.Config{Linger: time.Second})
	if err != nil {
		return nil, err
	}
	if err := ctl.Bind(cfg.Endpoint); err != nil {
		ctl.Close()
		return nil, err
	}
	r.ctl = ctl
	return r, nil
}

// Endpoint returns the control endpoint bound (with the port chosen).
func (r *Responder) Endpoint() string { return r.ctl.Endpoint() }

// Serve answers control requests until ctx is done or Close is called.
func (r *Responder) Serve(ctx context.Context) error {
	defer r.endSession()
	for {
		msg, err := r.ctl.RecvContext(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, zmtp.ErrClosed) {
				return nil
			}
			return err
		}
		var rep ctlReply
		var req ctlRequest
		if len(msg) != 1 {
			rep.Error = fmt.Sprintf("want a one-frame JSON request, got %d frames", len(msg))
		} else if err := json.Unmarshal(msg[0], &req); err != nil {
			rep.Error = "bad request: " + err.Error()
		} else {
			rep = r.handle(ctx, &req)
		}
		b, _ := json.Marshal(rep)
		if err := r.ctl.SendContext(ctx, b); err != nil {
			if ctx.Err() != nil || errors.Is(err, zmtp.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// Close stops Serve and any session.
func (r *Responder) Close() error {
	r.endSession()
	return r.ctl.Close()
}

// staleSession is how long a session may go without a control request
// before another client may take over the responder.
const staleSession = 30 * time.Second

func (r *Responder) handle(ctx context.Context, req *ctlRequest) ctlReply {
	switch req.Op {
	case "hello":
		return ctlReply{OK: true, Proto: controlProto, Version: r.version, Time: time.Now().UnixNano()}
	case "open":
		return r.open(req)
	case "status", "finish":
		r.mu.Lock()
		s := r.sess
		r.mu.Unlock()
		if s == nil || s.id != req.Session {
			return ctlReply{Error: fmt.Sprintf("no session %q (it ended, or another client took over)", req.Session)}
		}
		s.touched.Store(time.Now().UnixNano())
		if req.Op == "status" {
			return s.status()
		}
		rep := s.finish(ctx, req)
		r.mu.Lock()
		if r.sess == s {
			r.sess = nil
		}
		r.mu.Unlock()
		r.log.Info("bench session finished", "session", s.id, "pattern", s.pattern, "received", rep.Received)
		return rep
	}
	return ctlReply{Error: fmt.Sprintf("unknown op %q", req.Op)}
}

func (r *Responder) endSession() {
	r.mu.Lock()
	s := r.sess
	r.sess = nil
	r.mu.Unlock()
	if s != nil {
		s.stop()
	}
}

func (r *Responder) open(req *ctlRequest) ctlReply {
	if err := req.check(); err != nil {
		return ctlReply{Error: err.Error()}
	}
	seq, err := r.takeOver()
	if err != nil {
		return ctlReply{Error: err.Error()}
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	s := &session{id: fmt.Sprintf("%d-%s", seq, hex.EncodeToString(rnd[:])), pattern: req.Pattern, size: req.Size, offset: req.Offset}
	s.touched.Store(time.Now().UnixNano())
	s.ctx, s.cancel = context.WithCancel(context.Background())
	eps, err := r.bindData(s, req, seq)
	if err != nil {
		s.stop()
		return ctlReply{Error: err.Error()}
	}
	s.start()
	r.mu.Lock()
	r.sess = s
	r.mu.Unlock()
	r.log.Info("bench session opened", "session", s.id, "pattern", s.pattern, "size", s.size, "sockets", len(s.socks))
	return ctlReply{OK: true, Session: s.id, Endpoints: eps}
}

// takeOver ends a stale session, if any, and returns the new session's
// sequence number; it fails while another client's session is live.
func (r *Responder) takeOver() (seq int, err error) {
	r.mu.Lock()
	if old := r.sess; old != nil {
		if time.Since(time.Unix(0, old.touched.Load())) < staleSession {
			r.mu.Unlock()
			return 0, errors.New("busy: another bench client is running (one at a time)")
		}
		r.sess = nil
		r.mu.Unlock()
		old.stop()
		r.mu.Lock()
	}
	r.seq++
	seq = r.seq
	r.mu.Unlock()
	return seq, nil
}

// bindData binds the session's data sockets (one PULL or REP, or a SUB
// per subscriber) and returns their endpoints.
func (r *Responder) bindData(s *session, req *ctlRequest, seq int) ([]string, error) {
	opt := zmtp.Config{SendHWM: req.HWM, RecvHWM: req.HWM, Linger: -1, MaxMsgSize: int64(req.Size) + 1024}
	typ, n := zmtp.PULL, 1
	switch req.Pattern {
	case ReqRep:
		typ = zmtp.REP
	case PubSub:
		typ, n = zmtp.SUB, req.Conns
	}
	var eps []string
	for i := range n {
		sock, err := zmtp.NewSocket(typ, opt)
		if err != nil {
			return nil, err
		}
		s.socks = append(s.socks, sock)
		if err := sock.Bind(r.dataEndpoint(seq, i)); err != nil {
			return nil, err
		}
		if typ == zmtp.SUB {
			if err := sock.Subscribe(nil); err != nil {
				return nil, err
			}
		}
		eps = append(eps, sock.Endpoint())
	}
	return eps, nil
}

// start runs a goroutine per data socket: an echo for req-rep, a
// receiver that measures otherwise.
func (s *session) start() {
	for _, sock := range s.socks {
		if s.pattern == ReqRep {
			s.wg.Add(1)
			go s.echo(sock)
			continue
		}
		rc := &receiver{hist: NewHistogram()}
		s.recv = append(s.recv, rc)
		s.wg.Add(1)
		go s.receive(sock, rc)
	}
}

func (r *Responder) dataEndpoint(seq, i int) string {
	if r.network == "ipc" {
		return fmt.Sprintf("ipc://%s.%d.%d", r.host, seq, i)
	}
	return "tcp://" + r.host + ":0"
}

func (req *ctlRequest) check() error {
	switch req.Pattern {
	case PushPull, ReqRep, PubSub:
	default:
		return fmt.Errorf("unknown pattern %q (want %s, %s or %s)", req.Pattern, PushPull, ReqRep, PubSub)
	}
	if req.Size < 0 || req.Size > MaxSize {
		return fmt.Errorf("size %d out of range 0-%d", req.Size, MaxSize)
	}
	if req.Conns < 1 || req.Conns > MaxConcurrency {
		return fmt.Errorf("conns %d out of range 1-%d", req.Conns, MaxConcurrency)
	}
	if req.HWM < 0 || req.HWM > 10_000_000 {
		return fmt.Errorf("hwm %d out of range", req.HWM)
	}
	return nil
}

// session is one client's run: its data sockets and what they received.
type session struct {
	id      string
	pattern Pattern
	size    int
	offset  int64
	touched atomic.Int64 // last control request, Unix ns

	ctx    context.Context
	cancel context.CancelFunc
	socks  []*zmtp.Socket
	recv   []*receiver
	wg     sync.WaitGroup
	once   sync.Once
}

// receiver is what one receiving socket measured.
type receiver struct {
	count       atomic.Int64 // data messages
	malformed   atomic.Int64 // wrong size or frame count
	warm        atomic.Bool  // a warm-up message arrived
	first, last atomic.Int64 // Unix ns of the first and last data message
	hist        *Histogram   // the receive goroutine's own until it ends
}

// A warm-up message has two frames; data messages have one, of the
// session's size, starting with the send time (Unix ns, little endian) when
// at least 8 bytes long.
func (s *session) receive(sock *zmtp.Socket, rc *receiver) {
	defer s.wg.Done()
	stamp := s.size >= 8
	for {
		msg, err := sock.RecvContext(s.ctx)
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		if len(msg) == 2 {
			rc.warm.Store(true)
			continue
		}
		if len(msg) != 1 || len(msg[0]) != s.size {
			rc.malformed.Add(1)
			continue
		}
		if stamp {
			sent := int64(binary.LittleEndian.Uint64(msg[0]))
			rc.hist.Record(time.Duration(now - s.offset - sent))
		}
		if rc.count.Load() == 0 {
			rc.first.Store(now)
		}
		rc.last.Store(now)
		rc.count.Add(1)
	}
}

func (s *session) echo(sock *zmtp.Socket) {
	defer s.wg.Done()
	for {
		msg, err := sock.RecvContext(s.ctx)
		if err != nil {
			return
		}
		if err := sock.SendContext(s.ctx, msg...); err != nil {
			return
		}
	}
}

func (s *session) status() ctlReply {
	rep := ctlReply{OK: true}
	for _, rc := range s.recv {
		rep.Warm = append(rep.Warm, rc.warm.Load())
		rep.Received = append(rep.Received, rc.count.Load())
	}
	return rep
}

// finish waits until the receivers have what was sent, or nothing arrived
// for the idle time, then stops the session and reports.
func (s *session) finish(ctx context.Context, req *ctlRequest) ctlReply {
	idle := time.Duration(req.IdleMS) * time.Millisecond
	if idle <= 0 {
		idle = 2 * time.Second
	}
	if len(s.recv) > 0 {
		// Each SUB gets every message; the one PULL gets them all.
		want := req.Sent
		var last int64 = -1
		lastChange := time.Now()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
	wait:
		for {
			var total int64
			done := true
			for _, rc := range s.recv {
				n := rc.count.Load()
				total += n
				done = done && n >= want
			}
			switch {
			case done:
				break wait
			case total != last:
				last, lastChange = total, time.Now()
			case time.Since(lastChange) > idle:
				break wait
			}
			select {
			case <-ctx.Done():
				break wait
			case <-tick.C:
			}
		}
	}
	s.stop()
	rep := ctlReply{OK: true}
	hist := NewHistogram()
	for _, rc := range s.recv {
		n := rc.count.Load()
		rep.Received = append(rep.Received, n)
		rep.Malformed += rc.malformed.Load()
		hist.Merge(rc.hist)
		if n == 0 {
			continue
		}
		if f := rc.first.Load(); rep.First == 0 || f < rep.First {
			rep.First = f
		}
		rep.Last = max(rep.Last, rc.last.Load())
	}
	rep.Latency = hist.Latency().wire()
	return rep
}

// stop closes the data sockets and waits for their goroutines.
func (s *session) stop() {
	s.once.Do(func() {
		s.cancel()
		for _, sock := range s.socks {
			sock.Close()
		}
		s.wg.Wait()
	})
}
