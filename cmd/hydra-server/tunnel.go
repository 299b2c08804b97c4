package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hydra-net/hydra/mux"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// tunnelFlags are the server's key and tunnel flags (serve.go defines
// them). --key-file is the server's identity for tunnels (and for CURVE
// when that is configured); --allow-file lists the keys of servers that
// may tunnel to this one.
type tunnelFlags struct {
	keyFile    string
	allowFile  string
	remotes    listFlag
	keys       listFlag
	ports      string
	window     sizeFlag
	maxStreams int
	backlog    int
	keepalive  time.Duration
	curve      bool // CURVE on the ZMTP port too (curve.go)
	allowAny   bool
}

func (f *tunnelFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.keyFile, "key-file", "", "this server's secret key `file` (hydra-server keygen; zcert format): its identity on tunnels")
	fs.BoolVar(&f.curve, "curve", false, "run CURVE on the ZMTP port too (needs --key-file): clients and joining servers must know this server's public key, and theirs must be on --allow-file (or --allow-any-key)")
	fs.BoolVar(&f.allowAny, "allow-any-key", false, "accept any peer key on tunnels and CURVE (encryption without authorization; instead of --allow-file)")
	fs.StringVar(&f.allowFile, "allow-file", "", "`file` of public keys (Z85, one a line) of servers allowed to open tunnels to this one; without it inbound tunnels are refused")
	fs.Var(&f.remotes, "tunnel", "keep a tunnel to the server at `REMOTE[:PORT]` (port 8420 if omitted): its services become reachable here and ours there (repeatable; pair each with a --remote-key, in order; needs --key-file)")
	fs.Var(&f.keys, "remote-key", "the tunnel remote's public `key` (Z85, 40 characters), pinned: one per --tunnel, in the same order")
	fs.StringVar(&f.ports, "tunnel-ports", "", "`MIN-MAX` port range for the proxy listeners of tunnelled services (default: ports the system chooses)")
	f.window = sizeFlag(registry.DefaultTunnelStreamWindow)
	fs.Var(&f.window, "tunnel-window", "receive window of each tunnel stream, `bytes` (K/M suffixes; 256K-16M): one stream's throughput is at most window / round trip")
	fs.IntVar(&f.maxStreams, "tunnel-max-streams", registry.DefaultTunnelMaxStreams, "most streams (proxied connections) at once per tunnel; memory is bounded by about this × --tunnel-window")
	fs.IntVar(&f.backlog, "tunnel-backlog", registry.DefaultTunnelAcceptBacklog, "most streams the far side may open that wait to be served, per tunnel")
	fs.DurationVar(&f.keepalive, "tunnel-keepalive", registry.DefaultTunnelKeepAlive, "ping a tunnel silent this long; the peer is dead after 3× this without a byte")
}

// tunnelSetup is what serve needs of the tunnel flags: nil when no key
// file is given (then the port is plain ZMTP, as before).
type tunnelSetup struct {
	cfg    registry.TunnelConfig
	kp     secure.KeyPair
	allow  *secure.AllowList // --allow-file, reloaded on SIGHUP
	curve  bool
	sl     *registry.SharedListener
	cancel context.CancelFunc
	done   chan error
}

// setup checks the flags and loads the keys; host is the server's --host
// (proxy listeners bind it).
func (f *tunnelFlags) setup(log *slog.Logger, host, proto string) (*tunnelSetup, error) {
	if len(f.remotes) != len(f.keys) {
		return nil, usagef("%d --tunnel and %d --remote-key: give one key per tunnel, in the same order", len(f.remotes), len(f.keys))
	}
	if f.keyFile == "" {
		if f.curve || f.allowAny {
			return nil, usagef("--curve and --allow-any-key need --key-file (this server's key pair; hydra-server keygen makes one)")
		}
		if len(f.remotes) > 0 || f.allowFile != "" {
			return nil, usagef("--tunnel and --allow-file need --key-file (this server's key pair; hydra-server keygen makes one)")
		}
		return nil, nil
	}
	if proto != "tcp" && (len(f.remotes) > 0 || f.allowFile != "" || f.allowAny) {
		return nil, usagef("tunnels need --proto tcp")
	}
	kp, err := secure.LoadKeyPair(f.keyFile)
	if err != nil {
		return nil, err
	}
	ts := &tunnelSetup{kp: kp, curve: f.curve}
	cfg := registry.TunnelConfig{Static: kp, Logger: log, ProxyHost: host,
		Mux: mux.Config{StreamWindow: uint32(f.window), MaxStreams: f.maxStreams, AcceptBacklog: f.backlog,
			KeepAliveInterval: f.keepalive}}
	if f.allowFile != "" {
		al, err := secure.LoadAllowList(f.allowFile)
		if err != nil {
			return nil, err
		}
		cfg.Allow = al
		ts.allow = al
	}
	if f.allowAny {
		if f.allowFile != "" {
			return nil, usagef("--allow-any-key and --allow-file exclude each other")
		}
		cfg.Allow = secure.AllowAny()
	}
	if f.curve {
		// Tunnels talk to their own server as a client: with CURVE on,
		// with the server's own key, which serverSecurity always allows.
		cfg.Client.Security = curve.Client(kp, kp.Public)
	}
	for i, r := range f.remotes {
		key, err := secure.ParsePublicKey(f.keys[i])
		if err != nil {
			return nil, usagef("--remote-key %q: %v", f.keys[i], err)
		}
		addr, err := registry.ParseTunnelAddr(r)
		if err != nil {
			return nil, usagef("--tunnel: %v", err)
		}
		cfg.Remotes = append(cfg.Remotes, registry.TunnelRemote{Addr: addr, Key: key})
	}
	if f.ports != "" {
		lo, hi, ok := strings.Cut(f.ports, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if !ok || err1 != nil || err2 != nil {
			return nil, usagef("--tunnel-ports %q: want MIN-MAX", f.ports)
		}
		cfg.PortMin, cfg.PortMax = a, b
	}
	if err := cfg.Verify(); err != nil {
		return nil, usagef("%v", strings.TrimPrefix(err.Error(), "registry: "))
	}
	ts.cfg = cfg
	return ts, nil
}

// tunnels reports whether any tunnel is configured, out (--tunnel) or in
// (--allow-file, --allow-any-key).
func (ts *tunnelSetup) tunnels() bool {
	return ts != nil && (len(ts.cfg.Remotes) > 0 || ts.cfg.Allow != nil)
}

// bind binds the server: with tunnels on, through a listener that hands
// ZMTP peers to the server and tunnels to Tunnels (one port for both).
func (ts *tunnelSetup) bind(srv *registry.Server, ep string) error {
	if !ts.tunnels() || !strings.HasPrefix(ep, "tcp://") {
		return srv.Bind(ep)
	}
	ln, err := zmtp.Listen(ep)
	if err != nil {
		return err
	}
	ts.sl = registry.NewSharedListener(ln, ts.cfg.Logger)
	return srv.BindListener(ts.sl.ZMTP())
}

// start runs the tunnels once the server serves.
func (ts *tunnelSetup) start(endpoint string) error {
	if !ts.tunnels() {
		return nil
	}
	tun, err := registry.NewTunnels(ts.cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel, ts.done = cancel, make(chan error, 1)
	var in net.Listener
	if ts.cfg.Allow != nil {
		in = ts.sl.Tunnels()
	}
	go func() { ts.done <- tun.Run(ctx, endpoint, in) }()
	return nil
}

// stop closes the tunnels and deregisters their proxies (the server must
// still be serving).
func (ts *tunnelSetup) stop() {
	if ts == nil || ts.cancel == nil {
		return
	}
	ts.cancel()
	if err := <-ts.done; err != nil && !errors.Is(err, context.Canceled) {
		ts.cfg.Logger.Warn("tunnel: stopped", "err", err)
	}
}

// listFlag is a repeatable string flag; a value (from $HYDRA_* or the
// config file) may hold several, separated by spaces or commas.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' })...)
	return nil
}

// sizeFlag is a byte count with an optional K, M or G suffix (KiB ...).
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *sizeFlag) Set(v string) error {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(v)), "B"), "I")
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("size %q: want a number of bytes, e.g. 8M", v)
	}
	*s = sizeFlag(n * mult)
	return nil
}
