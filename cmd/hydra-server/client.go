package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hydra-net/hydra/internal/backoff"
	"github.com/hydra-net/hydra/internal/netaddr"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// clientFlags are the flags of the commands that talk to a server.
type clientFlags struct {
	common
	server  string
	timeout time.Duration
	json    bool
	keys    clientKeyFlags // curve.go
	ep      string         // the endpoint the client talks to
}

func (f *clientFlags) define(fs *flag.FlagSet, jsonFlag bool) {
	f.common.define(fs)
	f.keys.define(fs)
	fs.StringVar(&f.server, "server", "", "the server to talk to: `tcp://HOST:PORT`, HOST[:PORT] (port 8420 if omitted) or ipc://PATH; instead of --host/--port/--proto (on the command line these win over $HYDRA_SERVER)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for the server's reply")
	if jsonFlag {
		fs.BoolVar(&f.json, "json", false, "print JSON instead of a table")
	}
}

// serverEndpoint is the endpoint a client command talks to. Precedence:
// --server on the command line; else --host/--port/--proto on the
// command line; else --server from $HYDRA_SERVER or the config file; else
// --host/--port/--proto from the environment, the file or their defaults.
func (f *clientFlags) serverEndpoint(args []string) (string, error) {
	cli := cmdLineFlags(args)
	hostPort := cli["host"] || cli["port"] || cli["proto"]
	if cli["server"] && hostPort {
		return "", usagef("--server and --host/--port/--proto both name the server: give one")
	}
	if f.server != "" && (cli["server"] || !hostPort) {
		return parseServer(f.server)
	}
	return f.endpoint()
}

// parseServer parses --server: tcp://HOST[:PORT], HOST[:PORT] or
// ipc://PATH.
func parseServer(s string) (string, error) {
	if path, ok := strings.CutPrefix(s, "ipc://"); ok {
		if path == "" {
			return "", usagef("--server %q: want ipc://PATH", s)
		}
		return s, nil
	}
	hp, err := netaddr.ParseHostPort(s)
	if err != nil {
		return "", usagef("--server %v: want tcp://HOST:PORT, HOST[:PORT] or ipc://PATH", err)
	}
	return "tcp://" + hp, nil
}

// cmdLineFlags returns the names of the flags given in args (before "--").
func cmdLineFlags(args []string) map[string]bool {
	m := map[string]bool{}
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		m[name] = true
	}
	return m
}

// saidOnce demotes the socket's "handshake failed" warning to Debug: a
// one-shot command ends with an error that says the same, in one line.
type saidOnce struct{ h slog.Handler }

func (q saidOnce) Enabled(ctx context.Context, l slog.Level) bool {
	return q.h.Enabled(ctx, l) || l >= slog.LevelWarn
}

func (q saidOnce) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "zmtp: handshake failed" && r.Level >= slog.LevelWarn {
		r.Level = slog.LevelDebug
		if !q.h.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return q.h.Handle(ctx, r)
}

func (q saidOnce) WithAttrs(as []slog.Attr) slog.Handler { return saidOnce{q.h.WithAttrs(as)} }
func (q saidOnce) WithGroup(name string) slog.Handler    { return saidOnce{q.h.WithGroup(name)} }

// notFoundError is a lookup that found nothing: exit status 1, as grep's.
type notFoundError struct{ msg string }

func (e notFoundError) Error() string { return e.msg }

// explain turns a client error into one line that says what to fix.
func (f *clientFlags) explain(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, curve.ErrRefused):
		pub, how := f.keys.publicKey()
		return fmt.Errorf("the server at %s refused this client's key: add its public key (%s) to the server's --allow-clients file and send the server SIGHUP%s", f.ep, pub, how)
	case errors.Is(err, zmtp.ErrMechanism) && f.keys.serverKey == "":
		return fmt.Errorf("the server at %s runs CURVE: pass --server-key with its public key (its KEY.pub file, or the Z85 text in single quotes) and --client-key with a key on its --allow-clients file", f.ep)
	case errors.Is(err, zmtp.ErrMechanism):
		return fmt.Errorf("the server at %s does not run CURVE: drop --server-key (or start it with --curve)", f.ep)
	case errors.Is(err, curve.ErrNoWelcome):
		return fmt.Errorf("no CURVE answer from %s: is --server-key the server's public key? (the one its keygen printed, in its KEY.pub)", f.ep)
	case errors.Is(err, registry.ErrUnreachable):
		return fmt.Errorf("no hydra-server at %s (%s): is it running? start it with `hydra-server`, or point --server at it", f.ep, unreachableCause(err))
	}
	return err
}

// unreachableCause says in a few words why a connection failed.
func unreachableCause(err error) string {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dns):
		return "no such host " + dns.Name
	case errors.Is(err, fs.ErrNotExist):
		return "no such socket"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.As(err, &op):
		return op.Err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within --timeout"
	}
	return err.Error()
}

// clientCommand parses a client command's flags and connects. Its
// requests fail at once when the server is not there.
func clientCommand(io stdio, name, synopsis, help string, args []string, jsonFlag bool, extra func(fs *flag.FlagSet)) (*registry.Client, *clientFlags, []string, error) {
	return clientCommandWait(io, name, synopsis, help, args, jsonFlag, extra, nil)
}

// clientCommandWait is clientCommand whose requests wait for a server
// that is not up yet when *wait (a flag extra defines) is above zero.
func clientCommandWait(io stdio, name, synopsis, help string, args []string, jsonFlag bool, extra func(fs *flag.FlagSet), wait *time.Duration) (*registry.Client, *clientFlags, []string, error) {
	var f clientFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f.define(fs, jsonFlag)
	if extra != nil {
		extra(fs)
	}
	pos, err := parse(fs, &f.common, args, false)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(io.out, "hydra-server "+name+" "+synopsis, help, fs)
		return nil, nil, nil, err
	}
	if err != nil {
		return nil, nil, nil, err
	}
	log, err := newLogger(io.err, f.logLevel, f.logFormat)
	if err != nil {
		return nil, nil, nil, err
	}
	if f.ep, err = f.serverEndpoint(args); err != nil {
		return nil, nil, nil, err
	}
	sec, err := f.keys.security()
	if err != nil {
		return nil, nil, nil, err
	}
	failFast := wait == nil || *wait <= 0
	if failFast {
		// The command's error says why the connection failed, in one line.
		log = slog.New(saidOnce{log.Handler()})
	}
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: f.ep, Logger: log, Timeout: f.timeout, Security: sec,
		FailFast: failFast})
	if err != nil {
		return nil, nil, nil, err
	}
	return c, &f, pos, nil
}

func init() {
	addCommand(&command{name: "register", args: "[flags] NAME [PROTO://]HOST:PORT", short: "register a service and keep it alive until interrupted", run: registerCmd})
	addCommand(&command{name: "lookup", args: "[flags] NAME", short: "print the live instances of a name", run: lookupCmd})
	addCommand(&command{name: "list", args: "[flags]", short: "print every name and its number of instances (or every entry)", run: listCmd})
	addCommand(&command{name: "watch", args: "[flags] [NAME]", short: "print register/update/deregister/expire events as they happen", run: watchCmd})
}

const registerHelp = `
Registers a service with the registry and keeps it alive with heartbeats
until SIGINT or SIGTERM, then deregisters it. If the server restarts, the
service is registered again; if it is not up yet at start, register waits
for it up to --wait. Prints "registered NAME ADDRESS as instance ID (ttl
TTL); interrupt to deregister" once registered.
With --once it registers, prints one line of JSON and exits:
{"instance":"ID","token":"TOKEN","ttl":SECONDS,"version":N,"origin":"SERVER-ID","created":BOOL}
(created is false when an entry of this token and address was renewed);
the entry then lives for its TTL unless heartbeated with that token.

Example: hydra-server register web http://10.0.0.5:8080 --meta version=2`

func registerCmd(ctx context.Context, io stdio, args []string) (err error) {
	meta := metaList{}
	var ttl, wait time.Duration
	var once bool
	c, f, pos, err := clientCommandWait(io, "register", "[flags] NAME [PROTO://]HOST:PORT[?key=value&...]", registerHelp, args, false, func(fs *flag.FlagSet) {
		fs.Var(meta, "meta", "metadata `key=value` (repeatable)")
		fs.DurationVar(&ttl, "ttl", 0, "the entry's TTL (default: the server's, 30s)")
		fs.BoolVar(&once, "once", false, "register, print {\"instance\",\"token\",\"ttl\",\"version\",\"origin\",\"created\"} as one line of JSON, and exit without heartbeats")
		fs.DurationVar(&wait, "wait", 30*time.Second, "at start, how long to wait for a server that is not up yet (0: fail at once)")
	}, &wait)
	if err != nil {
		return err
	}
	defer c.Close()
	defer func() { err = f.explain(err) }()
	if len(pos) != 2 {
		return usagef("register: want NAME and [PROTO://]HOST:PORT, got %d arguments", len(pos))
	}
	svc, err := parseAddr(pos[1])
	if err != nil {
		return usagef("register: %v", err)
	}
	svc.Name, svc.TTL = pos[0], ttl
	for k, v := range meta {
		if svc.Meta == nil {
			svc.Meta = map[string]string{}
		}
		svc.Meta[k] = v
	}
	rctx, cancel := context.WithTimeout(ctx, max(f.timeout, wait))
	defer cancel()
	stopNotice := func() {}
	if wait > 0 {
		// Say what it waits for, if the server is slow to appear; stopped
		// (and waited for) as soon as the server answered, so the line
		// never comes after, nor races, what is written then.
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			select {
			case <-time.After(time.Second):
				fmt.Fprintf(io.err, "hydra-server: waiting up to %v (--wait) for the server at %s\n", wait, f.ep)
			case <-stop:
			}
		}()
		var once sync.Once
		stopNotice = func() { once.Do(func() { close(stop); <-done }) }
		defer stopNotice()
	}
	if once {
		body := map[string]any{"token": c.Token(), "name": svc.Name, "host": svc.Host, "port": svc.Port, "proto": svc.Proto}
		if svc.Meta != nil {
			body["meta"] = svc.Meta
		}
		if ttl > 0 {
			body["ttl"] = ttl.Seconds()
		}
		b, err := c.Request(rctx, registry.VerbRegister, body)
		stopNotice()
		if err != nil {
			return err
		}
		var rep onceReply
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("register: the server's reply: %w", err)
		}
		rep.Token = c.Token()
		out, _ := json.Marshal(rep)
		fmt.Fprintln(io.out, string(out))
		return nil
	}
	reg, err := c.Register(rctx, svc)
	stopNotice()
	if err != nil {
		return err
	}
	e := reg.Entry()
	fmt.Fprintf(io.out, "registered %s %s as instance %s (ttl %v); interrupt to deregister\n", e.Name, e.String(), e.Instance, e.TTL)
	<-ctx.Done()
	dctx, cancel2 := context.WithTimeout(context.Background(), f.timeout)
	defer cancel2()
	if err := reg.Deregister(dctx); err != nil {
		return fmt.Errorf("deregister: %w", err)
	}
	fmt.Fprintf(io.out, "deregistered %s\n", e.Instance)
	return nil
}

// onceReply is what register --once prints.
type onceReply struct {
	Instance string  `json:"instance"`
	Token    string  `json:"token"`
	TTL      float64 `json:"ttl"`
	Version  uint64  `json:"version"`
	Origin   string  `json:"origin"`
	Created  bool    `json:"created"`
}

const lookupHelp = `
Prints every live instance of NAME, one per line (or a JSON array with
--json). Exit status, as grep's: 0 when there is one, 1 when there is none
(with --json, after printing []), 2 on an error (no server, bad usage).`

func lookupCmd(ctx context.Context, io stdio, args []string) (err error) {
	c, f, pos, err := clientCommand(io, "lookup", "[flags] NAME", lookupHelp, args, true, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	defer func() { err = f.explain(err) }()
	if len(pos) != 1 {
		return usagef("lookup: want one NAME, got %d arguments", len(pos))
	}
	rctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	es, err := c.Lookup(rctx, pos[0])
	if err != nil {
		return err
	}
	if f.json {
		if err := writeJSON(io.out, jsonList(es)); err != nil {
			return err
		}
	} else if len(es) > 0 {
		writeEntries(io.out, es, false)
	}
	if len(es) == 0 {
		return notFoundError{fmt.Sprintf("no live instance of %q", pos[0])}
	}
	return nil
}

const listHelp = `
Prints every registered name with its number of live instances, sorted by
name; with --entries, every entry. --json prints JSON instead.`

func listCmd(ctx context.Context, io stdio, args []string) (err error) {
	var entries bool
	c, f, pos, err := clientCommand(io, "list", "[flags]", listHelp, args, true, func(fs *flag.FlagSet) {
		fs.BoolVar(&entries, "entries", false, "list every entry, not just names")
	})
	if err != nil {
		return err
	}
	defer c.Close()
	defer func() { err = f.explain(err) }()
	if len(pos) != 0 {
		return usagef("list: unexpected argument %q", pos[0])
	}
	rctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if entries {
		es, err := c.ListEntries(rctx)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(io.out, jsonList(es))
		}
		writeEntries(io.out, es, true)
		return nil
	}
	names, err := c.List(rctx)
	if err != nil {
		return err
	}
	if f.json {
		return writeJSON(io.out, jsonList(names))
	}
	tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tINSTANCES")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\n", n.Name, n.Count)
	}
	return tw.Flush()
}

const watchHelp = `
Prints the current entries of NAME (every name if none is given), then one
line per event as it happens: register, update, deregister, expire. With
--json, one JSON object per line: {"type":...,"entry":{...}}, the first
{"type":"sync","entries":[...]}. When the server goes away it says
"server lost: retrying" on stderr, and when it is back "server back" and
a fresh sync of the current entries. Runs until interrupted.`

// watchProbe is how often watch checks that its server is still there.
const watchProbe = time.Second

func watchCmd(ctx context.Context, io stdio, args []string) (err error) {
	c, f, pos, err := clientCommand(io, "watch", "[flags] [NAME]", watchHelp, args, true, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	defer func() { err = f.explain(err) }()
	if len(pos) > 1 {
		return usagef("watch: want at most one NAME")
	}
	name := ""
	if len(pos) == 1 {
		name = pos[0]
	}
	lost := false
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for {
		wctx, cancel := context.WithCancel(ctx)
		events, err := c.Watch(wctx, name)
		if err != nil {
			cancel()
			if !lost || ctx.Err() != nil {
				return err
			}
			if !backoff.Sleep(ctx, bo.Next()) {
				return nil
			}
			continue
		}
		if lost {
			fmt.Fprintf(io.err, "hydra-server: server back at %s: a fresh sync follows\n", f.ep)
			lost = false
			bo.Reset()
		}
		gone := make(chan error, 1)
		go func() {
			for t := time.NewTicker(watchProbe); ; {
				select {
				case <-wctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				pctx, pcancel := context.WithTimeout(wctx, f.timeout)
				_, _, err := c.Ping(pctx)
				pcancel()
				if err != nil && wctx.Err() == nil {
					t.Stop()
					gone <- err
					return
				}
			}
		}()
	loop:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					break loop
				}
				if ev.Type == registry.EventClosing {
					// News about the server, not an entry: stderr, as "lost".
					fmt.Fprintf(io.err, "hydra-server: server at %s is shutting down\n", f.ep)
					continue
				}
				if err := printEvent(io.out, ev, f.json); err != nil {
					cancel()
					return err
				}
			case err := <-gone:
				fmt.Fprintf(io.err, "hydra-server: server lost: retrying %s (%s)\n", f.ep, unreachableCause(err))
				lost = true
				break loop
			}
		}
		cancel()
		for range events { // the watch ends with its context
		}
		if !lost || ctx.Err() != nil {
			return nil
		}
	}
}

func printEvent(w io.Writer, ev registry.Event, asJSON bool) error {
	if asJSON {
		v := map[string]any{"type": ev.Type}
		if ev.Type == registry.EventSync {
			v["entries"] = jsonList(ev.Entries)
		} else {
			v["entry"] = ev.Entry
		}
		return writeJSONLine(w, v)
	}
	now := time.Now().Format("15:04:05.000")
	if ev.Type == registry.EventSync {
		fmt.Fprintf(w, "%s sync %d entries\n", now, len(ev.Entries))
		for _, e := range ev.Entries {
			fmt.Fprintf(w, "%s   %s %s instance=%s%s\n", now, e.Name, e.String(), e.Instance, metaString(e.Meta, " meta="))
		}
		return nil
	}
	e := ev.Entry
	_, err := fmt.Fprintf(w, "%s %s %s %s instance=%s version=%d%s\n", now, ev.Type, e.Name, e.String(), e.Instance, e.Version, metaString(e.Meta, " meta="))
	return err
}

func writeEntries(w io.Writer, es []registry.Entry, withName bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if withName {
		fmt.Fprint(tw, "NAME\t")
	}
	fmt.Fprintln(tw, "INSTANCE\tADDRESS\tPROTO\tTTL\tORIGIN\tVERSION\tMETA")
	for _, e := range es {
		if withName {
			fmt.Fprintf(tw, "%s\t", e.Name)
		}
		ttl := e.TTL.String()
		if e.Static {
			ttl = "static"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Instance, e.Addr(), e.Proto, ttl, e.Origin, e.Version, strings.TrimSpace(metaString(e.Meta, "")))
	}
	tw.Flush()
}

func metaString(m map[string]string, lead string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s%s=%s", lead, k, m[k])
		lead = ","
	}
	return b.String()
}

// jsonList is s, or an empty slice when s is nil: JSON shows none as [],
// not null.
func jsonList[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
