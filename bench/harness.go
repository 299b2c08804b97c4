package bench

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config says what to run. The zero value runs everything with the defaults
// documented on each field.
type Config struct {
	// Impls to compare; default hydra, zmq4, libzmq.
	Impls []string
	// Sizes of the push-pull messages in bytes; default 16, 256, 4096, 65536.
	Sizes []int
	// ReqRepSize is the req-rep message size in bytes; default 64.
	// Negative leaves req-rep out.
	ReqRepSize int
	// Duration is the time each case aims to take per implementation; the
	// count is calibrated from a short probe run. Default 2s; negative
	// turns calibration off and uses fixed counts.
	Duration time.Duration
	// Scale multiplies every count; default 1.
	Scale float64
	// Quick uses small fixed counts and shorter peer timeouts, for CI.
	Quick bool
	// Timeout bounds each peer process; a peer still running then is killed
	// and its case fails. Default 60s (30s with Quick).
	Timeout time.Duration
	// RequireLibzmq makes a missing gcc or libzmq an error instead of a
	// reason to skip libzmq.
	RequireLibzmq bool
	// ModuleDir is the root of the hydra module, where the Go peer is built
	// from ./bench/peer; default: found with `go env GOMOD`.
	ModuleDir string
	// PeerBin is a prebuilt bench/peer binary; default: built into a
	// temporary directory.
	PeerBin string
	// Logf receives progress and warnings; nil discards them.
	Logf func(format string, args ...any)
}

// Report is what Run measured.
type Report struct {
	Cases   []Case
	Impls   []string          // the implementations that ran, in order
	Skipped map[string]string // implementation → why it did not run
	Results []Result          // one per case and implementation that ran
}

// Failed reports whether any case failed.
func (r *Report) Failed() bool {
	return slices.ContainsFunc(r.Results, func(x Result) bool { return x.Err != nil })
}

// Lookup returns the result of one case for one implementation.
func (r *Report) Lookup(impl string, c Case) (Result, bool) {
	for _, x := range r.Results {
		if x.Impl == impl && x.Pattern == c.Pattern && x.Size == c.Size {
			return x, true
		}
	}
	return Result{}, false
}

// Run runs every case for every implementation, the implementations of a
// case one after the other so that they are compared under the same
// conditions. It writes each case's JSON line to out as soon as it is
// measured (failed cases print none) and returns all results. The error is
// for the harness itself failing (no peer binary, a required libzmq
// missing, ctx cancelled); failed cases are in the report.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "hydra-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	h := &harness{cfg: cfg, tmp: tmp}
	rep := &Report{Skipped: map[string]string{}}
	for _, s := range cfg.Sizes {
		rep.Cases = append(rep.Cases, Case{PushPull, s})
	}
	if cfg.ReqRepSize >= 0 {
		rep.Cases = append(rep.Cases, Case{ReqRep, cfg.ReqRepSize})
	}

	for _, impl := range cfg.Impls {
		if err := h.prepare(ctx, impl); err != nil {
			if impl == ImplLibzmq && !cfg.RequireLibzmq {
				h.logf("skipping libzmq: %v", err)
				rep.Skipped[impl] = err.Error()
				continue
			}
			return nil, fmt.Errorf("%s: %w", impl, err)
		}
		rep.Impls = append(rep.Impls, impl)
	}
	if len(rep.Impls) == 0 {
		return nil, errors.New("no implementation left to run")
	}

	enc := json.NewEncoder(out)
	for _, c := range rep.Cases {
		for _, impl := range rep.Impls {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			r := h.runCase(ctx, impl, c)
			rep.Results = append(rep.Results, r)
			if r.Err != nil {
				h.logf("%-6s %-18s FAILED: %v", impl, c, r.Err)
				continue
			}
			for _, w := range r.Warnings {
				h.logf("%-6s %-18s warning: %s", impl, c, w)
			}
			if err := enc.Encode(r); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

func (c *Config) setDefaults() error {
	if len(c.Impls) == 0 {
		c.Impls = []string{ImplHydra, ImplZMQ4, ImplLibzmq}
	}
	for _, impl := range c.Impls {
		switch impl {
		case ImplHydra, ImplZMQ4, ImplLibzmq:
		default:
			return fmt.Errorf("unknown implementation %q (want hydra, zmq4 or libzmq)", impl)
		}
	}
	if len(c.Sizes) == 0 {
		c.Sizes = []int{16, 256, 4096, 65536}
	}
	for _, s := range c.Sizes {
		if s < 0 || s > 16<<20 {
			return fmt.Errorf("message size %d out of range", s)
		}
	}
	if c.ReqRepSize == 0 {
		c.ReqRepSize = 64
	}
	if c.ReqRepSize > 16<<20 {
		return fmt.Errorf("req-rep size %d out of range", c.ReqRepSize)
	}
	if c.Duration == 0 {
		c.Duration = 2 * time.Second
	}
	if c.Scale == 0 {
		c.Scale = 1
	}
	if c.Scale < 0 || math.IsNaN(c.Scale) || math.IsInf(c.Scale, 0) {
		return fmt.Errorf("bad count scale %v", c.Scale)
	}
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Second
		if c.Quick {
			c.Timeout = 30 * time.Second
		}
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// harness holds what one Run built.
type harness struct {
	cfg     Config
	tmp     string // scratch directory, removed at the end
	peerBin string // the Go peer (hydra, zmq4)
	zmqBin  string // the C peer (libzmq)
}

func (h *harness) logf(format string, args ...any) { h.cfg.Logf(format, args...) }

// prepare builds what impl needs, once.
func (h *harness) prepare(ctx context.Context, impl string) error {
	switch impl {
	case ImplLibzmq:
		if h.zmqBin != "" {
			return nil
		}
		bin, err := buildLibzmqPeer(ctx, h.tmp)
		if err != nil {
			return err
		}
		h.zmqBin = bin
	default:
		if h.peerBin != "" {
			return nil
		}
		if h.cfg.PeerBin != "" {
			h.peerBin = h.cfg.PeerBin
			return nil
		}
		bin, err := buildGoPeer(ctx, h.cfg.ModuleDir, h.tmp)
		if err != nil {
			return err
		}
		h.peerBin = bin
	}
	return nil
}

//go:embed libzmq/zmqbench.c
var zmqbenchC []byte

// buildLibzmqPeer compiles the C peer into dir, as
// gcc -O2 -o DIR/zmqbench DIR/zmqbench.c -lzmq.
func buildLibzmqPeer(ctx context.Context, dir string) (string, error) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return "", errors.New("gcc not found; install gcc and libzmq3-dev to include the libzmq baseline")
	}
	src := filepath.Join(dir, "zmqbench.c")
	if err := os.WriteFile(src, zmqbenchC, 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "zmqbench")
	out, err := exec.CommandContext(ctx, gcc, "-O2", "-o", bin, src, "-lzmq").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("gcc could not build the libzmq peer (is libzmq3-dev installed?): %v\n%s", err, tail(out))
	}
	return bin, nil
}

// buildGoPeer builds ./bench/peer of the module at modDir (found with
// `go env GOMOD` when empty) into dir, without cgo.
func buildGoPeer(ctx context.Context, modDir, dir string) (string, error) {
	if modDir == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		gomod := strings.TrimSpace(string(out))
		if err != nil || gomod == "" || gomod == os.DevNull {
			return "", errors.New("cannot find the hydra module (run from inside it, or set the peer binary)")
		}
		modDir = filepath.Dir(gomod)
	}
	bin := filepath.Join(dir, "peer")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/peer")
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./bench/peer: %v\n%s", err, tail(out))
	}
	return bin, nil
}

// runCase picks the count for one case and runs it.
func (h *harness) runCase(ctx context.Context, impl string, c Case) Result {
	r := Result{Impl: impl, Pattern: c.Pattern, Size: c.Size}
	lim := limitsFor(impl, c)
	var n int64
	switch {
	case h.cfg.Quick:
		n = lim.quick
	case h.cfg.Duration < 0:
		n = lim.fixed
	default:
		// Probe with the quick count, then aim at Duration.
		probe, _, _, err := h.runPair(ctx, impl, c, lim.quick)
		if err != nil {
			r.Err = fmt.Errorf("calibration run: %w", err)
			return r
		}
		n = int64(probe.MsgsPerSec * h.cfg.Duration.Seconds())
		n = min(max(n, lim.quick), lim.max)
	}
	n = max(int64(float64(n)*h.cfg.Scale), 2)

	primary, secondary, warnings, err := h.runPair(ctx, impl, c, n)
	r.Warnings = warnings
	if err != nil {
		r.Err = err
		return r
	}
	r.MsgsPerSec = round3(primary.MsgsPerSec)
	r.MBPerSec = round3(primary.MBPerSec)
	if c.Pattern == ReqRep {
		r.RTTMicros = round3(primary.RTTMicros)
	}
	r.Count, r.Expected, r.Complete = primary.Count, primary.Expected, primary.Complete
	if !primary.Complete {
		r.Warnings = append(r.Warnings, fmt.Sprintf("partial: %s measured %d of %d (%s)",
			primary.Role, primary.Count, primary.Expected, primary.Error))
	} else if primary.Error != "" {
		r.Warnings = append(r.Warnings, primary.Role+": "+primary.Error)
	}
	if secondary.Error != "" {
		r.Warnings = append(r.Warnings, secondary.Role+": "+secondary.Error)
	}
	h.logf("%-6s %-18s %s  (n=%d)", impl, c, summary(r), n)
	return r
}

// Timings of a pair of peers.
const (
	// secondaryGrace is how long the other peer may take to exit once the
	// measuring peer is done (a PUSH flushing, a REP closing).
	secondaryGrace = 5 * time.Second
	// failedPeerGrace is how long the measuring peer may go on after the
	// other one failed.
	failedPeerGrace = time.Second
)

// runPair runs one binder and one connector for a case and returns the
// result of the peer that measures (pull, req) and of the other one (push,
// rep). It retries once on a new port when the binder could not bind.
func (h *harness) runPair(ctx context.Context, impl string, c Case, count int64) (primary, secondary PeerResult, warnings []string, err error) {
	for attempt := 0; ; attempt++ {
		primary, secondary, warnings, err = h.runPairOnce(ctx, impl, c, count)
		var be *bindError
		if attempt == 0 && errors.As(err, &be) {
			h.logf("%-6s %-18s retrying on another port: %v", impl, c, err)
			continue
		}
		return primary, secondary, warnings, err
	}
}

// bindError is a binder that failed because its port was taken.
type bindError struct{ msg string }

func (e *bindError) Error() string { return e.msg }

func (h *harness) runPairOnce(ctx context.Context, impl string, c Case, count int64) (primary, secondary PeerResult, warnings []string, err error) {
	ep, err := freeEndpoint()
	if err != nil {
		return primary, secondary, nil, err
	}
	binderRole, connectorRole := RolePull, RolePush
	if c.Pattern == ReqRep {
		binderRole, connectorRole = RoleRep, RoleReq
	}

	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	binder, err := h.start(ctx, impl, binderRole, ep, c.Size, count)
	if err != nil {
		return primary, secondary, nil, err
	}
	connector, err := h.start(ctx, impl, connectorRole, ep, c.Size, count)
	if err != nil {
		binder.kill()
		<-binder.done
		return primary, secondary, nil, err
	}
	pp, sp := binder, connector
	if c.Pattern == ReqRep {
		pp, sp = connector, binder
	}
	warnings = waitPair(pp, sp)
	if ctx.Err() != nil && pp.err != nil {
		return primary, secondary, warnings, fmt.Errorf("%s peer timed out after %v%s", pp.role, h.cfg.Timeout, stderrNote(pp))
	}
	if res, perr := ParsePeerResult(sp.stdout.Bytes()); perr == nil {
		secondary = res
	} else if sp.err != nil {
		warnings = append(warnings, fmt.Sprintf("%s peer: %v%s", sp.role, sp.err, stderrNote(sp)))
	}
	primary, err = primaryResult(pp, binder, connector, c)
	return primary, secondary, warnings, err
}

// waitPair waits for the measuring peer pp; if the other one, sp, fails
// first, it gives pp a moment to report what it has, then stops it. It
// never waits long for sp once pp is done.
func waitPair(pp, sp *proc) (warnings []string) {
	select {
	case <-pp.done:
	case <-sp.done:
		if sp.err != nil {
			select {
			case <-pp.done:
			case <-time.After(failedPeerGrace):
				pp.kill()
				<-pp.done
			}
		} else {
			<-pp.done
		}
	}
	select {
	case <-sp.done:
	case <-time.After(secondaryGrace):
		sp.kill()
		<-sp.done
		warnings = append(warnings, fmt.Sprintf("%s peer still running %v after the %s peer finished; killed",
			sp.role, secondaryGrace, pp.role))
	}
	return warnings
}

// primaryResult is the measuring peer pp's result, or why there is none:
// the binder's failure first, since a peer that could not bind explains
// the other one's (a *bindError when its port was taken).
func primaryResult(pp, binder, connector *proc, c Case) (PeerResult, error) {
	primary, perr := ParsePeerResult(pp.stdout.Bytes())
	if perr != nil {
		for _, p := range []*proc{binder, connector} {
			if p.err != nil {
				msg := fmt.Sprintf("%s peer: %v%s", p.role, p.err, stderrNote(p))
				if p == binder && isAddrInUse(p.stderr.String()) {
					return primary, &bindError{msg}
				}
				return primary, errors.New(msg)
			}
		}
		return primary, fmt.Errorf("%s peer: %v%s", pp.role, perr, stderrNote(pp))
	}
	if err := sane(primary, c); err != nil {
		return primary, fmt.Errorf("%s peer: %v%s", pp.role, err, stderrNote(pp))
	}
	return primary, nil
}

// sane checks that a measuring peer's result has usable figures.
func sane(r PeerResult, c Case) error {
	var problems []string
	if r.Count < 2 {
		problems = append(problems, fmt.Sprintf("only %d of %d handled", r.Count, r.Expected))
	}
	if !(r.MsgsPerSec > 0) || math.IsInf(r.MsgsPerSec, 0) {
		problems = append(problems, fmt.Sprintf("msgs_per_sec %v", r.MsgsPerSec))
	}
	if c.Pattern == ReqRep && (!(r.RTTMicros > 0) || math.IsInf(r.RTTMicros, 0)) {
		problems = append(problems, fmt.Sprintf("rtt_us %v", r.RTTMicros))
	}
	if r.Size != c.Size {
		problems = append(problems, fmt.Sprintf("size %d, want %d", r.Size, c.Size))
	}
	if len(problems) == 0 {
		return nil
	}
	if r.Error != "" {
		problems = append(problems, r.Error)
	}
	return errors.New("no usable result: " + strings.Join(problems, "; "))
}

// proc is one running peer process.
type proc struct {
	role           string
	cmd            *exec.Cmd
	cancel         context.CancelFunc
	stdout, stderr bytes.Buffer
	done           chan struct{} // closed once err is set
	err            error
}

func (p *proc) kill() { p.cancel() }

// Peer-side timeouts (see bench/peer and ZMQBENCH_* in zmqbench.c): how long
// a receiver waits for the first message and then for each next one before
// it reports what it got.
func (h *harness) peerTimeouts() (wait, idle time.Duration) {
	if h.cfg.Quick {
		return 10 * time.Second, 3 * time.Second
	}
	return 20 * time.Second, 5 * time.Second
}

// start starts one peer; it is killed when ctx ends.
func (h *harness) start(ctx context.Context, impl, role, ep string, size int, count int64) (*proc, error) {
	wait, idle := h.peerTimeouts()
	hwm := HWM(size)
	args := []string{role, ep, strconv.Itoa(size), strconv.FormatInt(count, 10)}
	var name string
	var env []string
	if impl == ImplLibzmq {
		name = h.zmqBin
		env = []string{
			"ZMQBENCH_HWM=" + strconv.Itoa(hwm),
			"ZMQBENCH_WAIT_MS=" + strconv.FormatInt(wait.Milliseconds(), 10),
			"ZMQBENCH_IDLE_MS=" + strconv.FormatInt(idle.Milliseconds(), 10),
		}
	} else {
		name = h.peerBin
		args = append([]string{"-impl", impl, "-hwm", strconv.Itoa(hwm),
			"-wait", wait.String(), "-idle", idle.String()}, args...)
	}

	ctx, cancel := context.WithCancel(ctx)
	p := &proc{role: role, cancel: cancel, done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, name, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start %s peer: %w", role, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	return p, nil
}

// freeEndpoint returns a tcp://127.0.0.1 endpoint on a port that was free a
// moment ago.
func freeEndpoint() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "tcp://" + l.Addr().String(), nil
}

func isAddrInUse(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "address already in use") || strings.Contains(s, "address in use")
}

// stderrNote quotes the end of a peer's stderr, if it wrote anything.
func stderrNote(p *proc) string {
	t := strings.TrimSpace(string(tail(p.stderr.Bytes())))
	if t == "" {
		return ""
	}
	return "; stderr: " + t
}

// round3 rounds to three decimals, which is all the precision the figures have.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// tail returns the last few hundred bytes of b.
func tail(b []byte) []byte {
	const n = 600
	if len(b) > n {
		return append([]byte("…"), b[len(b)-n:]...)
	}
	return b
}
