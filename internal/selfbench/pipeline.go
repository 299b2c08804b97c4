package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/zmtp"
)

// BenchConfig says what Bench measures.
type BenchConfig struct {
	Endpoint string // the server; default tcp://127.0.0.1:8420
	// Op is "lookup" (default) or "register".
	Op string
	// Clients is the number of connections (DEALER sockets); default 64.
	Clients int
	// Pipeline is the number of requests each client keeps outstanding;
	// default 16. Keep it under the server's per-peer send queue (1000
	// replies): the server drops replies that do not fit.
	Pipeline int
	// Requests, if set, is the total number of requests to make;
	// otherwise Bench runs for Duration (default 5s).
	Requests int
	Duration time.Duration
	// Names is how many names the lookups spread over, each registered
	// with Instances instances before the clock starts; defaults 1000
	// and 3.
	Names, Instances int
	// Rate, when set, paces the requests: all clients together send Rate
	// requests per second on a fixed schedule (open loop), each client
	// still keeping at most Pipeline in flight, and latency counts from
	// each request's scheduled time, so a stalled server is not hidden by
	// requests that were never sent. Default 0: as fast as replies allow.
	Rate float64
	// Warmup, when set, runs the load for this long before the
	// measurement starts: those requests are answered and checked but not
	// counted, so connection set-up, the heap's growth to its working size
	// and the first GC cycles stay out of the figures. Requests and
	// Duration count from its end.
	Warmup time.Duration
	// Completed, when set, is advanced by every reply, for a progress
	// display.
	Completed *atomic.Int64
	// Cleanup deregisters every entry the bench registered once it is
	// done, for benches against a live server.
	Cleanup bool
}

// BenchReport is what Bench measured. Latency is from a request's send to
// its reply's receipt, so it includes the time queued behind the client's
// other outstanding requests.
type BenchReport struct {
	Op            string
	Clients       int
	Pipeline      int
	Requests      int64
	Errors        int64 // ERR replies
	Elapsed       time.Duration
	PerSec        float64
	P50, P90, P99 time.Duration
	Max           time.Duration
}

func (r *BenchReport) String() string {
	return fmt.Sprintf("%s: %d clients × %d pipelined: %d requests in %v = %.0f/s, p50 %v, p99 %v, max %v, %d errors",
		r.Op, r.Clients, r.Pipeline, r.Requests, r.Elapsed.Round(time.Millisecond), r.PerSec, r.P50, r.P99, r.Max, r.Errors)
}

// Bench measures lookups (or registers) per second and their latency with
// pipelining clients speaking the raw protocol over zmtp DEALER sockets, so
// that the client side costs as little as it can.
func Bench(ctx context.Context, cfg BenchConfig) (*BenchReport, error) {
	if cfg.Endpoint == "" {
		cfg.Endpoint = "tcp://127.0.0.1:8420"
	}
	if cfg.Op == "" {
		cfg.Op = "lookup"
	}
	if cfg.Op != "lookup" && cfg.Op != "register" {
		return nil, fmt.Errorf("loadgen: bench op %q: want lookup or register", cfg.Op)
	}
	for _, p := range []*int{&cfg.Clients, &cfg.Pipeline, &cfg.Names, &cfg.Instances} {
		if *p < 0 {
			return nil, errors.New("loadgen: negative bench parameter")
		}
	}
	if cfg.Warmup < 0 {
		return nil, errors.New("loadgen: bench warm-up must not be negative")
	}
	if !(cfg.Rate >= 0) {
		return nil, errors.New("loadgen: bench rate must be positive")
	}
	if cfg.Clients == 0 {
		cfg.Clients = 64
	}
	if cfg.Pipeline == 0 {
		cfg.Pipeline = 16
	}
	if cfg.Names == 0 {
		cfg.Names = 1000
	}
	if cfg.Instances == 0 {
		cfg.Instances = 3
	}
	if cfg.Requests == 0 && cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Completed == nil {
		cfg.Completed = new(atomic.Int64)
	}

	socks := make([]*zmtp.Socket, cfg.Clients)
	for i := range socks {
		// RecvTimeout, not a context per Recv: a timer per reply would
		// cost the server under test CPU it shares with this client.
		s, err := zmtp.NewSocket(zmtp.DEALER, zmtp.Options{Linger: -1, SendHWM: 10000, RecvHWM: 10000, RecvTimeout: replyTimeout})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		if err := s.Connect(cfg.Endpoint); err != nil {
			return nil, err
		}
		socks[i] = s
	}
	// The lookups' data: Names × Instances entries, under one token per
	// 300 names.
	tok := "loadgen-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	start := time.Now()
	if cfg.Cleanup {
		defer func() {
			var tokens []string
			if cfg.Op == "lookup" {
				for t := range (cfg.Names + 299) / 300 {
					tokens = append(tokens, fmt.Sprintf("%s-%d", tok, t))
				}
			} else {
				for c := range cfg.Clients {
					tokens = append(tokens, clientToken(c, start))
				}
			}
			cleanup(ctx, socks[0], tokens)
		}()
	}
	if cfg.Op == "lookup" {
		// At most setupWindow requests in flight: the server drops the
		// replies that do not fit in a peer's send queue (1000 messages)
		// rather than block, and its handling can outpace its writes to
		// us when CPUs are scarce.
		const setupWindow = 256
		s := socks[0]
		outstanding := 0
		recvOne := func() error {
			rep, err := recvTimeout(ctx, s)
			if err != nil {
				return fmt.Errorf("loadgen: bench setup: %w", err)
			}
			if string(rep[0]) != "OK" {
				return fmt.Errorf("loadgen: bench setup: %s %s", rep[0], rep[1])
			}
			outstanding--
			return nil
		}
		for n := range cfg.Names {
			for i := range cfg.Instances {
				if outstanding == setupWindow {
					if err := recvOne(); err != nil {
						return nil, err
					}
				}
				body := fmt.Appendf(nil, `{"token":"%s-%d","name":"bench-%d","host":"10.9.%d.%d","port":%d,"ttl":600}`,
					tok, n/300, n, n%250, i, 1000+i)
				if err := s.SendContext(ctx, []byte("REGISTER"), body); err != nil {
					return nil, err
				}
				outstanding++
			}
		}
		for outstanding > 0 {
			if err := recvOne(); err != nil {
				return nil, err
			}
		}
	}

	var (
		wg      sync.WaitGroup
		errs    atomic.Int64
		count   atomic.Int64
		lats    = make([][]time.Duration, cfg.Clients)
		runErr  error
		errOnce sync.Once
	)
	budget := int64(cfg.Requests)
	start = time.Now()
	measureFrom := start.Add(cfg.Warmup)
	var deadline time.Time
	if cfg.Requests == 0 {
		deadline = measureFrom.Add(cfg.Duration)
	}
	// With a Rate, client c sends its k-th request at start + (k + c/Clients)
	// × every, so the clients' schedules interleave evenly.
	var every time.Duration
	if cfg.Rate > 0 {
		every = time.Duration(float64(cfg.Clients) / cfg.Rate * float64(time.Second))
	}
	for c, s := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := make([]time.Time, cfg.Pipeline) // by request id mod Pipeline
			// counted says, by request id mod Pipeline, whether the request
			// was made after the warm-up; counting is what more said last.
			counted := make([]bool, cfg.Pipeline)
			counting := true
			offset := every * time.Duration(c) / time.Duration(cfg.Clients)
			tok := clientToken(c, start)
			more := func() bool {
				counting = cfg.Warmup == 0 || !time.Now().Before(measureFrom)
				if !counting {
					return true
				}
				if budget > 0 {
					return count.Add(1) <= budget
				}
				return time.Now().Before(deadline)
			}
			verb := []byte("LOOKUP")
			if cfg.Op == "register" {
				verb = []byte("REGISTER")
			}
			var body []byte // reused: SendContext copies the frames
			send := func(id int) error {
				if cfg.Op == "lookup" {
					body = append(body[:0], `{"id":`...)
					body = strconv.AppendInt(body, int64(id), 10)
					body = append(body, `,"name":"bench-`...)
					body = strconv.AppendInt(body, int64((c*7919+id)%cfg.Names), 10)
					body = append(body, `"}`...)
				} else {
					// Cycles through 1000 endpoints per client: creates, then renews.
					body = fmt.Appendf(body[:0], `{"id":%d,"token":"%s","name":"reg-%d","host":"10.8.0.1","port":%d,"ttl":60}`,
						id, tok, c, 1+id%1000)
				}
				counted[id%cfg.Pipeline] = counting
				if every > 0 {
					sent[id%cfg.Pipeline] = start.Add(offset + time.Duration(id)*every)
				} else {
					sent[id%cfg.Pipeline] = time.Now()
				}
				return s.SendContext(ctx, verb, body)
			}
			// receive takes one reply and accounts for it; false ends the
			// client (runErr says why).
			receive := func() bool {
				rep, err := recvTimeout(ctx, s)
				if err != nil {
					errOnce.Do(func() { runErr = err })
					return false
				}
				id, ok := replyID(rep)
				if !ok {
					errOnce.Do(func() { runErr = fmt.Errorf("loadgen: reply without id: %q", rep) })
					return false
				}
				if counted[id%cfg.Pipeline] {
					lats[c] = append(lats[c], time.Since(sent[id%cfg.Pipeline]))
				}
				cfg.Completed.Add(1)
				if string(rep[0]) != "OK" {
					errs.Add(1)
				}
				return true
			}
			if every > 0 {
				// Open loop: a sender on the schedule, this goroutine on
				// the replies. slots keeps at most Pipeline requests in
				// flight; inflight hands each sent request to the
				// receiver, which blocks on it instead of polling.
				slots := make(chan struct{}, cfg.Pipeline)
				inflight := make(chan struct{}, cfg.Pipeline)
				quit := make(chan struct{})
				defer func() {
					// After a failed receive, stop the sender and wait
					// for it: nothing may use the socket after Bench.
					close(quit)
					for range inflight {
					}
				}()
				go func() {
					defer close(inflight)
					for n := 0; more(); n++ {
						select {
						case slots <- struct{}{}:
						case <-quit:
							return
						case <-ctx.Done():
							return
						}
						if d := time.Until(start.Add(offset + time.Duration(n)*every)); d > 0 {
							time.Sleep(d)
						}
						if err := send(n); err != nil {
							errOnce.Do(func() { runErr = err })
							return
						}
						inflight <- struct{}{}
					}
				}()
				for range inflight {
					if !receive() {
						return
					}
					<-slots
				}
				return
			}
			outstanding, next := 0, 0
			for outstanding < cfg.Pipeline && more() {
				if err := send(next); err != nil {
					errOnce.Do(func() { runErr = err })
					return
				}
				next++
				outstanding++
			}
			for outstanding > 0 {
				if !receive() {
					return
				}
				outstanding--
				if more() {
					if err := send(next); err != nil {
						errOnce.Do(func() { runErr = err })
						return
					}
					next++
					outstanding++
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)
	if runErr != nil {
		return nil, runErr
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := &BenchReport{Op: cfg.Op, Clients: cfg.Clients, Pipeline: cfg.Pipeline, Requests: int64(len(all)),
		Errors: errs.Load(), Elapsed: elapsed, PerSec: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		r.P50, r.P90, r.P99, r.Max = all[len(all)/2], all[len(all)*90/100], all[len(all)*99/100], all[len(all)-1]
	}
	return r, nil
}

// clientToken is the token of bench client c's registrations.
func clientToken(c int, start time.Time) string {
	return fmt.Sprintf("loadgen-bench-client-%d-%d", c, start.UnixNano())
}

// cleanup deregisters every entry of tokens, best effort: the entries
// expire anyway.
func cleanup(ctx context.Context, s *zmtp.Socket, tokens []string) {
	for _, t := range tokens {
		if s.SendContext(ctx, []byte("DEREGISTER"), fmt.Appendf(nil, `{"token":%q}`, t)) != nil {
			return
		}
	}
	for range tokens {
		if _, err := recvTimeout(ctx, s); err != nil {
			return
		}
	}
}

// replyTimeout bounds the wait for each reply.
const replyTimeout = 10 * time.Second

// recvTimeout receives one reply (the socket's RecvTimeout bounds the
// wait; ctx cancels it).
func recvTimeout(ctx context.Context, s *zmtp.Socket) ([][]byte, error) {
	rep, err := s.RecvContext(ctx)
	if err == nil && len(rep) != 2 {
		err = fmt.Errorf("loadgen: reply of %d frames", len(rep))
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
