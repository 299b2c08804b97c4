package selfbench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/zmtp"
)

// Pattern is a zmtp bench pattern.
type Pattern string

// The zmtp patterns, each measured between the bench client and a
// Responder:
//
//   - push-pull: Concurrency PUSH sockets send to the responder's one PULL,
//     which measures messages/s from the first message received to the
//     last, and the one-way latency from the send time stamped in each
//     message to its receipt.
//   - req-rep: Concurrency REQ sockets do round trips with the
//     responder's REP, which echoes; the client measures round trips/s and
//     the round trip.
//   - pub-sub: one PUB sends to Concurrency SUB sockets on the responder,
//     each receiving every message (fan-out); as push-pull, with the
//     messages dropped at the high-water mark counted as lost.
const (
	PushPull Pattern = "push-pull"
	ReqRep   Pattern = "req-rep"
	PubSub   Pattern = "pub-sub"
)

// Patterns lists the zmtp patterns in the order `bench zmtp` runs them.
var Patterns = []Pattern{PushPull, ReqRep, PubSub}

// Defaults of ZMTPConfig (and DefaultSize, DefaultDuration,
// DefaultTimeout, DefaultConcurrency of every bench).
const (
	DefaultPattern = PushPull
	// DefaultHWM is zmtp's (and libzmq's) default high-water mark.
	DefaultHWM = 1000
)

// ZMTPConfig says what ZMTP measures. The zero value measures push-pull of
// 256-byte messages for 2s against a Responder in this process.
type ZMTPConfig struct {
	// Target is the control endpoint of a Responder (`hydra-server bench
	// serve`), tcp://HOST:PORT. Default empty: start one in this process
	// on 127.0.0.1 (client and responder then share this process's CPUs).
	Target string
	// Pattern is PushPull, ReqRep or PubSub. Default PushPull.
	Pattern Pattern
	// Size is the message size in bytes, at most MaxSize. Default 256.
	Size int
	// Count is the number of messages (round trips for req-rep) to send.
	// Default 0: send for Duration.
	Count int64
	// Duration is how long to send when Count is 0. Default 2s.
	Duration time.Duration
	// Concurrency is the number of PUSH or REQ sockets sending at once, or
	// of SUB sockets receiving (pub-sub), at most MaxConcurrency. Default
	// 1.
	Concurrency int
	// HWM is the send and receive high-water mark of every socket.
	// Default 1000.
	HWM int
	// Rate, when positive, caps the messages (round trips) sent per
	// second in all, to measure latency under a given load rather than at
	// saturation. Default 0: as fast as possible.
	Rate float64
	// Timeout bounds each control exchange and how long the bench waits
	// without progress before it gives up. Default 10s.
	Timeout time.Duration
	// Progress, when set, is advanced by every message or round trip sent,
	// for a progress display. Default nil.
	Progress *atomic.Int64
}

// Validate reports the first field out of range.
func (c ZMTPConfig) Validate() error {
	bad := func(field, format string, args ...any) error {
		return configError("ZMTPConfig", field, format, args...)
	}
	switch {
	case c.Pattern != "" && !slices.Contains(Patterns, c.Pattern):
		return bad("Pattern", "unknown pattern %q (want push-pull, req-rep or pub-sub)", c.Pattern)
	case c.Size < 0 || c.Size > MaxSize:
		return bad("Size", "%d out of range 1-%d", c.Size, MaxSize)
	case c.Count < 0 || c.Count > maxCount:
		return bad("Count", "%d out of range 0-%d", c.Count, int64(maxCount))
	case c.Duration < 0:
		return bad("Duration", "negative")
	case c.Concurrency < 0 || c.Concurrency > MaxConcurrency:
		return bad("Concurrency", "%d out of range 1-%d", c.Concurrency, MaxConcurrency)
	case c.HWM < 0:
		return bad("HWM", "negative")
	case !(c.Rate >= 0) || math.IsInf(c.Rate, 0):
		return bad("Rate", "%v: want a positive rate", c.Rate)
	case c.Timeout < 0:
		return bad("Timeout", "negative")
	}
	return nil
}

func (c ZMTPConfig) withDefaults() ZMTPConfig {
	if c.Pattern == "" {
		c.Pattern = DefaultPattern
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Count == 0 && c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.HWM == 0 {
		c.HWM = DefaultHWM
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Progress == nil {
		c.Progress = new(atomic.Int64)
	}
	return c
}

// ZMTP runs one zmtp case against cfg.Target, or against a Responder it
// starts in this process.
func ZMTP(ctx context.Context, cfg ZMTPConfig) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	res := Result{Bench: KindZMTP, Case: string(cfg.Pattern), Target: cfg.Target, Size: cfg.Size, Concurrency: cfg.Concurrency}
	target, inProcess := cfg.Target, cfg.Target == ""
	if inProcess {
		r, err := NewResponder(ResponderConfig{})
		if err != nil {
			return res, err
		}
		defer r.Close()
		go r.Serve(context.Background())
		target, res.Target = r.Endpoint(), InProcess
	}
	ctl, err := dialControl(target, cfg.Timeout)
	if err != nil {
		return res, err
	}
	defer ctl.close()
	offset, clockError, err := ctl.clockOffset(ctx, inProcess)
	if err != nil {
		return res, err
	}
	if cfg.Pattern != ReqRep && cfg.Size >= 8 {
		res.ClockError = clockError
	}
	session, eps, err := ctl.open(ctx, cfg, offset)
	if err != nil {
		return res, err
	}
	if err := runSession(ctx, cfg, ctl, session, eps, &res); err != nil {
		if !inProcess {
			abortSession(target, session)
		}
		return res, err
	}
	return res, nil
}

// clockOffset returns the responder's clock minus this one's, from the
// hello exchange with the shortest round trip, and half that round trip,
// which bounds the offset's error. In one process both are zero.
func (c *control) clockOffset(ctx context.Context, inProcess bool) (offset int64, clockError time.Duration, err error) {
	var best time.Duration = -1
	for range 5 {
		t0 := time.Now()
		rep, err := c.call(ctx, &ctlRequest{Op: "hello"})
		if err != nil {
			return 0, 0, err
		}
		rtt := time.Since(t0)
		if rep.Proto != controlProto {
			return 0, 0, fmt.Errorf("selfbench: %s speaks bench protocol %d, want %d (%s)", c.target, rep.Proto, controlProto, rep.Version)
		}
		if inProcess {
			return 0, 0, nil
		}
		if best < 0 || rtt < best {
			best = rtt
			offset = rep.Time - (t0.UnixNano() + int64(rtt)/2)
		}
	}
	return offset, best / 2, nil
}

// open opens a session on the responder and returns its id and the data
// endpoints to connect to.
func (c *control) open(ctx context.Context, cfg ZMTPConfig, offset int64) (session string, eps []string, err error) {
	open, err := c.call(ctx, &ctlRequest{Op: "open", Pattern: cfg.Pattern, Size: cfg.Size, Conns: cfg.Concurrency, HWM: cfg.HWM, Offset: offset})
	if err != nil {
		return "", nil, err
	}
	for _, ep := range open.Endpoints {
		eps = append(eps, dataEndpoint(c.target, ep))
	}
	want := 1
	if cfg.Pattern == PubSub {
		want = cfg.Concurrency
	}
	if len(eps) != want {
		return open.Session, nil, fmt.Errorf("selfbench: responder opened %d data sockets, want %d", len(eps), want)
	}
	return open.Session, eps, nil
}

// runSession sends the load of cfg.Pattern to the session's data sockets
// and fills in res. A run that stops making progress for Timeout is
// cancelled.
func runSession(ctx context.Context, cfg ZMTPConfig, ctl *control, session string, eps []string, res *Result) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := watchProgress(rctx, cancel, cfg.Progress, cfg.Timeout)
	defer stopWatch()

	r := &zrun{cfg: cfg, ctx: rctx, ctl: ctl, session: session, eps: eps, stopWatch: stopWatch}
	var err error
	switch cfg.Pattern {
	case PushPull:
		err = r.pushPull(res)
	case ReqRep:
		err = r.reqRep(res)
	case PubSub:
		err = r.pubSub(res)
	}
	if err != nil {
		if c := context.Cause(rctx); c != nil && ctx.Err() == nil {
			err = c
		}
	}
	return err
}

// abortSession ends a session that failed half-way, over a new control
// connection (the old one may be waiting for a reply), so that the
// responder is free for the next run; best effort: an abandoned session
// also ends when another client opens one after staleSession.
func abortSession(target, session string) {
	ctl, err := dialControl(target, time.Second)
	if err != nil {
		return
	}
	defer ctl.close()
	ctl.call(context.Background(), &ctlRequest{Op: "finish", Session: session, IdleMS: 1})
}

// errStalled cancels a run that stopped making progress.
type errStalled struct{ d time.Duration }

func (e errStalled) Error() string { return fmt.Sprintf("selfbench: no progress for %v", e.d) }

// watchProgress cancels ctx with errStalled when n stays the same for d.
// The returned func stops watching.
func watchProgress(ctx context.Context, cancel context.CancelCauseFunc, n *atomic.Int64, d time.Duration) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(min(d/4, 100*time.Millisecond))
		defer tick.Stop()
		last, since := n.Load(), time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if v := n.Load(); v != last {
				last, since = v, time.Now()
			} else if time.Since(since) > d {
				cancel(errStalled{d})
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// dataEndpoint turns a data endpoint the responder bound into one to
// connect to: the port on the host the control endpoint named.
func dataEndpoint(target, bound string) string {
	if !strings.HasPrefix(target, "tcp://") || !strings.HasPrefix(bound, "tcp://") {
		return bound
	}
	th, bh := strings.TrimPrefix(target, "tcp://"), strings.TrimPrefix(bound, "tcp://")
	ti, bi := strings.LastIndexByte(th, ':'), strings.LastIndexByte(bh, ':')
	if ti < 0 || bi < 0 {
		return bound
	}
	return "tcp://" + th[:ti] + bh[bi:]
}

// control is the client's REQ socket to a responder.
type control struct {
	s       *zmtp.Socket
	target  string
	timeout time.Duration
}

func dialControl(target string, timeout time.Duration) (*control, error) {
	s, err := zmtp.NewSocket(zmtp.REQ, zmtp.Config{Linger: -1})
	if err != nil {
		return nil, err
	}
	if err := s.Connect(target); err != nil {
		s.Close()
		return nil, err
	}
	return &control{s: s, target: target, timeout: timeout}, nil
}

func (c *control) close() { c.s.Close() }

// call does one control exchange, bounded by the timeout (finish waits
// for the data to arrive: it gets idle more on top).
func (c *control) call(ctx context.Context, req *ctlRequest) (ctlReply, error) {
	var rep ctlReply
	d := c.timeout
	if req.Op == "finish" {
		d += time.Duration(req.IdleMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	b, _ := json.Marshal(req)
	if err := c.s.SendContext(ctx, b); err != nil {
		return rep, c.fail(ctx, req.Op, err)
	}
	msg, err := c.s.RecvContext(ctx)
	if err != nil {
		return rep, c.fail(ctx, req.Op, err)
	}
	if len(msg) != 1 || json.Unmarshal(msg[0], &rep) != nil {
		return rep, fmt.Errorf("selfbench: %s is not a bench responder (start one with `hydra-server bench serve`; a registry is measured with `bench registry --target`)", c.target)
	}
	if !rep.OK {
		return rep, fmt.Errorf("selfbench: responder: %s", rep.Error)
	}
	return rep, nil
}

func (c *control) fail(ctx context.Context, op string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("selfbench: no answer from a bench responder at %s within %v (%s); is `hydra-server bench serve` running there?", c.target, c.timeout, op)
	}
	return fmt.Errorf("selfbench: control %s: %w", op, err)
}

// zrun is one zmtp case under way.
type zrun struct {
	cfg     ZMTPConfig
	ctx     context.Context
	ctl     *control
	session string
	eps     []string
	// stopWatch ends the stall watch once everything is sent: the
	// responder bounds the wait for the rest.
	stopWatch func()
}

// budget hands out messages to send: a count shared by the workers, or a
// deadline.
type budget struct {
	left     atomic.Int64
	counted  bool
	deadline time.Time
}

func newBudget(cfg ZMTPConfig) *budget {
	b := &budget{counted: cfg.Count > 0}
	if b.counted {
		b.left.Store(cfg.Count)
	} else {
		b.deadline = time.Now().Add(cfg.Duration)
	}
	return b
}

// claim returns how many of up to n more messages to send; 0 means stop.
func (b *budget) claim(n int64) int64 {
	if !b.counted {
		if time.Now().After(b.deadline) {
			return 0
		}
		return n
	}
	left := b.left.Add(-n)
	switch {
	case left >= 0:
		return n
	case left > -n:
		return n + left
	}
	return 0
}

// pacer spaces a worker's sends at rate per second.
type pacer struct {
	start time.Time
	every time.Duration
}

func newPacer(rate float64, workers int) pacer {
	if rate <= 0 {
		return pacer{}
	}
	return pacer{start: time.Now(), every: time.Duration(float64(time.Second) * float64(workers) / rate)}
}

// wait sleeps until message n is due.
func (p pacer) wait(ctx context.Context, n int64) {
	if p.every == 0 {
		return
	}
	if d := time.Until(p.start.Add(time.Duration(n) * p.every)); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// batch is how many messages a sender claims at a time: about a
// millisecond's worth when paced, 256 otherwise.
func (r *zrun) batch() int64 {
	if r.cfg.Rate > 0 {
		return min(max(int64(r.cfg.Rate/float64(r.cfg.Concurrency)/1000), 1), 256)
	}
	return 256
}

func (r *zrun) socket(t zmtp.SocketType) (*zmtp.Socket, error) {
	return zmtp.NewSocket(t, zmtp.Config{SendHWM: r.cfg.HWM, RecvHWM: r.cfg.HWM, Linger: r.cfg.Timeout,
		MaxMsgSize: int64(r.cfg.Size) + 1024})
}

// send sends messages from one socket until the budget runs out, stamping
// each with the send time when it has room for it.
//
// credit, when set, is called before each batch with the number sent so
// far, and may wait: pub-sub's flow control.
func (r *zrun) send(s *zmtp.Socket, b *budget, p pacer, sent *atomic.Int64, credit func(sent, batch int64) error) error {
	msg := bytes.Repeat([]byte{'h'}, r.cfg.Size)
	stamp := r.cfg.Size >= 8
	step := r.batch()
	if credit != nil {
		step = min(step, max(int64(r.cfg.HWM)/4, 1))
	}
	var n int64
	for {
		k := b.claim(step)
		if k == 0 {
			return nil
		}
		p.wait(r.ctx, n)
		if credit != nil {
			if err := credit(n, k); err != nil {
				return err
			}
		}
		for range k {
			if stamp {
				binary.LittleEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
			}
			if err := s.SendContext(r.ctx, msg); err != nil {
				return err
			}
		}
		n += k
		sent.Add(k)
		r.cfg.Progress.Add(k)
	}
}

func (r *zrun) pushPull(res *Result) error {
	socks, err := r.connect(zmtp.PUSH, r.cfg.Concurrency, r.eps[0])
	defer closeSockets(socks)
	if err != nil {
		return err
	}
	b := newBudget(r.cfg)
	var sent atomic.Int64
	errs := make([]error, len(socks))
	var wg sync.WaitGroup
	for i, s := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.send(s, b, newPacer(r.cfg.Rate, r.cfg.Concurrency), &sent, nil)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return r.finish(res, sent.Load(), sent.Load())
}

// connect opens n sockets of type t connected to ep. The sockets are
// returned, for closing, even with an error.
func (r *zrun) connect(t zmtp.SocketType, n int, ep string) ([]*zmtp.Socket, error) {
	var socks []*zmtp.Socket
	for range n {
		s, err := r.socket(t)
		if err != nil {
			return socks, err
		}
		socks = append(socks, s)
		if err := s.Connect(ep); err != nil {
			return socks, err
		}
	}
	return socks, nil
}

func closeSockets(socks []*zmtp.Socket) {
	for _, s := range socks {
		s.Close()
	}
}

func (r *zrun) pubSub(res *Result) error {
	pub, err := r.socket(zmtp.PUB)
	if err != nil {
		return err
	}
	defer pub.Close()
	for _, ep := range r.eps {
		if err := pub.Connect(ep); err != nil {
			return err
		}
	}
	// Warm up: publish two-frame messages until every subscriber has one,
	// so that no data message is sent before the subscriptions arrived.
	warmUntil := time.Now().Add(r.cfg.Timeout)
	for {
		if err := pub.SendContext(r.ctx, []byte("warm-up"), nil); err != nil {
			return err
		}
		st, err := r.ctl.call(r.ctx, &ctlRequest{Op: "status", Session: r.session})
		if err != nil {
			return err
		}
		if len(st.Warm) == len(r.eps) && !slices.Contains(st.Warm, false) {
			break
		}
		if time.Now().After(warmUntil) {
			return fmt.Errorf("selfbench: subscribers not connected within %v", r.cfg.Timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Flow control: a PUB socket drops what does not fit under its
	// high-water mark, so a publisher faster than its subscribers would
	// measure mostly drops (and starve the subscribers of CPU when they
	// share the machine). The publisher keeps at most HWM messages ahead
	// of the slowest subscriber, as the responder's status reports, which
	// is lossless and keeps every subscriber busy: the figure is the
	// subscribers' rate.
	window := int64(r.cfg.HWM)
	var acked int64 // fewest messages any subscriber has received
	credit := func(sent, batch int64) error {
		for sent+batch-acked > window {
			st, err := r.ctl.call(r.ctx, &ctlRequest{Op: "status", Session: r.session})
			if err != nil {
				return err
			}
			if len(st.Received) > 0 {
				acked = slices.Min(st.Received)
			}
		}
		return nil
	}
	var sent atomic.Int64
	if err := r.send(pub, newBudget(r.cfg), newPacer(r.cfg.Rate, 1), &sent, credit); err != nil {
		return err
	}
	n := sent.Load()
	if err := r.finish(res, n, n*int64(len(r.eps))); err != nil {
		return err
	}
	if res.Lost > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of %d messages lost", res.Lost, res.Expected))
	}
	return nil
}

// finish asks the responder for what arrived of the sent messages
// (expected in all) and fills in res.
func (r *zrun) finish(res *Result, sent, expected int64) error {
	r.stopWatch()
	idle := 2 * time.Second
	if r.cfg.Pattern == PushPull {
		idle = r.cfg.Timeout // nothing is dropped: wait for all
	}
	rep, err := r.ctl.call(r.ctx, &ctlRequest{Op: "finish", Session: r.session, Sent: sent, IdleMS: idle.Milliseconds()})
	if err != nil {
		return err
	}
	var got, intervals int64
	for _, n := range rep.Received {
		got += n
		if n > 0 {
			intervals += n - 1
		}
	}
	res.Count, res.Expected, res.Errors = got, expected, rep.Malformed
	res.Lost = max(expected-got, 0)
	if rep.Last > rep.First {
		res.Elapsed = time.Duration(rep.Last - rep.First)
		res.MsgsPerSec = float64(intervals) / res.Elapsed.Seconds()
		res.MBPerSec = res.MsgsPerSec * float64(r.cfg.Size) / 1e6
	}
	res.Latency = rep.Latency.latency()
	if r.cfg.Pattern == PushPull && res.Lost > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("partial: %d of %d messages arrived (nothing more for %v)", got, expected, idle))
	}
	if got == 0 {
		return fmt.Errorf("selfbench: no message arrived of %d sent", sent)
	}
	return nil
}

func (r *zrun) reqRep(res *Result) error {
	socks, err := r.connect(zmtp.REQ, r.cfg.Concurrency, r.eps[0])
	defer closeSockets(socks)
	if err != nil {
		return err
	}
	b := newBudget(r.cfg)
	hists := make([]*Histogram, len(socks))
	errs := make([]error, len(socks))
	// Each socket makes one round trip to connect before the clock starts.
	var ready, wg sync.WaitGroup
	begin := make(chan struct{})
	ready.Add(len(socks))
	for i, s := range socks {
		hists[i] = NewHistogram()
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.roundTrips(s, b, hists[i], ready.Done, begin)
		}()
	}
	ready.Wait()
	if !b.counted {
		b.deadline = time.Now().Add(r.cfg.Duration) // from the start of the clock
	}
	start := time.Now()
	close(begin)
	wg.Wait()
	r.fillRoundTrips(res, time.Since(start), hists)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_, err = r.ctl.call(r.ctx, &ctlRequest{Op: "finish", Session: r.session})
	return err
}

// roundTrips is one REQ socket's part of req-rep: a round trip to connect
// (then ready), and once begin is closed, timed round trips until the
// budget runs out.
func (r *zrun) roundTrips(s *zmtp.Socket, b *budget, h *Histogram, ready func(), begin <-chan struct{}) error {
	msg := bytes.Repeat([]byte{'h'}, r.cfg.Size)
	err := r.roundTrip(s, msg)
	ready()
	if err != nil {
		return err
	}
	<-begin
	p := newPacer(r.cfg.Rate, r.cfg.Concurrency)
	var done int64
	for b.claim(1) == 1 {
		p.wait(r.ctx, done)
		t0 := time.Now()
		if err := r.roundTrip(s, msg); err != nil {
			return err
		}
		h.Record(time.Since(t0))
		done++
		r.cfg.Progress.Add(1)
	}
	return nil
}

// roundTrip sends msg and checks the echo.
func (r *zrun) roundTrip(s *zmtp.Socket, msg []byte) error {
	if err := s.SendContext(r.ctx, msg); err != nil {
		return err
	}
	rep, err := s.RecvContext(r.ctx)
	if err != nil {
		return err
	}
	if len(rep) != 1 || len(rep[0]) != len(msg) {
		return fmt.Errorf("selfbench: reply of %d frames, want 1 of %d bytes", len(rep), len(msg))
	}
	return nil
}

// fillRoundTrips fills in res from the round trips timed over elapsed.
func (r *zrun) fillRoundTrips(res *Result, elapsed time.Duration, hists []*Histogram) {
	all := NewHistogram()
	for _, h := range hists {
		all.Merge(h)
	}
	res.Elapsed = elapsed
	res.Count = all.Count()
	if res.Elapsed > 0 {
		res.MsgsPerSec = float64(res.Count) / res.Elapsed.Seconds()
		res.MBPerSec = res.MsgsPerSec * float64(r.cfg.Size) / 1e6
	}
	res.Latency = all.Latency()
}
