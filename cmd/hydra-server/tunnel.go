package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hydra-net/hydra/internal/netaddr"
	"github.com/hydra-net/hydra/mux"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
)

// tunnelFlags are the server's tunnel flags (serve.go defines them). The
// key and role flags (--key-file, --allow-tunnels ...) are accessFlags
// (curve.go), applied first.
type tunnelFlags struct {
	remotes    listFlag
	keys       listFlag
	ports      string
	bind       string
	export     listFlag
	imports    listFlag
	window     sizeFlag
	maxStreams int
	backlog    int
	keepalive  time.Duration
}

func (f *tunnelFlags) define(fs *flag.FlagSet) {
	fs.Var(&f.remotes, "tunnel", "keep a tunnel to the server at `REMOTE[:PORT]` (port 8420 if omitted): its services become reachable here and ours there (repeatable; pair each with a --remote-key, in order; needs --key-file)")
	fs.Var(&f.keys, "remote-key", "the tunnel remote's public `key`, pinned: its Z85 text (40 characters, in single quotes) or its KEY.pub file: one per --tunnel, in the same order")
	fs.StringVar(&f.bind, "tunnel-bind", tunnel.DefaultProxyHost, "`HOST` the proxy listeners of the far side's services bind (their entries say the address bound); a proxy answers anyone who reaches it, without authentication, so give an address beyond loopback (0.0.0.0: every IPv4 one) only to publish them on purpose")
	fs.Var(&f.export, "tunnel-export", "share only this server's services whose names match one of these `NAMES` or globs (path.Match: 'ssh,web*'; repeatable) over its tunnels; default: every service except those bound to loopback (127.0.0.0/8, ::1, localhost), which stay off the far side unless named here ('*': all)")
	fs.Var(&f.imports, "tunnel-import", "register proxies only for the far sides' services whose names match one of these `NAMES` or globs (repeatable); default: all they share")
	fs.StringVar(&f.ports, "tunnel-ports", "", "`MIN-MAX` port range for the proxy listeners of tunnelled services (default: ports the system chooses)")
	f.window = sizeFlag(tunnel.DefaultStreamWindow)
	fs.Var(&f.window, "tunnel-window", "receive window of each tunnel stream, `bytes` (K/M suffixes; 256K-16M): one stream's throughput is at most window / round trip")
	fs.IntVar(&f.maxStreams, "tunnel-max-streams", tunnel.DefaultMaxStreams, "most streams (proxied connections) at once per tunnel; memory is bounded by about this × --tunnel-window")
	fs.IntVar(&f.backlog, "tunnel-backlog", tunnel.DefaultAcceptBacklog, "most streams the far side may open that wait to be served, per tunnel")
	fs.DurationVar(&f.keepalive, "tunnel-keepalive", tunnel.DefaultKeepAlive, "ping a tunnel silent this long; the peer is dead after 3× this without a byte")
}

// apply checks the tunnel flags and sets them in cfg, whose Keys
// accessFlags.apply set. Proxy listeners bind --tunnel-bind, never --host by
// itself: a registry published on the network must not publish the services
// the far side kept on its loopback.
func (f *tunnelFlags) apply(cfg *node.Config, proto string) error {
	if len(f.remotes) != len(f.keys) {
		return usagef("%d --tunnel and %d --remote-key: give one key per tunnel, in the same order", len(f.remotes), len(f.keys))
	}
	if cfg.Keys == nil && len(f.remotes) > 0 {
		return usagef("--tunnel needs --key-file (this server's key pair; hydra-server keygen makes one)")
	}
	if proto != "tcp" && (len(f.remotes) > 0 || cfg.Access.Tunnels != nil) {
		return usagef("tunnels need --proto tcp")
	}
	if cfg.Keys == nil {
		return nil
	}
	cfg.Tunnel = tunnel.Config{ProxyHost: f.bind, Export: f.export, Import: f.imports,
		Mux: mux.Config{StreamWindow: uint32(f.window), MaxStreams: f.maxStreams, AcceptBacklog: f.backlog,
			KeepAliveInterval: f.keepalive}}
	for i, r := range f.remotes {
		key, err := secure.ReadPublicKey(f.keys[i])
		if err != nil {
			return usagef("--remote-key %q: %v", f.keys[i], err)
		}
		addr, err := netaddr.ParseHostPort(r)
		if err != nil {
			return usagef("--tunnel: %v", err)
		}
		cfg.Tunnel.Remotes = append(cfg.Tunnel.Remotes, tunnel.Remote{Addr: addr, Key: key})
	}
	if f.ports != "" {
		lo, hi, ok := strings.Cut(f.ports, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if !ok || err1 != nil || err2 != nil {
			return usagef("--tunnel-ports %q: want MIN-MAX", f.ports)
		}
		cfg.Tunnel.PortMin, cfg.Tunnel.PortMax = a, b
	}
	return nil
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

// String writes the size with the largest suffix that divides it: 8M, not 8388608.
func (s *sizeFlag) String() string {
	n := int64(*s)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

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
