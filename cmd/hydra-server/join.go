package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/registry"
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
on. Waits (up to --timeout) for each link to come up and prints "joined
HOST:PORT (server ID)". A peer that cannot be reached (no such host, a
refused connection, a CURVE refusal) or that is the server itself is an
error (exit status 2) and the server stops dialling it; with --no-wait the
command returns once the server took the peer, and the server keeps
dialling it with backoff (for a peer not up yet).

A server run with --curve dials only CURVE links: give each peer's public
key with --key (Z85 text in single quotes, or its KEY.pub file), in the
order of the peers; without it such a server refuses the JOIN.

With --list, prints the server's join links instead (state, last heard, lag,
why a dial fails). Run-time joins are forgotten when the server restarts:
put the peers in --join (or the --config file) to keep them.
See also: hydra-server leave HOST[:PORT].

Example: hydra-server join 10.0.0.7 10.0.0.8:8421
         hydra-server join --server-key this.key.pub --client-key admin.key 10.0.0.7 --key peer.key.pub`

func init() {
	addCommand(&command{name: "join", args: "[flags] HOST[:PORT]...", short: "make the running server join other servers (share services), or list its links", run: joinCmd})
	addCommand(&command{name: "leave", args: "[flags] HOST[:PORT]...", short: "make the running server stop dialling servers it joined", run: leaveCmd})
}

func joinCmd(ctx context.Context, io stdio, args []string) (err error) {
	var list, noWait bool
	var keys listFlag
	c, f, pos, err := clientCommand(io, "join", "[flags] HOST[:PORT]...", joinHelp, args, true, func(fs *flag.FlagSet) {
		fs.BoolVar(&list, "list", false, "print the server's join links instead of joining")
		fs.Var(&keys, "key", "the public `key` (Z85 text in single quotes, or its KEY.pub file) of the peer in the same position: a server run with --curve needs one per peer (repeatable)")
		fs.BoolVar(&noWait, "no-wait", false, "return once the server took the peer, without waiting for the link (it keeps dialling)")
	})
	if err != nil {
		return err
	}
	defer c.Close()
	defer func() { err = f.explain(err) }()
	if list {
		if len(pos) != 0 {
			return usagef("join: --list takes no HOST[:PORT], got %q", pos[0])
		}
		ji, err := joinInfo(ctx, c, f.timeout)
		if err != nil {
			return err
		}
		if f.json {
			if ji == nil {
				ji = &join.Info{Links: []join.LinkInfo{}, Origins: []join.OriginInfo{}}
			}
			return writeJSON(io.out, ji)
		}
		if ji == nil || (len(ji.Links) == 0 && len(ji.Refused) == 0) {
			fmt.Fprintln(io.out, "join links: none")
			return nil
		}
		writeJoinLinks(io.out, ji)
		return nil
	}
	if len(pos) == 0 {
		return usagef("join: want at least one HOST[:PORT] (or --list)")
	}
	for _, p := range pos {
		if _, err := join.ParseAddr(p); err != nil {
			return usagef("join: %v", err)
		}
	}
	if len(keys) > 0 && len(keys) != len(pos) {
		return usagef("join: %d peers and %d --key: give each peer's public key, in the same order", len(pos), len(keys))
	}
	bodies := make([]map[string]string, len(pos))
	for i, p := range pos {
		bodies[i] = map[string]string{"peer": p}
		if len(keys) > 0 {
			k, err := secure.ReadPublicKey(keys[i])
			if err != nil {
				return usagef("join: --key %q: %v", keys[i], err)
			}
			bodies[i]["key"] = k.String()
		}
	}
	for i, p := range pos {
		b, err := request(ctx, c, f.timeout, registry.VerbJoin, bodies[i])
		if err != nil {
			return fmt.Errorf("join %s: %w", p, err)
		}
		var rep struct {
			Peer string `json:"peer"`
			New  bool   `json:"new"`
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("join %s: JOIN reply: %w", p, err)
		}
		if noWait {
			if rep.New {
				fmt.Fprintf(io.out, "joining %s\n", rep.Peer)
			} else {
				fmt.Fprintf(io.out, "already joining %s\n", rep.Peer)
			}
			continue
		}
		if err := waitJoined(ctx, io, c, f.timeout, rep.Peer, rep.New); err != nil {
			return err
		}
	}
	return nil
}

// joinInfo is INFO's join object (nil when the server has no links).
func joinInfo(ctx context.Context, c *registry.Client, timeout time.Duration) (*join.Info, error) {
	b, err := request(ctx, c, timeout, registry.VerbInfo, nil)
	if err != nil {
		return nil, err
	}
	r, err := parseInfoReply(b)
	if err != nil {
		return nil, err
	}
	return r.JoinObj, nil
}

// waitJoined waits up to timeout for the server's link to addr to come up,
// watching INFO. A link that fails (its dial's error), a peer that refused
// it (the server itself, among others) or no link by the timeout is an
// error; a new peer that failed is left (LEAVE), so that the server
// does not dial it for ever.
func waitJoined(ctx context.Context, io stdio, c *registry.Client, timeout time.Duration, addr string, isNew bool) error {
	deadline := time.Now().Add(timeout)
	fail := func(why string) error {
		if isNew {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
			_, _ = c.Leave(lctx, addr) // already gone when it refused
			cancel()
			why += "; the server no longer dials it (to keep dialling a server not up yet: join --no-wait)"
		}
		return fmt.Errorf("join %s: %s", addr, why)
	}
	for {
		ji, err := joinInfo(ctx, c, time.Until(deadline))
		if err != nil {
			return fmt.Errorf("join %s: %w", addr, err)
		}
		if ji != nil {
			if why, ok := ji.Refused[addr]; ok {
				return fmt.Errorf("join %s: %s: not joined", addr, why)
			}
			for _, l := range ji.Links {
				if l.Addr != addr {
					continue
				}
				if l.Up {
					fmt.Fprintf(io.out, "joined %s (server %s)\n", addr, l.Peer)
					return nil
				}
				if l.Error != "" {
					return fail(l.Error)
				}
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Sprintf("no link within --timeout %v", timeout))
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

const leaveHelp = `
Asks the running server (--host, --port) to stop dialling servers it
joined (with --join or hydra-server join) and drop their links. Services
learned through a link stay until their server is heard by no other link
for --join-grace. Leaving a server that is not joined exits with status 1.
A server given in --join is joined again at the next restart.

Example: hydra-server leave 10.0.0.7`

func leaveCmd(ctx context.Context, io stdio, args []string) (err error) {
	c, f, pos, err := clientCommand(io, "leave", "[flags] HOST[:PORT]...", leaveHelp, args, false, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	defer func() { err = f.explain(err) }()
	if len(pos) == 0 {
		return usagef("leave: want at least one HOST[:PORT]")
	}
	for _, p := range pos {
		if _, err := join.ParseAddr(p); err != nil {
			return usagef("leave: %v", err)
		}
	}
	for _, p := range pos {
		b, err := request(ctx, c, f.timeout, registry.VerbLeave, map[string]string{"peer": p})
		if err != nil {
			var re *registry.Error
			if errors.As(err, &re) && re.Code == registry.CodeNotFound {
				return notFoundError{fmt.Sprintf("leave %s: %s", p, re.Message)}
			}
			return fmt.Errorf("leave %s: %w", p, err)
		}
		var rep struct {
			Peer string `json:"peer"`
		}
		_ = json.Unmarshal(b, &rep)
		fmt.Fprintf(io.out, "left %s\n", rep.Peer)
	}
	return nil
}

// pinnedKeys pairs each --join with its --join-key (in order), for CURVE
// join links (--curve).
func (f *joinFlags) pinnedKeys(curve bool) (map[string]secure.PublicKey, error) {
	if !curve {
		if len(f.keys) > 0 {
			return nil, usagef("--join-key needs CURVE on the port: --curve, or --key-file with a --host beyond loopback (not --plaintext)")
		}
		return nil, nil
	}
	if len(f.keys) != len(f.peers.addrs) {
		return nil, usagef("%d --join and %d --join-key: with CURVE on the port (--curve, or --key-file with a --host beyond loopback), give each joined server's public key, in the same order (or --plaintext, on a trusted network)", len(f.peers.addrs), len(f.keys))
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
