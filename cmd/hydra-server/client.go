package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hydra-net/hydra/registry"
)

// clientFlags are the flags of the commands that talk to a server.
type clientFlags struct {
	common
	timeout time.Duration
	json    bool
	keys    clientKeyFlags // curve.go
}

func (f *clientFlags) define(fs *flag.FlagSet, jsonFlag bool) {
	f.common.define(fs)
	f.keys.define(fs)
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for the server's reply")
	if jsonFlag {
		fs.BoolVar(&f.json, "json", false, "print JSON instead of a table")
	}
}

// clientCommand parses a client command's flags and connects.
func clientCommand(io stdio, name, synopsis, help string, args []string, jsonFlag bool, extra func(fs *flag.FlagSet)) (*registry.Client, *clientFlags, []string, error) {
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
	ep, err := f.endpoint()
	if err != nil {
		return nil, nil, nil, err
	}
	sec, err := f.keys.security()
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: ep, Logger: log, Timeout: f.timeout, Security: sec})
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
service is registered again. Prints the instance id once registered.
With --once it registers, prints {"instance","token","ttl"} as JSON and exits:
the entry then lives for its TTL unless heartbeated with that token.

Example: hydra-server register web http://10.0.0.5:8080 --meta version=2`

func registerCmd(ctx context.Context, io stdio, args []string) error {
	meta := metaList{}
	var ttl time.Duration
	var once bool
	c, f, pos, err := clientCommand(io, "register", "[flags] NAME [PROTO://]HOST:PORT[?key=value&...]", registerHelp, args, false, func(fs *flag.FlagSet) {
		fs.Var(meta, "meta", "metadata `key=value` (repeatable)")
		fs.DurationVar(&ttl, "ttl", 0, "the entry's TTL (default: the server's, 30s)")
		fs.BoolVar(&once, "once", false, "register, print the instance and token as JSON, and exit without heartbeats")
	})
	if err != nil {
		return err
	}
	defer c.Close()
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
	rctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if once {
		body := map[string]any{"token": c.Token(), "name": svc.Name, "host": svc.Host, "port": svc.Port, "proto": svc.Proto}
		if svc.Meta != nil {
			body["meta"] = svc.Meta
		}
		if ttl > 0 {
			body["ttl"] = ttl.Seconds()
		}
		b, err := c.Request(rctx, registry.VerbRegister, body)
		if err != nil {
			return err
		}
		var rep map[string]any
		if err := json.Unmarshal(b, &rep); err != nil {
			return err
		}
		delete(rep, "id")
		out, _ := json.Marshal(rep)
		fmt.Fprintln(io.out, string(out))
		return nil
	}
	reg, err := c.Register(rctx, svc)
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

const lookupHelp = `
Prints every live instance of NAME, one per line (or a JSON array with
--json). Exits with status 1 when there is none (with --json, after printing []).`

func lookupCmd(ctx context.Context, io stdio, args []string) error {
	c, f, pos, err := clientCommand(io, "lookup", "[flags] NAME", lookupHelp, args, true, nil)
	if err != nil {
		return err
	}
	defer c.Close()
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
		return fmt.Errorf("no live instance of %q", pos[0])
	}
	return nil
}

const listHelp = `
Prints every registered name with its number of live instances, sorted by
name; with --entries, every entry. --json prints JSON instead.`

func listCmd(ctx context.Context, io stdio, args []string) error {
	var entries bool
	c, f, pos, err := clientCommand(io, "list", "[flags]", listHelp, args, true, func(fs *flag.FlagSet) {
		fs.BoolVar(&entries, "entries", false, "list every entry, not just names")
	})
	if err != nil {
		return err
	}
	defer c.Close()
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
{"type":"sync","entries":[...]}. Runs until interrupted.`

func watchCmd(ctx context.Context, io stdio, args []string) error {
	c, f, pos, err := clientCommand(io, "watch", "[flags] [NAME]", watchHelp, args, true, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if len(pos) > 1 {
		return usagef("watch: want at most one NAME")
	}
	name := ""
	if len(pos) == 1 {
		name = pos[0]
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := c.Watch(wctx, name)
	if err != nil {
		return err
	}
	for ev := range events {
		if f.json {
			v := map[string]any{"type": ev.Type}
			if ev.Type == registry.EventSync {
				v["entries"] = ev.Entries
			} else {
				v["entry"] = ev.Entry
			}
			if err := writeJSONLine(io.out, v); err != nil {
				return err
			}
			continue
		}
		now := time.Now().Format("15:04:05.000")
		if ev.Type == registry.EventSync {
			fmt.Fprintf(io.out, "%s sync %d entries\n", now, len(ev.Entries))
			for _, e := range ev.Entries {
				fmt.Fprintf(io.out, "%s   %s %s instance=%s%s\n", now, e.Name, e.String(), e.Instance, metaString(e.Meta, " meta="))
			}
			continue
		}
		e := ev.Entry
		fmt.Fprintf(io.out, "%s %s %s %s instance=%s version=%d%s\n", now, ev.Type, e.Name, e.String(), e.Instance, e.Version, metaString(e.Meta, " meta="))
	}
	return nil
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
