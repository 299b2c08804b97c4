package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/tunnel"
)

const infoHelp = `
Prints what the running server (--host, --port) holds: its identity
(id, boot, version, protocol, uptime, security), its entries by kind
(clients', static, tunnelled, joined), its counters, its join links (state,
last heard, lag, why a dial fails) and its tunnels (peer key, state,
streams, bytes). With --json, the server's INFO reply as it is
(PROTOCOL.md, "INFO").

Exits with status 2, at once, when no server answers.`

func init() {
	addCommand(&command{name: "info", args: "[flags]", short: "print a running server's identity, entries, counters, join links and tunnels", run: infoCmd})
}

// infoReply is INFO as info reads it: the registry's part, node's
// additions, and join's object.
type infoReply struct {
	registry.Info
	Version string
	Tunnels []tunnel.LinkInfo
	JoinObj *join.Info
}

func parseInfoReply(b []byte) (*infoReply, error) {
	r := &infoReply{}
	if err := json.Unmarshal(b, &r.Info); err != nil {
		return nil, fmt.Errorf("INFO reply: %w", err)
	}
	var extra struct {
		Version string            `json:"version"`
		Tunnels []tunnel.LinkInfo `json:"tunnels"`
	}
	if err := json.Unmarshal(b, &extra); err != nil {
		return nil, fmt.Errorf("INFO reply: %w", err)
	}
	r.Version, r.Tunnels = extra.Version, extra.Tunnels
	ji, err := join.ParseInfo(r.Join)
	if err != nil {
		return nil, err
	}
	r.JoinObj = ji
	return r, nil
}

func infoCmd(ctx context.Context, io stdio, args []string) (err error) {
	c, f, pos, err := clientCommand(io, "info", "[flags]", infoHelp, args, true, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	defer func() { err = f.explain(err) }()
	if len(pos) != 0 {
		return usagef("info: unexpected argument %q", pos[0])
	}
	b, err := request(ctx, c, f.timeout, registry.VerbInfo, nil)
	if err != nil {
		return err
	}
	if f.json {
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return fmt.Errorf("INFO reply: %w", err)
		}
		fmt.Fprintln(io.out, out.String())
		return nil
	}
	r, err := parseInfoReply(b)
	if err != nil {
		return err
	}
	writeInfo(io.out, r, c.Endpoint())
	return nil
}

func seconds(s float64) string {
	if s <= 0 {
		return "-"
	}
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeInfo(w io.Writer, r *infoReply, ep string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	k := r.Kinds
	fmt.Fprintf(tw, "server\t%s at %s\n", r.Server, ep)
	fmt.Fprintf(tw, "boot\t%s\n", r.Boot)
	fmt.Fprintf(tw, "version\t%s (protocol %d)\n", orDash(r.Version), r.Protocol)
	fmt.Fprintf(tw, "uptime\t%s\n", seconds(r.Uptime))
	fmt.Fprintf(tw, "security\t%s\n", orDash(r.Security))
	fmt.Fprintf(tw, "entries\t%d: %d clients', %d static, %d tunnelled, %d joined (%d more copies hidden)\n",
		r.Entries, k.Clients, k.Static, k.InProcess, k.Joined, k.Hidden)
	fmt.Fprintf(tw, "names\t%d\n", r.Names)
	fmt.Fprintf(tw, "clients\t%d (watches %d)\n", r.Clients, r.Watches)
	fmt.Fprintf(tw, "requests\t%d (%d errors)\n", r.Requests, r.Errors)
	fmt.Fprintf(tw, "registered\t%d (deregistered %d, expired %d)\n", r.Registered, r.Deregistered, r.Expired)
	fmt.Fprintf(tw, "events\t%d (%d dropped; replies dropped %d; slow consumers cut off %d)\n", r.Events, r.EventsDropped, r.RepliesDropped, r.SlowConsumers)
	tw.Flush()

	fmt.Fprintln(w)
	if r.JoinObj == nil || (len(r.JoinObj.Links) == 0 && len(r.JoinObj.Refused) == 0) {
		fmt.Fprintln(w, "join links: none")
	} else {
		writeJoinLinks(w, r.JoinObj)
	}

	fmt.Fprintln(w)
	if len(r.Tunnels) == 0 {
		fmt.Fprintln(w, "tunnels: none")
		return
	}
	fmt.Fprintln(w, "tunnels:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKEY\tSERVER\tSTATE\tSINCE\tSTREAMS\tPROXIES\tBYTES IN\tBYTES OUT\tERROR")
	for _, t := range r.Tunnels {
		since := "-"
		if !t.Since.IsZero() {
			since = seconds(time.Since(t.Since).Seconds())
		}
		errS := "-"
		if t.Error != "" {
			errS = fmt.Sprintf("%s (%d failures)", t.Error, t.Failures)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", t.Name, t.Key, orDash(t.Server), t.State,
			since, t.Streams, len(t.Proxies), t.BytesIn, t.BytesOut, errS)
	}
	tw.Flush()
}

// writeJoinLinks is the join links table (info, join --list).
func writeJoinLinks(w io.Writer, ji *join.Info) {
	fmt.Fprintln(w, "join links:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIR\tADDR\tSERVER\tSTATE\tUP FOR\tHEARD\tLAG\tERROR")
	for _, l := range ji.Links {
		errS := "-"
		if l.Error != "" {
			errS = fmt.Sprintf("%s (%d failures)", l.Error, l.Failures)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Dir, orDash(l.Addr), orDash(l.Peer), orDash(l.State),
			seconds(l.Since), seconds(l.Heard), seconds(l.Lag), errS)
	}
	for _, addr := range slices.Sorted(maps.Keys(ji.Refused)) {
		fmt.Fprintf(tw, "out\t%s\t-\trefused\t-\t-\t-\t%s (not dialled again)\n", addr, ji.Refused[addr])
	}
	tw.Flush()
	fmt.Fprintf(w, "entries from other servers: %d, from %d origins\n", ji.Remote, len(ji.Origins))
}

// request sends one request with --timeout; a client made by clientCommand
// fails at once when no server is there (ErrUnreachable, which explain
// turns into one line saying what to do).
func request(ctx context.Context, c *registry.Client, timeout time.Duration, verb string, body any) ([]byte, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.Request(rctx, verb, body)
}
