package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
)

const serveHelp = `
Runs the Hydra registry: a ZMTP ROUTER socket that any REQ or DEALER socket
of any ZeroMQ library can register services with and look them up from
(PROTOCOL.md). With no flags it binds 127.0.0.1:8420 and prints
"[Hydra Server] Bound to 127.0.0.1:8420". SIGINT or SIGTERM shuts it down
gracefully (a second one kills it).

Commands (hydra-server COMMAND --help for each):
%s`

// serverFlags are the server's own flags, on top of the common ones.
type serverFlags struct {
	common
	serverID       string
	maxEntries     int
	maxPerClient   int
	maxMeta        int
	maxRequest     int64
	defaultTTL     time.Duration
	minTTL, maxTTL time.Duration
	maxWatches     int
	maxWatchesPeer int
	maxListPage    int
	maxListBytes   int
	keepalive      time.Duration
	static         serviceList
	join           joinFlags   // join.go
	access         accessFlags // curve.go: --key-file, --curve, --plaintext, --allow-*
	tunnel         tunnelFlags // tunnel.go: --tunnel, --remote-key ...
	dns            dnsFlags    // nodeflags.go: --dns, --dns-domain, --dns-ttl
	http           httpFlags   // http.go: --http, --http-token-file, --http-remote-reads
	limits         limitsFlags // limits.go: --max-handshakes*, --max-conns*, --max-pending-*, --write-timeout
}

func (f *serverFlags) define(fs *flag.FlagSet) {
	f.common.define(fs)
	fs.Var(versionFlag{}, "version", "print the version and the Go/OS/arch it was built for, and exit")
	fs.StringVar(&f.serverID, "server-id", "", "this server's `id` in the entries it originates (default: random at each start)")
	fs.IntVar(&f.maxEntries, "max-entries", registry.DefaultMaxEntries, "most entries held in all")
	fs.IntVar(&f.maxPerClient, "max-entries-per-client", registry.DefaultMaxEntriesPerClient, "most entries one client holds: per CURVE client key, or per source address without CURVE (tokens do not count)")
	fs.IntVar(&f.maxMeta, "max-metadata-bytes", registry.DefaultMaxMetadataBytes, "most bytes of one entry's metadata, keys plus values")
	fs.Int64Var(&f.maxRequest, "max-request-bytes", registry.DefaultMaxRequestBytes, "largest request accepted; a peer sending more is disconnected")
	fs.DurationVar(&f.defaultTTL, "default-ttl", registry.DefaultTTL, "TTL of an entry registered without one")
	fs.DurationVar(&f.minTTL, "min-ttl", registry.DefaultMinTTL, "shortest TTL a client may ask for")
	fs.DurationVar(&f.maxTTL, "max-ttl", registry.DefaultMaxTTL, "longest TTL a client may ask for")
	fs.IntVar(&f.maxWatches, "max-watches", registry.DefaultMaxWatches, "most watches held in all")
	fs.IntVar(&f.maxWatchesPeer, "max-watches-per-peer", registry.DefaultMaxWatchesPerPeer, "most watches one connection holds")
	fs.IntVar(&f.maxListPage, "max-list-page", registry.DefaultMaxListPage, "most names or entries in one LIST reply; longer lists page with a cursor")
	fs.IntVar(&f.maxListBytes, "max-list-bytes", registry.DefaultMaxListBytes, "most bytes of entries in one LIST reply (at least one entry); longer lists page with a cursor")
	fs.DurationVar(&f.keepalive, "watch-keepalive", registry.DefaultWatchKeepalive, "keepalive event interval on idle watches")
	f.join.define(fs)
	f.access.define(fs) // curve.go
	f.tunnel.define(fs) // tunnel.go
	f.dns.define(fs)    // nodeflags.go
	f.http.define(fs)   // http.go
	f.limits.define(fs) // limits.go
	fs.Var(&f.static, "service", "a static `service` NAME=PROTO://HOST:PORT[?key=value&...] that never expires, for things that cannot speak Hydra (repeatable; e.g. ssh=tcp://127.0.0.1:22)")
}

func serve(ctx context.Context, stop func(), io stdio, args []string) error {
	if wantsVersion(args) {
		fmt.Fprintln(io.out, versionString())
		return nil
	}
	var f serverFlags
	fs := flag.NewFlagSet("hydra-server", flag.ContinueOnError)
	f.define(fs)
	pos, err := parse(fs, &f.common, args, true)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(io.out, "hydra-server [flags]\n       hydra-server COMMAND [flags] [args]", fmt.Sprintf(serveHelp, commandList()), fs)
		return err
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (commands: %s)", pos[0], commandNames())
	}
	log, err := newLogger(io.err, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	ep, err := f.endpoint()
	if err != nil {
		return err
	}
	cfg := node.Config{Logger: log, Endpoint: ep, Version: versionString(),
		Registry: registry.Config{ServerID: f.serverID,
			MaxEntries: f.maxEntries, MaxEntriesPerClient: f.maxPerClient, MaxMetadataBytes: f.maxMeta,
			MaxRequestBytes: f.maxRequest, DefaultTTL: f.defaultTTL, MinTTL: f.minTTL, MaxTTL: f.maxTTL,
			MaxWatches: f.maxWatches, MaxWatchesPerPeer: f.maxWatchesPeer, MaxListPage: f.maxListPage, MaxListBytes: f.maxListBytes,
			WatchKeepalive: f.keepalive, Static: f.static.svcs},
		Join: f.join.config(func(addr string) { fmt.Fprintf(io.out, "[Hydra Server] Joined with %s\n", addr) }),
	}
	if err := f.access.apply(&cfg, f.host, f.proto); err != nil { // curve.go: keys, CURVE, roles
		return err
	}
	f.dns.apply(&cfg, fs)                                 // nodeflags.go
	f.http.apply(&cfg, fs)                                // http.go
	f.limits.apply(&cfg)                                  // limits.go
	if err := f.tunnel.apply(&cfg, f.proto); err != nil { // tunnel.go: tunnels
		return err
	}
	if cfg.JoinKeys, err = f.join.pinnedKeys(cfg.Curve); err != nil { // join.go: --join-key
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%s", flagError(err)) // nodeflags.go
	}
	n, err := node.New(cfg)
	if err != nil {
		var ce *node.ConfigError
		if errors.As(err, &ce) { // --http's or --dns's address is taken, --http-token-file unreadable
			return errors.New(flagError(err))
		}
		return err
	}
	bound := strings.TrimPrefix(n.Endpoint(), "tcp://")
	fmt.Fprintf(io.out, "[Hydra Server] Bound to %s\n", bound)
	if f.proto == "tcp" && !loopback(f.host) && !n.Secure() {
		fix := "bind 127.0.0.1, or give --key-file (CURVE is then the default) and the keys of the clients (--allow-clients)"
		if cfg.Keys != nil {
			fix = "drop --plaintext (CURVE is the default with --key-file) and list the clients' keys (--allow-clients)"
		}
		log.Warn("bound beyond loopback in plaintext (NULL): anyone who can reach this address can register, change and look up services; "+fix,
			"address", bound)
	}
	if n.Secure() && cfg.Access.Clients == nil {
		log.Info("CURVE on the ZMTP port and no --allow-clients: registry clients are refused (servers on --allow-servers and admins on --allow-admins only)")
	}
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			reload(log, n)
		case err := <-done:
			return err
		case <-ctx.Done():
			stop() // a second signal kills the process
			log.Info("shutting down", "reason", context.Cause(ctx))
			cancel() // node.Run: tunnels withdraw their proxies, then the registry stops
			return <-done
		}
	}
}

// reload re-reads the --allow-* files and --http-token-file (on SIGHUP) and drops what removed
// keys had established; a bad file keeps its old list.
func reload(log *slog.Logger, n *node.Node) {
	reloaded, err := n.Reload()
	switch {
	case err != nil:
		log.Error("SIGHUP: a key list not reloaded; its old keys stay", "err", err)
	case !reloaded:
		log.Info("SIGHUP: no --allow-* or --http-token-file to reload")
	default:
		log.Info("SIGHUP: key lists reloaded")
	}
}

func commandList() string {
	var b strings.Builder
	w := 0
	for _, c := range commands {
		w = max(w, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-*s  %s\n", w, c.name, c.short)
	}
	return b.String()
}

// loopback reports whether host names only this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")) // --host '[::1]' too
	return ip != nil && ip.IsLoopback()
}
