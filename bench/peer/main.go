package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/bench"
)

// socket is the little the benchmark needs from a ZeroMQ socket.
type socket interface {
	// send sends b as a one-frame message; b may be reused afterwards.
	send(b []byte) error
	// recv receives a one-frame message.
	recv() ([]byte, error)
	// close flushes what is queued and closes.
	close() error
}

// opener creates a socket for role, with high-water marks hwm and room for
// messages of size bytes, and binds or connects it to endpoint.
type opener func(role, endpoint string, hwm, size int) (socket, error)

var openers = map[string]opener{
	bench.ImplHydra: openHydra,
	bench.ImplZMQ4:  openZMQ4,
}

// binds reports whether role binds (pull, rep) rather than connects.
func binds(role string) bool { return role == bench.RolePull || role == bench.RoleRep }

// closeTimeout bounds Close; zmq4's can hang. The result is out by then.
const closeTimeout = 10 * time.Second

func main() {
	impl := flag.String("impl", bench.ImplHydra, "implementation: hydra or zmq4")
	hwm := flag.Int("hwm", 100_000, "send and receive high-water marks, in messages")
	wait := flag.Duration("wait", 20*time.Second, "give up when the first message takes longer than this")
	idle := flag.Duration("idle", 5*time.Second, "give up when any later message takes longer than this")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: peer [flags] push|pull|req|rep ENDPOINT SIZE COUNT\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 4 {
		flag.Usage()
		os.Exit(2)
	}
	role, endpoint := flag.Arg(0), flag.Arg(1)
	size, err1 := strconv.Atoi(flag.Arg(2))
	count, err2 := strconv.ParseInt(flag.Arg(3), 10, 64)
	open, ok := openers[*impl]
	switch {
	case err1 != nil || size < 0 || size > 1<<30:
		fatalf("bad SIZE %q", flag.Arg(2))
	case err2 != nil || count < 1:
		fatalf("bad COUNT %q", flag.Arg(3))
	case !ok:
		fatalf("unknown -impl %q (want hydra or zmq4)", *impl)
	}
	run, ok := runners[role]
	if !ok {
		fatalf("unknown role %q (want push, pull, req or rep)", role)
	}

	s, err := open(role, endpoint, *hwm, size)
	if err != nil {
		fatalf("%s %s %s: %v", *impl, role, endpoint, err)
	}
	p := &peer{
		s:     s,
		start: time.Now(),
		res:   bench.PeerResult{Impl: *impl, Role: role, Size: size, Expected: count},
	}
	go p.watch(*wait, *idle)
	run(p)
	p.report(p.res)

	// Close after reporting: a sender's figures do not include the flush,
	// and a Close that hangs must not hold the result back.
	closed := make(chan error, 1)
	go func() { closed <- s.close() }()
	select {
	case err := <-closed:
		if err != nil {
			fmt.Fprintf(os.Stderr, "peer: close: %v\n", err)
		}
	case <-time.After(closeTimeout):
		fmt.Fprintf(os.Stderr, "peer: close still blocked after %v; exiting\n", closeTimeout)
	}
}

// peer is one benchmark process: its socket, its progress and its result.
type peer struct {
	s     socket
	start time.Time // offsets below are from here (monotonic)

	n     atomic.Int64 // messages or round trips handled so far
	first atomic.Int64 // offset of the first one, in ns

	res  bench.PeerResult // filled in by the runner
	once sync.Once        // one result line, from the runner or the watchdog
}

// since is the monotonic offset of now from p.start.
func (p *peer) since() time.Duration { return time.Since(p.start) }

// report prints r as the process's one JSON line, unless one was printed.
func (p *peer) report(r bench.PeerResult) (printed bool) {
	p.once.Do(func() {
		b, err := json.Marshal(r)
		if err != nil {
			fatalf("encode result: %v", err) // only NaN or Inf could do this
		}
		os.Stdout.Write(append(b, '\n'))
		printed = true
	})
	return printed
}

// watch gives up for the runner when nothing arrives for too long: it
// reports the progress so far and exits the process. It samples the counter
// rather than having the runner read the clock per message, so the time of
// the last message is known to within one tick.
func (p *peer) watch(wait, idle time.Duration) {
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	var lastN int64
	var lastChange time.Duration
	for range t.C {
		now := p.since()
		n := p.n.Load()
		if n != lastN {
			lastN, lastChange = n, now
			continue
		}
		if n >= p.res.Expected {
			return // done; main reports
		}
		var why string
		switch {
		case n == 0 && now > wait:
			why = fmt.Sprintf("nothing within %v", wait)
		case n > 0 && now-lastChange > idle:
			why = fmt.Sprintf("timed out after %d of %d: nothing for %v", n, p.res.Expected, idle)
		default:
			continue
		}
		r := bench.PeerResult{
			Impl: p.res.Impl, Role: p.res.Role, Size: p.res.Size,
			Count: n, Expected: p.res.Expected, Error: why,
		}
		p.figures(&r, n, lastChange)
		if p.report(r) {
			os.Exit(0)
		}
		return
	}
}

// figures fills the rates of r for n messages or round trips handled, the
// last one at offset end. Receivers and round trips count the n-1 intervals
// after the first; a push sender counts all n over its send loop.
func (p *peer) figures(r *bench.PeerResult, n int64, end time.Duration) {
	begin := time.Duration(p.first.Load())
	intervals := n - 1
	if r.Role == bench.RolePush {
		begin, intervals = 0, n
	}
	elapsed := (end - begin).Seconds()
	r.ElapsedSec = elapsed
	if intervals <= 0 || elapsed <= 0 {
		return
	}
	r.MsgsPerSec = float64(intervals) / elapsed
	r.MBPerSec = r.MsgsPerSec * float64(r.Size) / 1e6
	if r.Role == bench.RoleReq || r.Role == bench.RoleRep {
		r.RTTMicros = elapsed / float64(intervals) * 1e6
	}
}

// runners run one role to completion (or to the first error) and fill in
// p.res.
var runners = map[string]func(p *peer){
	bench.RolePull: runPull,
	bench.RolePush: runPush,
	bench.RoleReq:  runReq,
	bench.RoleRep:  runRep,
}

func runPull(p *peer) {
	size := p.res.Size
	var n int64
	for n < p.res.Expected {
		b, err := p.s.recv()
		if err != nil {
			p.res.Error = err.Error()
			break
		}
		if len(b) != size {
			p.res.Error = fmt.Sprintf("message of %d bytes, want %d", len(b), size)
		}
		if n == 0 {
			p.first.Store(int64(p.since()))
		}
		n++
		p.n.Store(n)
	}
	p.finish(n)
}

func runPush(p *peer) {
	msg := bytes.Repeat([]byte{'h'}, p.res.Size)
	p.first.Store(int64(p.since()))
	var n int64
	for n < p.res.Expected {
		if err := p.s.send(msg); err != nil {
			p.res.Error = err.Error()
			break
		}
		n++
		p.n.Store(n)
	}
	p.finish(n)
}

func runReq(p *peer) {
	size := p.res.Size
	msg := bytes.Repeat([]byte{'h'}, size)
	var n int64
	for n < p.res.Expected {
		if err := p.s.send(msg); err != nil {
			p.res.Error = err.Error()
			break
		}
		b, err := p.s.recv()
		if err != nil {
			p.res.Error = err.Error()
			break
		}
		if len(b) != size {
			p.res.Error = fmt.Sprintf("reply of %d bytes, want %d", len(b), size)
		}
		if n == 0 {
			// The first round trip includes connecting.
			p.first.Store(int64(p.since()))
		}
		n++
		p.n.Store(n)
	}
	p.finish(n)
}

func runRep(p *peer) {
	var n int64
	for n < p.res.Expected {
		b, err := p.s.recv()
		if err != nil {
			p.res.Error = err.Error()
			break
		}
		if n == 0 {
			p.first.Store(int64(p.since()))
		}
		if err := p.s.send(b); err != nil {
			p.res.Error = err.Error()
			break
		}
		n++
		p.n.Store(n)
	}
	p.finish(n)
}

// finish records the outcome of a runner that handled n of p.res.Expected.
func (p *peer) finish(n int64) {
	end := p.since()
	p.res.Count = n
	p.res.Complete = n == p.res.Expected
	p.figures(&p.res, n, end)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "peer: "+format+"\n", args...)
	os.Exit(1)
}
