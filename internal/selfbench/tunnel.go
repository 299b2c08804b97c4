package selfbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
)

// ErrTunnelTarget is what Tunnel returns for a TunnelConfig.Target: only
// the in-process pair is measured so far.
var ErrTunnelTarget = errors.New("selfbench: bench tunnel measures two servers in this process; --target is not supported yet")

// TunnelConfig says what Tunnel measures: TCP streams carried through a
// tunnel between two Hydra servers (the data path of README's "--tunnel":
// app → proxy listener → mux stream → Noise → TCP → remote Hydra → the
// service), between two servers Tunnel starts in this process. The zero
// value measures one stream of 256-byte writes for 2s.
//
// The fields are those of the other benches so that the command line and
// the report stay the same.
type TunnelConfig struct {
	// Target is reserved for a remote hydra-server accepting tunnels; it
	// must be empty (ErrTunnelTarget): two servers in this process,
	// tunnelled over loopback. Default empty.
	Target string
	// Size is the write size in bytes, at most MaxSize. Default 256.
	Size int
	// Count is the writes in all. Default 0: write for Duration.
	Count int64
	// Duration is how long to write when Count is 0. Default 2s.
	Duration time.Duration
	// Concurrency is the number of streams at once, at most
	// MaxConcurrency. Default 1.
	Concurrency int
	// Timeout bounds the tunnel's setup and how long the bench waits
	// without progress before it gives up. Default 10s.
	Timeout time.Duration
	// Progress, when set, is advanced by every write sent. Default nil.
	Progress *atomic.Int64
}

// Tunnel's echo sample: round trips of echoSize bytes, one at a time on
// one connection, after the streams.
const (
	echoSize      = 64
	echoRounds    = 2000
	echoMinRounds = 100
)

// Validate reports ErrTunnelTarget for a Target, or the first field out
// of range.
func (c TunnelConfig) Validate() error {
	bad := func(field, format string, args ...any) error {
		return configError("TunnelConfig", field, format, args...)
	}
	switch {
	case c.Target != "":
		return ErrTunnelTarget
	case c.Size < 0 || c.Size > MaxSize:
		return bad("Size", "%d out of range 1-%d", c.Size, MaxSize)
	case c.Count < 0 || c.Count > maxCount:
		return bad("Count", "%d out of range 0-%d", c.Count, int64(maxCount))
	case c.Duration < 0:
		return bad("Duration", "negative")
	case c.Concurrency < 0 || c.Concurrency > MaxConcurrency:
		return bad("Concurrency", "%d out of range 1-%d", c.Concurrency, MaxConcurrency)
	case c.Timeout < 0:
		return bad("Timeout", "negative")
	}
	return nil
}

func (c TunnelConfig) withDefaults() TunnelConfig {
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Count == 0 && c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Progress == nil {
		c.Progress = new(atomic.Int64)
	}
	return c
}

// Tunnel measures streams through a tunnel between two servers it starts in
// this process on 127.0.0.1, A dialling B: a sink and an echo service
// registered with A are reached through the proxies B's registry returns.
//
// Concurrency connections to the sink's proxy each write Size bytes at a
// time, for Count writes in all or for Duration; the sink counts what
// arrives. Count is the writes that arrived whole, Elapsed runs from the
// first write (every stream connected end to end) to the last byte at the
// sink, and MBPerSec is the bytes received over Elapsed, in all. Latency
// is the round trip of a 64-byte write echoed back, one at a time on one
// connection, after the streams. The Result has Bench KindTunnel and Case
// "stream".
func Tunnel(ctx context.Context, cfg TunnelConfig) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	res := Result{Bench: KindTunnel, Case: "stream", Target: InProcess, Size: cfg.Size, Concurrency: cfg.Concurrency}

	pair, err := startTunnelPair(cfg)
	if err != nil {
		return res, err
	}
	defer pair.close()

	sink, err := newTunnelSink()
	if err != nil {
		return res, err
	}
	defer sink.close()
	echo, err := newTunnelEcho()
	if err != nil {
		return res, err
	}
	defer echo.close()

	// Register both with A; find their proxies at B.
	suffix := randomSuffix()
	sinkName, echoName := "selfbench-sink-"+suffix, "selfbench-echo-"+suffix
	for _, s := range []struct {
		name string
		ln   net.Listener
	}{{sinkName, sink.ln}, {echoName, echo.ln}} {
		a := s.ln.Addr().(*net.TCPAddr)
		rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		_, err := pair.a.cl.Register(rctx, registry.Service{Name: s.name, Host: a.IP.String(), Port: a.Port})
		cancel()
		if err != nil {
			return res, fmt.Errorf("selfbench: register %s: %w", s.name, err)
		}
	}
	sinkAddr, err := proxyAddr(ctx, pair.b.cl, sinkName, cfg.Timeout)
	if err != nil {
		return res, err
	}
	echoAddr, err := proxyAddr(ctx, pair.b.cl, echoName, cfg.Timeout)
	if err != nil {
		return res, err
	}

	if err := tunnelStreams(ctx, cfg, sink, sinkAddr, &res); err != nil {
		return res, err
	}
	lat, err := tunnelEchoSample(ctx, cfg, echoAddr)
	if err != nil {
		return res, err
	}
	res.Latency = lat
	res.Notes = append(res.Notes, fmt.Sprintf("latency: round trip of a %d-byte write echoed through the tunnel, one at a time on one connection", echoSize))
	return res, nil
}

// tunnelNode is a whole server with tunnels (package node) in this
// process, and a registry client of it.
type tunnelNode struct {
	n      *node.Node
	cancel context.CancelFunc
	done   chan error
	cl     *registry.Client
}

// startTunnelNode runs a node on a free loopback port with kp, allow (may
// be nil) and tcfg's remotes.
func startTunnelNode(kp secure.KeyPair, allow secure.Authorizer, tcfg tunnel.Config, streams int) (*tunnelNode, error) {
	tcfg.RedialMin, tcfg.RedialMax = 50*time.Millisecond, 500*time.Millisecond
	// Room for every stream of the bench, the echo and the control stream.
	tcfg.Mux.MaxStreams = max(tunnel.DefaultMaxStreams, streams+8)
	n, err := node.New(node.Config{Endpoint: "tcp://127.0.0.1:0", Keys: &kp, Access: node.Access{Tunnels: allow}, Tunnel: tcfg})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &tunnelNode{n: n, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	if tn.cl, err = registry.NewClient(registry.ClientConfig{Endpoint: n.Endpoint()}); err != nil {
		tn.close()
		return nil, err
	}
	return tn, nil
}

// close stops the client, then the node (its tunnels withdraw their
// proxies before its registry stops).
func (tn *tunnelNode) close() {
	if tn.cl != nil {
		tn.cl.Close()
	}
	tn.cancel()
	<-tn.done
}

// tunnelPair is two nodes, A dialling B.
type tunnelPair struct{ a, b *tunnelNode }

func startTunnelPair(cfg TunnelConfig) (*tunnelPair, error) {
	ka, err := secure.GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	kb, err := secure.GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	streams := cfg.Concurrency + 1
	b, err := startTunnelNode(kb, secure.NewAllowList(ka.Public), tunnel.Config{}, streams)
	if err != nil {
		return nil, err
	}
	// Export "*": A's services listen on loopback, which stays home by default.
	a, err := startTunnelNode(ka, nil, tunnel.Config{Export: []string{"*"},
		Remotes: []tunnel.Remote{{Addr: b.n.Addr(), Key: kb.Public}}}, streams)
	if err != nil {
		b.close()
		return nil, err
	}
	return &tunnelPair{a: a, b: b}, nil
}

// close stops A first: its tunnel ends, and B's proxies with it.
func (p *tunnelPair) close() {
	p.a.close()
	p.b.close()
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// proxyAddr waits until cl's server lists a tunnel proxy for name and
// returns its address.
func proxyAddr(ctx context.Context, cl *registry.Client, name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		es, err := cl.Lookup(lctx, name)
		cancel()
		if err == nil {
			for _, e := range es {
				if e.Meta[tunnel.MetaPeer] != "" {
					return e.Addr(), nil
				}
			}
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("selfbench: no tunnel proxy for %s within %v (last lookup: %v)", name, timeout, err)
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// tunnelServer accepts connections and runs handle on each until closed.
type tunnelServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newTunnelServer(handle func(net.Conn)) (*tunnelServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &tunnelServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.conns == nil {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	return s, nil
}

// close stops accepting, closes the connections and waits for their
// handlers.
func (s *tunnelServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// tunnelSink reads every connection to the end, counting the bytes. It
// writes one byte first, so that a client knows the whole path is up.
type tunnelSink struct {
	*tunnelServer
	base  time.Time
	bytes atomic.Int64
	last  atomic.Int64 // the latest byte's arrival, in ns since base
	ended chan int64   // the bytes of each connection, at its EOF
}

func newTunnelSink() (*tunnelSink, error) {
	s := &tunnelSink{base: time.Now(), ended: make(chan int64, MaxConcurrency+1)}
	srv, err := newTunnelServer(func(c net.Conn) {
		if _, err := c.Write([]byte{'R'}); err != nil {
			return
		}
		buf := make([]byte, 256<<10)
		var n int64
		for {
			k, err := c.Read(buf)
			if k > 0 {
				n += int64(k)
				s.bytes.Add(int64(k))
				now := int64(time.Since(s.base))
				for {
					old := s.last.Load()
					if now <= old || s.last.CompareAndSwap(old, now) {
						break
					}
				}
			}
			if err != nil {
				if err == io.EOF {
					select {
					case s.ended <- n:
					default:
					}
				}
				return
			}
		}
	})
	if err != nil {
		return nil, err
	}
	s.tunnelServer = srv
	return s, nil
}

func newTunnelEcho() (*tunnelServer, error) {
	return newTunnelServer(func(c net.Conn) {
		io.Copy(c, c)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	})
}

// tunnelStreams runs the stream phase and fills in res.
func tunnelStreams(ctx context.Context, cfg TunnelConfig, sink *tunnelSink, addr string, res *Result) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	conns, err := dialStreams(cfg, addr)
	defer closeConns(conns)
	if err != nil {
		return err
	}
	// A run that stops making progress is cancelled: its connections are
	// closed, which ends the writes.
	stopClose := context.AfterFunc(rctx, func() { closeConns(conns) })
	defer stopClose()
	stopWatch := watchProgress(rctx, cancel, cfg.Progress, cfg.Timeout)
	defer stopWatch()

	start := time.Now()
	sent, err := writeStreams(cfg, conns)
	if err != nil {
		if c := context.Cause(rctx); c != nil && ctx.Err() == nil {
			err = c
		}
		return fmt.Errorf("selfbench: tunnel stream: %w", err)
	}
	stopWatch()
	ended, err := sink.waitEnded(ctx, len(conns), cfg.Timeout)
	if err != nil {
		return err
	}
	return sink.fillStreams(res, cfg, start, sent, ended, len(conns))
}

// dialStreams connects Concurrency streams to the sink's proxy at addr,
// each end to end (the sink's first byte arrived) before the clock
// starts. The connections are returned, for closing, even with an error.
func dialStreams(cfg TunnelConfig, addr string) ([]net.Conn, error) {
	var conns []net.Conn
	for i := range cfg.Concurrency {
		c, err := net.DialTimeout("tcp", addr, cfg.Timeout)
		if err != nil {
			return conns, fmt.Errorf("selfbench: dial the tunnel proxy: %w", err)
		}
		conns = append(conns, c)
		c.SetReadDeadline(time.Now().Add(cfg.Timeout))
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return conns, fmt.Errorf("selfbench: stream %d through the tunnel: %w", i+1, err)
		}
		c.SetReadDeadline(time.Time{})
	}
	return conns, nil
}

func closeConns(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// writeStreams writes Size bytes at a time on every connection, Count
// writes in all or for Duration, then closes each for writing. It returns
// the writes sent.
func writeStreams(cfg TunnelConfig, conns []net.Conn) (int64, error) {
	b := newBudget(ZMTPConfig{Count: cfg.Count, Duration: cfg.Duration})
	var sent atomic.Int64
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte{'h'}, cfg.Size)
			for {
				k := b.claim(16)
				if k == 0 {
					break
				}
				for range k {
					if _, err := c.Write(msg); err != nil {
						errs[i] = err
						return
					}
					sent.Add(1)
					cfg.Progress.Add(1)
				}
			}
			errs[i] = c.(*net.TCPConn).CloseWrite()
		}()
	}
	wg.Wait()
	return sent.Load(), errors.Join(errs...)
}

// waitEnded waits, up to timeout, for n streams' ends at the sink and
// returns how many ended.
func (s *tunnelSink) waitEnded(ctx context.Context, n int, timeout time.Duration) (int, error) {
	wait := time.NewTimer(timeout)
	defer wait.Stop()
	for ended := 0; ended < n; ended++ {
		select {
		case <-s.ended:
		case <-wait.C:
			return ended, nil
		case <-ctx.Done():
			return ended, ctx.Err()
		}
	}
	return n, nil
}

// fillStreams fills in res from what the sink received of the writes
// sent since start, over conns streams of which ended reached their end.
func (s *tunnelSink) fillStreams(res *Result, cfg TunnelConfig, start time.Time, sent int64, ended, conns int) error {
	got := s.bytes.Load()
	res.Count, res.Expected = got/int64(cfg.Size), sent
	res.Lost = max(sent-res.Count, 0)
	if last := s.base.Add(time.Duration(s.last.Load())); last.After(start) {
		res.Elapsed = last.Sub(start)
		res.MsgsPerSec = float64(res.Count) / res.Elapsed.Seconds()
		res.MBPerSec = float64(got) / res.Elapsed.Seconds() / 1e6
	}
	if ended < conns {
		res.Notes = append(res.Notes, fmt.Sprintf("partial: %d of %d streams ended, %d of %d bytes arrived (nothing more for %v)",
			ended, conns, got, sent*int64(cfg.Size), cfg.Timeout))
	}
	if got == 0 {
		return fmt.Errorf("selfbench: no byte arrived through the tunnel of %d writes sent", sent)
	}
	return nil
}

// tunnelEchoSample measures round trips of echoSize bytes on one
// connection to the echo service's proxy.
func tunnelEchoSample(ctx context.Context, cfg TunnelConfig, addr string) (*Latency, error) {
	rounds := int64(echoRounds)
	if cfg.Count > 0 {
		rounds = min(rounds, max(cfg.Count, echoMinRounds))
	}
	c, err := net.DialTimeout("tcp", addr, cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("selfbench: dial the echo proxy: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	msg := bytes.Repeat([]byte{'e'}, echoSize)
	buf := make([]byte, echoSize)
	roundTrip := func() error {
		c.SetDeadline(time.Now().Add(cfg.Timeout))
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if !bytes.Equal(buf, msg) {
			return errors.New("echo differs from what was sent")
		}
		return nil
	}
	// One round trip to connect end to end before measuring.
	if err := roundTrip(); err != nil {
		return nil, fmt.Errorf("selfbench: tunnel echo: %w", err)
	}
	h := NewHistogram()
	for range rounds {
		t0 := time.Now()
		if err := roundTrip(); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("selfbench: tunnel echo: %w", err)
		}
		h.Record(time.Since(t0))
	}
	return h.Latency(), nil
}
