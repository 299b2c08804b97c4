package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/secure"
)

// joinFlags are the server's join flags (serve.go defines them).
type joinFlags struct {
	peers    joinList
	interval time.Duration
	timeout  time.Duration
	grace    time.Duration
	keys     listFlag // --join-key, with --curve (curve.go)
}

func (f *joinFlags) define(fs *flag.FlagSet) {
	fs.Var(&f.peers, "join", "join the server at `HOST[:PORT]` (port 8420 if omitted; tcp://HOST:PORT too) and share registered services with it, and through it with the servers it joins (repeatable; space-separated in $HYDRA_JOIN)")
	fs.Var(&f.keys, "join-key", "with --curve: the public `key` (Z85 text in single quotes, or its KEY.pub file) of the server named by the --join in the same position (repeatable)")
	fs.DurationVar(&f.interval, "join-interval", join.DefaultInterval, "how often each join link carries its digest and heartbeat")
	fs.DurationVar(&f.timeout, "join-timeout", 0, "drop and redial a join link silent this long (0: five times --join-interval)")
	fs.DurationVar(&f.grace, "join-grace", join.DefaultGrace, "how long the services of a server no longer heard from (through any link) stay before they expire")
}

// config is the server's join.Config; joined is printed when a link this
// server dialled comes up.
func (f *joinFlags) config(joined func(addr string)) join.Config {
	return join.Config{
		Peers: f.peers.addrs, Interval: f.interval, Timeout: f.timeout, Grace: f.grace,
		OnLink: func(ev join.LinkEvent) {
			if ev.Up {
				joined(ev.Addr)
			}
		},
		// Security (CURVE per peer) is set by serve from --join-key.
	}
}

// joinList is the repeatable --join flag.
type joinList struct{ addrs []string }

func (l *joinList) String() string { return strings.Join(l.addrs, " ") }

// Set adds one address, or several separated by spaces or commas.
func (l *joinList) Set(v string) error {
	for _, a := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' }) {
		addr, err := join.ParseAddr(a)
		if err != nil {
			return err
		}
		l.addrs = append(l.addrs, addr)
	}
	return nil
}

const joinHelp = `
Asks the running server (--server, or --host and --port) to join other servers, as
--join does at start: the servers share their registered services from then
on. Prints each peer's HOST:PORT; the server prints
"[Hydra Server] Joined with HOST:PORT" once the link is up.

Example: hydra-server join 10.0.0.7 10.0.0.8:8421`

func init() {
	addCommand(&command{name: "join", args: "[flags] HOST[:PORT]...", short: "make the running server join other servers (share services)", run: joinCmd})
}

func joinCmd(ctx context.Context, io stdio, args []string) (err error) {
	c, f, pos, err := clientCommand(io, "join", "[flags] HOST[:PORT]...", joinHelp, args, false, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	defer func() { err = f.explain(err) }()
	if len(pos) == 0 {
		return usagef("join: want at least one HOST[:PORT]")
	}
	for _, p := range pos {
		if _, err := join.ParseAddr(p); err != nil {
			return usagef("join: %v", err)
		}
	}
	for _, p := range pos {
		rctx, cancel := context.WithTimeout(ctx, f.timeout)
		addr, isNew, err := c.Join(rctx, p)
		cancel()
		if err != nil {
			return err
		}
		if isNew {
			fmt.Fprintf(io.out, "joining %s\n", addr)
		} else {
			fmt.Fprintf(io.out, "already joining %s\n", addr)
		}
	}
	return nil
}

// pinnedKeys pairs each --join with its --join-key (in order), for CURVE
// join links (--curve).
func (f *joinFlags) pinnedKeys(curve bool) (map[string]secure.PublicKey, error) {
	if !curve {
		if len(f.keys) > 0 {
			return nil, usagef("--join-key needs --curve (and --key-file)")
		}
		return nil, nil
	}
	if len(f.keys) != len(f.peers.addrs) {
		return nil, usagef("%d --join and %d --join-key: with --curve, give each joined server's public key, in the same order", len(f.peers.addrs), len(f.keys))
	}
	keys := map[string]secure.PublicKey{}
	for i, k := range f.keys {
		pub, err := secure.ReadPublicKey(k)
		if err != nil {
			return nil, usagef("--join-key %q: %v", k, err)
		}
		keys[f.peers.addrs[i]] = pub
	}
	return keys, nil
}
