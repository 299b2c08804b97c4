package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/internal/selfbench"
)

func init() {
	addCommand(&command{name: "bench", args: "[flags] zmtp|registry|tunnel|all|serve",
		short: "measure throughput and latency of zmtp, the registry and tunnels", run: benchCmd})
}

const benchHelp = `
Measures Hydra itself (no outside programs needed, so it runs on any host
the binary runs on, an ARM board included) and prints a table: throughput
(msgs/s, MB/s) and latency (p50, p90, p99, max). --json prints the same as
JSON on stdout. On a terminal, a progress line shows on stderr.

  zmtp      push-pull, req-rep and pub-sub between zmtp sockets (--pattern)
  registry  lookups and registers per second (--op)
  tunnel    TCP streams through a tunnel between two servers in this
            process (MB/s per --size write; latency: 64-byte echo round trip)
  all       zmtp, registry and tunnel, in-process only
  serve     run the far end of zmtp benches for another host's
            'bench zmtp --target' (listens on --listen until interrupted)

Without --target each bench starts what it measures in this process on
127.0.0.1 (the client and the server then share this machine's CPUs). With
--target tcp://HOST:PORT, 'bench registry' measures that hydra-server (and
deregisters what it registered when done); 'bench zmtp' needs
'hydra-server bench serve' running there, which also binds a port of the
system's choosing per data socket.

Latency is the round trip for req-rep, send to receipt for push-pull and
pub-sub (from the send time stamped in messages of 8 bytes or more; across
hosts the clocks are aligned over the control connection), and request to
reply for the registry, including queueing behind the client's other
pipelined requests.

Examples:
  hydra-server bench all
  hydra-server bench zmtp --pattern push-pull --size 16,256,4096,65536
  hydra-server bench zmtp --pattern req-rep --concurrency 8 --count 100000
  hydra-server bench zmtp --pattern pub-sub --concurrency 4 --rate 50000
  hydra-server bench registry --target tcp://10.0.0.7:8420 --duration 10s --json
  hydra-server bench serve --listen tcp://0.0.0.0:8421    # on the far host, then:
  hydra-server bench zmtp --target tcp://far-host:8421`

// benchFlags are bench's flags.
type benchFlags struct {
	common
	target      string
	listen      string
	patterns    string
	ops         string
	sizes       string
	count       int64
	duration    time.Duration
	concurrency int
	pipeline    int
	hwm         int
	rate        float64
	warmup      time.Duration
	timeout     time.Duration
	json        bool
	quiet       bool
}

func (f *benchFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "read flags from this `file`: one \"flag value\" per line (JSON if it ends in .json)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json (logs go to stderr)")
	fs.StringVar(&f.target, "target", "", "measure a running server at tcp://HOST:PORT instead of one started in-process (registry: a hydra-server; zmtp: a 'hydra-server bench serve')")
	fs.StringVar(&f.listen, "listen", "tcp://127.0.0.1:8421", "serve: the control `endpoint` to listen on")
	fs.StringVar(&f.patterns, "pattern", "push-pull,req-rep,pub-sub", "zmtp: the `patterns` to run, comma-separated")
	fs.StringVar(&f.ops, "op", "lookup,register", "registry: the `operations` to run, comma-separated")
	fs.StringVar(&f.sizes, "size", strconv.Itoa(selfbench.DefaultSize), "zmtp: message `sizes`, tunnel: write sizes, in bytes, comma-separated (k and m suffixes: 4k, 1m)")
	fs.Var(blankZero[int64]{&f.count}, "count", "`n` messages, round trips or requests per case (default: run for --duration)")
	fs.DurationVar(&f.duration, "duration", selfbench.DefaultDuration, "how long each case runs, unless --count is given")
	fs.Var(blankZero[int]{&f.concurrency}, "concurrency", "`n` sockets or clients at once: PUSH or REQ sockets, SUB sockets (pub-sub), registry clients, tunnel streams (default 1 for zmtp, 16 for registry)")
	fs.IntVar(&f.pipeline, "pipeline", selfbench.DefaultRegistryPipeline, "registry: requests each client keeps in flight")
	fs.IntVar(&f.hwm, "hwm", 1000, "zmtp: send and receive high-water mark of every socket, in messages")
	fs.Var(blankZero[float64]{&f.rate}, "rate", "zmtp, registry: send `n` messages (round trips, requests) per second in all, to measure latency under a given load rather than at saturation (default: as fast as possible)")
	fs.DurationVar(&f.warmup, "warmup", time.Second, "registry: load the server for this long before measuring, so connection set-up and the first GC cycles stay out of the figures (0: measure from the first request)")
	fs.DurationVar(&f.timeout, "timeout", selfbench.DefaultTimeout, "give up on a case that makes no progress for this long")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON on stdout instead of a table")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress line, even on a terminal")
}

// blankZero is a numeric flag whose zero value means "the default the
// usage text describes", so --help shows no "(default 0)".
type blankZero[T int | int64 | float64] struct{ p *T }

func (b blankZero[T]) String() string {
	if b.p == nil || *b.p == 0 {
		return ""
	}
	return fmt.Sprint(*b.p)
}

func (b blankZero[T]) Set(s string) error {
	switch p := any(b.p).(type) {
	case *int:
		v, err := strconv.Atoi(s)
		*p = v
		return err
	case *int64:
		v, err := strconv.ParseInt(s, 10, 64)
		*p = v
		return err
	case *float64:
		v, err := strconv.ParseFloat(s, 64)
		*p = v
		return err
	}
	return nil
}

// benchCase is one case to run: a label for the progress line and a
// function that measures, advancing progress.
type benchCase struct {
	label  string
	warmup time.Duration // measured from its end (registry)
	run    func(ctx context.Context, progress *atomic.Int64) (selfbench.Result, error)
}

func benchCmd(ctx context.Context, io stdio, args []string) error {
	var f benchFlags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	f.define(fs)
	pos, err := parse(fs, &f.common, args, false)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(io.out, "hydra-server bench [flags] zmtp|registry|tunnel|all|serve", benchHelp, fs)
		return err
	}
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("bench: want one of zmtp, registry, tunnel, all, serve")
	}
	kind := pos[0]
	if kind == "serve" {
		return benchServe(ctx, io, &f)
	}
	if err := f.check(kind); err != nil {
		return err
	}
	cases, err := benchCases(kind, &f)
	if err != nil {
		return err
	}
	if f.target != "" {
		if err := probeTarget(ctx, kind, f.target, f.timeout); err != nil {
			return err
		}
	}
	rep := runBenchCases(ctx, io, &f, cases)
	if f.json {
		enc := json.NewEncoder(io.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if len(rep.Results) > 0 {
		if err := selfbench.WriteTable(io.out, rep); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bench: interrupted")
	}
	if len(rep.Failed) > 0 {
		return fmt.Errorf("bench: %d of %d cases failed; %s: %s", len(rep.Failed), len(cases), rep.Failed[0].Bench, rep.Failed[0].Reason)
	}
	return nil
}

// check checks the flags for bench kind, and completes --target.
func (f *benchFlags) check(kind string) error {
	if f.target != "" && kind == "all" {
		return usagef("bench all: --target names one server; run 'bench zmtp --target' (a bench serve) and 'bench registry --target' (a hydra-server) separately")
	}
	if f.target != "" && !strings.HasPrefix(f.target, "tcp://") && !strings.HasPrefix(f.target, "ipc://") {
		f.target = "tcp://" + f.target
	}
	if f.count < 0 || f.duration <= 0 && f.count == 0 || f.concurrency < 0 || f.pipeline < 1 || f.hwm < 1 || !(f.rate >= 0) || math.IsInf(f.rate, 0) || f.timeout <= 0 || f.warmup < 0 {
		return usagef("bench: --count, --duration, --concurrency, --pipeline, --hwm, --rate, --warmup and --timeout must be positive")
	}
	if f.pipeline > selfbench.MaxPipeline {
		return usagef("bench: --pipeline %d: at most %d (the server drops replies beyond its per-client send queue)", f.pipeline, selfbench.MaxPipeline)
	}
	return nil
}

// probeTarget fails at once, in one line, when nothing listens at a
// --target (rather than each case waiting out its --timeout).
func probeTarget(ctx context.Context, kind, target string, timeout time.Duration) error {
	network, addr := "tcp", strings.TrimPrefix(target, "tcp://")
	if path, ok := strings.CutPrefix(target, "ipc://"); ok {
		network, addr = "unix", path
	}
	d := net.Dialer{Timeout: min(timeout, 3*time.Second)}
	conn, err := d.DialContext(ctx, network, addr)
	if err == nil {
		conn.Close()
		return nil
	}
	what := "a hydra-server"
	if kind == selfbench.KindZMTP {
		what = "'hydra-server bench serve'"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return fmt.Errorf("bench: --target %s: no such host %q", target, dnsErr.Name)
	}
	cause := err.Error()
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		cause = oe.Err.Error()
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			cause = se.Err.Error()
		}
	}
	return fmt.Errorf("bench: nothing answers at --target %s (%s): is %s running there?", target, cause, what)
}

// benchCases are the cases of bench kind, in the order they run.
func benchCases(kind string, f *benchFlags) ([]benchCase, error) {
	switch kind {
	case selfbench.KindZMTP:
		return zmtpCases(f)
	case selfbench.KindRegistry:
		return registryCases(f)
	case selfbench.KindTunnel:
		return tunnelCases(f)
	case "all":
		var cases []benchCase
		for _, k := range []string{selfbench.KindZMTP, selfbench.KindRegistry, selfbench.KindTunnel} {
			c, err := benchCases(k, f)
			if err != nil {
				return nil, err
			}
			cases = append(cases, c...)
		}
		return cases, nil
	}
	return nil, usagef("bench: unknown bench %q (want zmtp, registry, tunnel, all or serve)", kind)
}

// runBenchCases runs the cases one after the other, with a progress line
// for each, until they are done or ctx is.
func runBenchCases(ctx context.Context, io stdio, f *benchFlags, cases []benchCase) *selfbench.Report {
	rep := &selfbench.Report{Version: versionString(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPUs: runtime.GOMAXPROCS(0), Started: time.Now().UTC().Truncate(time.Second)}
	prog := newProgress(io.err, !f.quiet && isTerminal(io.err))
	for i, c := range cases {
		if ctx.Err() != nil {
			break
		}
		var n atomic.Int64
		stop := prog.start(fmt.Sprintf("[%d/%d] %s", i+1, len(cases), c.label), &n, f.count, f.duration, c.warmup)
		r, err := c.run(ctx, &n)
		stop()
		if err != nil {
			rep.Failed = append(rep.Failed, selfbench.Skip{Bench: c.label, Reason: err.Error()})
			if f.target != "" {
				break // the next cases would wait on the same target
			}
			continue
		}
		rep.Results = append(rep.Results, r)
	}
	return rep
}

func zmtpCases(f *benchFlags) ([]benchCase, error) {
	sizes, err := parseSizes(f.sizes)
	if err != nil {
		return nil, err
	}
	var cases []benchCase
	for _, p := range splitList(f.patterns) {
		pat := selfbench.Pattern(p)
		if !slicesContains(selfbench.Patterns, pat) {
			return nil, usagef("bench: --pattern %q: want push-pull, req-rep or pub-sub", p)
		}
		for _, size := range sizes {
			cfg := selfbench.ZMTPConfig{Target: f.target, Pattern: pat, Size: size, Count: f.count, Duration: f.duration,
				Concurrency: f.concurrency, HWM: f.hwm, Rate: f.rate, Timeout: f.timeout}
			cases = append(cases, benchCase{
				label: fmt.Sprintf("zmtp %s %s", pat, selfbench.FormatBytes(size)),
				run: func(ctx context.Context, n *atomic.Int64) (selfbench.Result, error) {
					cfg.Progress = n
					return selfbench.ZMTP(ctx, cfg)
				},
			})
		}
	}
	return cases, nil
}

func registryCases(f *benchFlags) ([]benchCase, error) {
	var cases []benchCase
	for _, op := range splitList(f.ops) {
		if !slicesContains(selfbench.Ops, op) {
			return nil, usagef("bench: --op %q: want lookup or register", op)
		}
		conc := f.concurrency
		if conc == 0 {
			conc = selfbench.DefaultRegistryClients
		}
		cfg := selfbench.RegistryConfig{Target: f.target, Op: op, Count: f.count, Duration: f.duration,
			Concurrency: conc, Pipeline: f.pipeline, Rate: f.rate, Warmup: f.warmup}
		cases = append(cases, benchCase{
			label:  "registry " + op,
			warmup: f.warmup,
			run: func(ctx context.Context, n *atomic.Int64) (selfbench.Result, error) {
				cfg.Progress = n
				return selfbench.Registry(ctx, cfg)
			},
		})
	}
	return cases, nil
}

// tunnelCases are the tunnel bench's cases, one per --size: streams through
// a tunnel to --target (a hydra-server accepting tunnels) or between two
// servers in this process (only that, so far: --target is refused).
func tunnelCases(f *benchFlags) ([]benchCase, error) {
	if f.target != "" {
		return nil, usagef("bench tunnel: --target is not supported yet; the tunnel bench runs two servers in this process")
	}
	sizes, err := parseSizes(f.sizes)
	if err != nil {
		return nil, err
	}
	var cases []benchCase
	for _, size := range sizes {
		cfg := selfbench.TunnelConfig{Target: f.target, Size: size, Count: f.count, Duration: f.duration,
			Concurrency: max(f.concurrency, 1), Timeout: f.timeout}
		cases = append(cases, benchCase{
			label: "tunnel stream " + selfbench.FormatBytes(size),
			run: func(ctx context.Context, n *atomic.Int64) (selfbench.Result, error) {
				cfg.Progress = n
				return selfbench.Tunnel(ctx, cfg)
			},
		})
	}
	return cases, nil
}

func slicesContains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseSizes parses "16,256,4k,64k,1m".
func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, p := range splitList(s) {
		mult := 1
		switch {
		case strings.HasSuffix(strings.ToLower(p), "k"):
			mult, p = 1<<10, p[:len(p)-1]
		case strings.HasSuffix(strings.ToLower(p), "m"):
			mult, p = 1<<20, p[:len(p)-1]
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n*mult > selfbench.MaxSize {
			return nil, usagef("bench: --size %q: want sizes of 1 byte to %d MiB, comma-separated", s, selfbench.MaxSize>>20)
		}
		sizes = append(sizes, n*mult)
	}
	if len(sizes) == 0 {
		return nil, usagef("bench: --size: want at least one size")
	}
	return sizes, nil
}

// benchServe runs the far end of zmtp benches until interrupted.
func benchServe(ctx context.Context, io stdio, f *benchFlags) error {
	log, err := newLogger(io.err, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	r, err := selfbench.NewResponder(selfbench.ResponderConfig{Endpoint: f.listen, Version: versionString(), Logger: log})
	if err != nil {
		return err
	}
	fmt.Fprintf(io.out, "[Hydra Bench] Listening on %s; run 'hydra-server bench zmtp --target %s' on another host\n", r.Endpoint(), r.Endpoint())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	select {
	case err := <-done:
		r.Close()
		return err
	case <-ctx.Done():
		r.Close()
		<-done
		return nil
	}
}

// isTerminal reports whether w is a terminal (a character device other
// than /dev/null), where a progress line that rewrites itself makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// progress draws a line on a terminal that rewrites itself: the case, what
// it sent so far, the current rate and the time.
type progress struct {
	w  io.Writer
	on bool
}

func newProgress(w io.Writer, on bool) *progress { return &progress{w: w, on: on} }

// start draws the line for one case until the returned func is called,
// which erases it. Count and duration are measured from the warm-up's end.
func (p *progress) start(label string, n *atomic.Int64, count int64, duration, warmup time.Duration) (stop func()) {
	if !p.on {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t0 := time.Now()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var last, base int64 // base: what the warm-up sent
		lastT := t0
		for {
			select {
			case <-done:
				fmt.Fprint(p.w, "\r\x1b[K")
				return
			case now := <-tick.C:
				v := n.Load()
				rate := float64(v-last) / now.Sub(lastT).Seconds()
				last, lastT = v, now
				since := now.Sub(t0) - warmup
				line := progressLine(label, v-base, rate, since, count, duration)
				if since < 0 {
					base = v
					line = fmt.Sprintf("%s  warming up  %s/s", label, selfbench.FormatCount(rate))
				}
				fmt.Fprint(p.w, "\r\x1b[K"+line)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// progressLine is the text of the progress line.
func progressLine(label string, n int64, rate float64, elapsed time.Duration, count int64, duration time.Duration) string {
	done := fmt.Sprintf("%s/%s", selfbench.FormatDuration(elapsed.Round(100*time.Millisecond)), selfbench.FormatDuration(duration))
	if count > 0 {
		done = fmt.Sprintf("%.0f%%", 100*float64(n)/float64(count))
	}
	return fmt.Sprintf("%s  %s sent  %s/s  %s", label, selfbench.FormatCount(float64(n)), selfbench.FormatCount(rate), done)
}
