package selfbench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/zmtp"
)

// pipelineConfig says what runPipeline measures. Registry fills in every
// field from a RegistryConfig.
type pipelineConfig struct {
	Endpoint string // the server
	Op       string // OpLookup or OpRegister
	// Clients is the number of connections (DEALER sockets), each keeping
	// Pipeline requests outstanding. Keep Pipeline under the server's
	// per-peer send queue (1000 replies): the server drops replies that
	// do not fit.
	Clients, Pipeline int
	// Requests, if set, is the total number of requests to make;
	// otherwise the load runs for Duration.
	Requests int64
	Duration time.Duration
	// Names is how many names the lookups spread over, each registered
	// with Instances instances before the clock starts.
	Names, Instances int
	// Rate, when set, paces the requests: all clients together send Rate
	// requests per second on a fixed schedule (open loop), each client
	// still keeping at most Pipeline in flight, and latency counts from
	// each request's scheduled time, so a stalled server is not hidden by
	// requests that were never sent.
	Rate float64
	// Warmup, when set, runs the load for this long before the
	// measurement starts: those requests are answered and checked but not
	// counted, so connection set-up, the heap's growth to its working size
	// and the first GC cycles stay out of the figures. Requests and
	// Duration count from its end.
	Warmup time.Duration
	// Completed is advanced by every reply, for a progress display.
	Completed *atomic.Int64
	// Cleanup deregisters every entry the load registered once it is
	// done, for loads against a live server.
	Cleanup bool
}

// The lookups' data: pipelineConfig.Names names of Instances instances
// each, the defaults of Registry.
const (
	lookupNames     = 1000
	lookupInstances = 3
	// namesPerToken is how many names share one registration token.
	namesPerToken = 300
	// setupWindow caps the registrations in flight while the lookups'
	// data is set up: the server drops the replies that do not fit in a
	// peer's send queue (1000 messages) rather than block, and its
	// handling can outpace its writes to us when CPUs are scarce.
	setupWindow = 256
)

// pipelineReport is what runPipeline measured. Latency runs from a
// request's send (or its scheduled time, with a Rate) to its reply's
// receipt, so it includes the time queued behind the client's other
// outstanding requests.
type pipelineReport struct {
	Errors  int64 // ERR replies
	Elapsed time.Duration
	// Latency holds one value per request measured: its Count is the
	// requests measured.
	Latency *Histogram
}

// pipeline is one runPipeline under way: the clients' sockets and what
// they share.
type pipeline struct {
	cfg   pipelineConfig
	socks []*zmtp.Socket
	// runID tells this run's registrations from any other's.
	runID string

	// The load's clock: it starts at start, measures from measureFrom (the
	// warm-up's end) and, without a Requests budget, stops at deadline.
	start, measureFrom, deadline time.Time
	// every is each client's interval between requests with a Rate, zero
	// without one.
	every time.Duration

	claimed atomic.Int64 // requests claimed from the Requests budget
	errs    atomic.Int64 // ERR replies
	errOnce sync.Once
	err     error // the first failure, which ends the run
}

// runPipeline measures lookups (or registers) per second and their latency
// with pipelining clients speaking the raw protocol over zmtp DEALER
// sockets, so that the client side costs as little as it can.
func runPipeline(ctx context.Context, cfg pipelineConfig) (*pipelineReport, error) {
	p := &pipeline{cfg: cfg, runID: strconv.FormatInt(time.Now().UnixNano(), 36)}
	defer p.closeSockets()
	if err := p.dial(); err != nil {
		return nil, err
	}
	if cfg.Cleanup {
		defer p.cleanup(ctx)
	}
	if cfg.Op == OpLookup {
		if err := p.registerLookupData(ctx); err != nil {
			return nil, err
		}
	}
	p.startClock()
	hists := p.runClients(ctx)
	elapsed := time.Since(p.measureFrom)
	if p.err != nil {
		return nil, p.err
	}
	all := NewHistogram()
	for _, h := range hists {
		all.Merge(h)
	}
	return &pipelineReport{Errors: p.errs.Load(), Elapsed: elapsed, Latency: all}, nil
}

// dial connects one DEALER socket per client.
func (p *pipeline) dial() error {
	for range p.cfg.Clients {
		// RecvTimeout, not a context per Recv: a timer per reply would
		// cost the server under test CPU it shares with this client.
		s, err := zmtp.NewSocket(zmtp.DEALER, zmtp.Config{Linger: -1, SendHWM: 10000, RecvHWM: 10000, RecvTimeout: replyTimeout})
		if err != nil {
			return err
		}
		p.socks = append(p.socks, s)
		if err := s.Connect(p.cfg.Endpoint); err != nil {
			return err
		}
	}
	return nil
}

func (p *pipeline) closeSockets() {
	for _, s := range p.socks {
		s.Close()
	}
}

// lookupToken is the token of the lookups' data for name n.
func (p *pipeline) lookupToken(n int) string {
	return fmt.Sprintf("selfbench-%s-%d", p.runID, n/namesPerToken)
}

// clientToken is the token of client c's registrations.
func (p *pipeline) clientToken(c int) string {
	return fmt.Sprintf("selfbench-client-%d-%s", c, p.runID)
}

// registerLookupData registers Names × Instances entries for the lookups
// from the first client, at most setupWindow at a time.
func (p *pipeline) registerLookupData(ctx context.Context) error {
	s := p.socks[0]
	outstanding := 0
	recvOne := func() error {
		rep, err := recvReply(ctx, s)
		if err != nil {
			return fmt.Errorf("selfbench: registry bench setup: %w", err)
		}
		if string(rep[0]) != "OK" {
			if bytes.Contains(rep[1], []byte(`"code":"limit"`)) {
				return fmt.Errorf("selfbench: registry bench setup: the target refused the bench's %d entries, all from this address (%s): run it with --max-entries-per-client %d or more",
					p.cfg.Names*p.cfg.Instances, rep[1], p.cfg.Names*p.cfg.Instances)
			}
			return fmt.Errorf("selfbench: registry bench setup: %s %s", rep[0], rep[1])
		}
		outstanding--
		return nil
	}
	for n := range p.cfg.Names {
		for i := range p.cfg.Instances {
			if outstanding == setupWindow {
				if err := recvOne(); err != nil {
					return err
				}
			}
			body := fmt.Appendf(nil, `{"token":"%s","name":"bench-%d","host":"10.9.%d.%d","port":%d,"ttl":600}`,
				p.lookupToken(n), n, n%250, i, 1000+i)
			if err := s.SendContext(ctx, []byte("REGISTER"), body); err != nil {
				return err
			}
			outstanding++
		}
	}
	for outstanding > 0 {
		if err := recvOne(); err != nil {
			return err
		}
	}
	return nil
}

// startClock starts the load now.
func (p *pipeline) startClock() {
	p.start = time.Now()
	p.measureFrom = p.start.Add(p.cfg.Warmup)
	if p.cfg.Requests == 0 {
		p.deadline = p.measureFrom.Add(p.cfg.Duration)
	}
	if p.cfg.Rate > 0 {
		p.every = time.Duration(float64(p.cfg.Clients) / p.cfg.Rate * float64(time.Second))
	}
}

// runClients runs every client to the end of the load and returns their
// latency histograms.
func (p *pipeline) runClients(ctx context.Context) []*Histogram {
	hists := make([]*Histogram, len(p.socks))
	var wg sync.WaitGroup
	for c, s := range p.socks {
		cl := p.newClient(c, s)
		hists[c] = cl.hist
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p.every > 0 {
				cl.openLoop(ctx)
			} else {
				cl.closedLoop(ctx)
			}
		}()
	}
	wg.Wait()
	return hists
}

// fail records the first failure, which ends the run.
func (p *pipeline) fail(err error) { p.errOnce.Do(func() { p.err = err }) }

// cleanup deregisters every entry the run registered, best effort: the
// entries expire anyway.
func (p *pipeline) cleanup(ctx context.Context) {
	var tokens []string
	if p.cfg.Op == OpLookup {
		for n := 0; n < p.cfg.Names; n += namesPerToken {
			tokens = append(tokens, p.lookupToken(n))
		}
	} else {
		for c := range p.cfg.Clients {
			tokens = append(tokens, p.clientToken(c))
		}
	}
	s := p.socks[0]
	for _, t := range tokens {
		if s.SendContext(ctx, []byte("DEREGISTER"), fmt.Appendf(nil, `{"token":%q}`, t)) != nil {
			return
		}
	}
	for range tokens {
		if _, err := recvReply(ctx, s); err != nil {
			return
		}
	}
}

// pipeClient is one client of a pipeline: its socket, the requests it has
// in flight and the latencies it measured.
type pipeClient struct {
	p    *pipeline
	c    int // its index among the clients
	s    *zmtp.Socket
	verb []byte
	tok  string // of its registrations
	// offset staggers its schedule with a Rate: its k-th request is due
	// at start + offset + k × every, so the clients' schedules interleave
	// evenly.
	offset time.Duration

	// By request id mod Pipeline: when each request in flight was sent
	// (or due), and whether it counts (made after the warm-up).
	sent    []time.Time
	counted []bool
	// counting is what more said last: requests made now count.
	counting bool
	body     []byte // reused: SendContext copies the frames
	hist     *Histogram
}

func (p *pipeline) newClient(c int, s *zmtp.Socket) *pipeClient {
	cl := &pipeClient{p: p, c: c, s: s, verb: []byte("LOOKUP"), tok: p.clientToken(c),
		offset:  p.every * time.Duration(c) / time.Duration(p.cfg.Clients),
		sent:    make([]time.Time, p.cfg.Pipeline),
		counted: make([]bool, p.cfg.Pipeline),
		hist:    NewHistogram(),
	}
	if p.cfg.Op == OpRegister {
		cl.verb = []byte("REGISTER")
	}
	return cl
}

// more reports whether to make another request, and whether it counts.
func (cl *pipeClient) more() bool {
	p := cl.p
	cl.counting = p.cfg.Warmup == 0 || !time.Now().Before(p.measureFrom)
	if !cl.counting {
		return true
	}
	if p.cfg.Requests > 0 {
		return p.claimed.Add(1) <= p.cfg.Requests
	}
	return time.Now().Before(p.deadline)
}

// due is when request id is due with a Rate.
func (cl *pipeClient) due(id int) time.Time {
	return cl.p.start.Add(cl.offset + time.Duration(id)*cl.p.every)
}

// send makes request id.
func (cl *pipeClient) send(ctx context.Context, id int) error {
	cfg := &cl.p.cfg
	if cfg.Op == OpLookup {
		cl.body = append(cl.body[:0], `{"id":`...)
		cl.body = strconv.AppendInt(cl.body, int64(id), 10)
		cl.body = append(cl.body, `,"name":"bench-`...)
		cl.body = strconv.AppendInt(cl.body, int64((cl.c*7919+id)%cfg.Names), 10)
		cl.body = append(cl.body, `"}`...)
	} else {
		// Cycles through 1000 endpoints per client: creates, then renews.
		cl.body = fmt.Appendf(cl.body[:0], `{"id":%d,"token":"%s","name":"reg-%d","host":"10.8.0.1","port":%d,"ttl":60}`,
			id, cl.tok, cl.c, 1+id%1000)
	}
	slot := id % cfg.Pipeline
	cl.counted[slot] = cl.counting
	if cl.p.every > 0 {
		cl.sent[slot] = cl.due(id)
	} else {
		cl.sent[slot] = time.Now()
	}
	return cl.s.SendContext(ctx, cl.verb, cl.body)
}

// receive takes one reply and accounts for it; false ends the client
// (the pipeline's err says why).
func (cl *pipeClient) receive(ctx context.Context) bool {
	rep, err := recvReply(ctx, cl.s)
	if err != nil {
		cl.p.fail(err)
		return false
	}
	id, ok := replyID(rep)
	if !ok {
		cl.p.fail(fmt.Errorf("selfbench: registry reply without id: %q", rep))
		return false
	}
	if slot := id % cl.p.cfg.Pipeline; cl.counted[slot] {
		cl.hist.Record(time.Since(cl.sent[slot]))
	}
	cl.p.cfg.Completed.Add(1)
	if string(rep[0]) != "OK" {
		cl.p.errs.Add(1)
	}
	return true
}

// closedLoop keeps Pipeline requests in flight, sending the next one as
// each reply arrives.
func (cl *pipeClient) closedLoop(ctx context.Context) {
	outstanding, next := 0, 0
	for outstanding < cl.p.cfg.Pipeline && cl.more() {
		if err := cl.send(ctx, next); err != nil {
			cl.p.fail(err)
			return
		}
		next++
		outstanding++
	}
	for outstanding > 0 {
		if !cl.receive(ctx) {
			return
		}
		outstanding--
		if cl.more() {
			if err := cl.send(ctx, next); err != nil {
				cl.p.fail(err)
				return
			}
			next++
			outstanding++
		}
	}
}

// openLoop sends on the schedule from a sender goroutine and takes the
// replies on this one. slots keeps at most Pipeline requests in flight;
// inflight hands each sent request to the receiver, which blocks on it
// instead of polling.
func (cl *pipeClient) openLoop(ctx context.Context) {
	slots := make(chan struct{}, cl.p.cfg.Pipeline)
	inflight := make(chan struct{}, cl.p.cfg.Pipeline)
	quit := make(chan struct{})
	defer func() {
		// After a failed receive, stop the sender and wait for it:
		// nothing may use the socket after runPipeline.
		close(quit)
		for range inflight {
		}
	}()
	go cl.sendOnSchedule(ctx, slots, inflight, quit)
	for range inflight {
		if !cl.receive(ctx) {
			return
		}
		<-slots
	}
}

// sendOnSchedule is openLoop's sender: each request waits for a slot, then
// for its time.
func (cl *pipeClient) sendOnSchedule(ctx context.Context, slots, inflight chan struct{}, quit chan struct{}) {
	defer close(inflight)
	for n := 0; cl.more(); n++ {
		select {
		case slots <- struct{}{}:
		case <-quit:
			return
		case <-ctx.Done():
			return
		}
		if d := time.Until(cl.due(n)); d > 0 {
			time.Sleep(d)
		}
		if err := cl.send(ctx, n); err != nil {
			cl.p.fail(err)
			return
		}
		inflight <- struct{}{}
	}
}

// replyTimeout bounds the wait for each reply.
const replyTimeout = 10 * time.Second

// recvReply receives one two-frame reply (the socket's RecvTimeout bounds
// the wait; ctx cancels it).
func recvReply(ctx context.Context, s *zmtp.Socket) ([][]byte, error) {
	rep, err := s.RecvContext(ctx)
	if err == nil && len(rep) != 2 {
		err = fmt.Errorf("selfbench: registry reply of %d frames", len(rep))
	}
	return rep, err
}

// replyID reads the id the server puts first in the reply body.
func replyID(rep [][]byte) (int, bool) {
	b := rep[1]
	const prefix = `{"id":`
	if len(b) <= len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0, false
	}
	n, i := 0, len(prefix)
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int(b[i]-'0')
	}
	return n, i > len(prefix)
}
