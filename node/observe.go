package node

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/metrics"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/statuspage"
	"github.com/hydra-net/hydra/tunnel"
	"github.com/hydra-net/hydra/zmtp"
)

// What the node serves about itself on its HTTP listener, next to the
// Consul API: metrics, the status page and a health check.
const (
	PathMetrics = "/metrics"
	PathHealth  = "/healthz"
	// HealthTimeout is how long GET /healthz waits for the registry's loop
	// before it answers 503: a loop that busy is not healthy.
	HealthTimeout = 2 * time.Second
	// infoTimeout bounds a scrape's or the status page's wait for INFO.
	infoTimeout = 2 * time.Second
)

// mountObserve mounts /metrics, /healthz and the status page.
func (n *Node) mountObserve() error {
	n.HandleHTTP("GET "+PathMetrics, metrics.Handler(func(r *http.Request, w *metrics.Writer) { n.writeMetrics(r.Context(), w) }))
	n.HandleHTTP("GET "+PathHealth, http.HandlerFunc(n.serveHealth))
	page, err := statuspage.New(statusSource{n}, statuspage.Config{})
	if err != nil {
		return err
	}
	page.Mount(n.HandleHTTP)
	return nil
}

// Health reports whether the registry's loop answers within ctx: nil, or
// why not (ctx's error, registry.ErrClosed).
func (n *Node) Health(ctx context.Context) error { return n.srv.Local().Ping(ctx) }

// serveHealth answers 200 when the loop answers within HealthTimeout, 503
// otherwise, with a JSON object saying which.
func (n *Node) serveHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), HealthTimeout)
	defer cancel()
	start := time.Now()
	err := n.Health(ctx)
	body := struct {
		Status string  `json:"status"`
		Server string  `json:"server"`
		Took   float64 `json:"took_seconds"`
		Error  string  `json:"error,omitempty"`
	}{"ok", n.srv.ID(), time.Since(start).Seconds(), ""}
	code := http.StatusOK
	if err != nil {
		code, body.Status = http.StatusServiceUnavailable, "unavailable"
		body.Error = "the registry did not answer: " + err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			body.Error = "the registry did not answer within " + HealthTimeout.String()
		}
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// snapshot is what a scrape and the status page read, each part where it
// lives: INFO from the loop (join's state lives there), tunnels from their
// own locks.
type snapshot struct {
	info    registry.Info
	infoErr error
	join    join.Info
	tunnels []tunnel.LinkInfo
}

func (n *Node) snapshot(ctx context.Context) snapshot {
	ctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	var s snapshot
	s.info, s.infoErr = n.srv.Local().Info(ctx)
	if s.infoErr == nil && len(s.info.Join) > 0 {
		_ = json.Unmarshal(s.info.Join, &s.join) // our own marshalling of join.Info
	}
	if n.tun != nil {
		s.tunnels = n.tun.Links()
	}
	return s
}

// proxies counts the tunnel proxy entries of this server.
func proxies(links []tunnel.LinkInfo) int {
	k := 0
	for _, l := range links {
		k += len(l.Proxies)
	}
	return k
}

// kinds are the entries by kind: local (clients, static, in-process other
// than tunnel proxies), joined, tunnelled.
func (s snapshot) kinds() (local, joined, tunnelled int) {
	k := s.info.Kinds
	tunnelled = min(proxies(s.tunnels), k.InProcess)
	return k.Clients + k.Static + k.InProcess - tunnelled, k.Joined, tunnelled
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writeMetrics writes every metric (PROTOCOL.md, "Metrics"). Counters
// that are atomic are always there; what comes from the loop is left out,
// with hydra_registry_responsive 0, when the loop does not answer in time.
func (n *Node) writeMetrics(ctx context.Context, w *metrics.Writer) {
	s := n.snapshot(ctx)
	w.One("hydra_registry_responsive", metrics.Gauge, "1 when the registry's loop answered this scrape in time, 0 when not (the loop-derived metrics are then missing).", b2f(s.infoErr == nil))

	w.Family("hydra_requests_total", metrics.Counter, "ZMTP requests answered, by verb and result (ok or error); unknown verbs count as other.")
	for _, v := range n.srv.Requests() {
		w.Sample(float64(v.OK), "verb", v.Verb, "result", "ok")
		w.Sample(float64(v.Errors), "verb", v.Verb, "result", "error")
	}
	w.Family("hydra_handshake_failures_total", metrics.Counter, "Failed handshakes on the server's port, by protocol (zmtp, noise) and reason; port: connections refused or evicted while the shared port awaited their first byte; http: connections refused past the per-client cap.")
	hf := n.srv.HandshakeFailures()
	for r := range hf {
		w.Sample(float64(hf[r]), "proto", "zmtp", "reason", zmtp.HandshakeFailure(r).String())
	}
	if n.tun != nil {
		for _, f := range n.tun.HandshakeFailures() {
			w.Sample(float64(f.Count), "proto", "noise", "reason", f.Reason)
		}
	}
	if l := n.http.limit; l != nil {
		w.Sample(float64(l.Refused()), "proto", "http", "reason", "conns_per_client")
	}
	if n.share != nil { // the shared port's wait for a connection's first byte
		ps := n.share.Stats()
		w.Sample(float64(ps.SourceFull), "proto", "port", "reason", "source_busy")
		w.Sample(float64(ps.Full), "proto", "port", "reason", "busy")
		w.Sample(float64(ps.Evicted), "proto", "port", "reason", "evicted")
	}
	st := n.srv.Stats()
	w.One("hydra_registered_total", metrics.Counter, "Entries created.", float64(st.Registered))
	w.One("hydra_expired_total", metrics.Counter, "Entries removed because their TTL ran out.", float64(st.Expired))
	w.One("hydra_deregistered_total", metrics.Counter, "Entries removed by their owner.", float64(st.Deregistered))
	w.One("hydra_watch_events_total", metrics.Counter, "Events sent to watchers.", float64(st.Events))
	w.One("hydra_watch_events_dropped_total", metrics.Counter, "Events a watcher's full queue refused.", float64(st.EventsDropped))
	w.One("hydra_replies_dropped_total", metrics.Counter, "Replies a full or gone client did not take.", float64(st.RepliesDropped))
	w.One("hydra_slow_consumers_total", metrics.Counter, "ZMTP peers cut off for not reading what they were sent (over their pending-bytes budget, the total one, or the write timeout).", float64(st.SlowConsumers))
	w.One("hydra_watchers", metrics.Gauge, "ZMTP watches open now.", float64(st.Watches))
	w.One("hydra_names", metrics.Gauge, "Service names with at least one entry now.", float64(st.Names))
	w.One("hydra_clients", metrics.Gauge, "Client tokens holding entries now.", float64(st.Clients))

	if s.infoErr == nil {
		local, joined, tunnelled := s.kinds()
		w.Family("hydra_entries", metrics.Gauge, "Entries visible now, by kind: local (clients, static, in-process), joined (other servers'), tunnelled (proxies of tunnel peers' services).")
		w.Sample(float64(local), "kind", "local")
		w.Sample(float64(joined), "kind", "joined")
		w.Sample(float64(tunnelled), "kind", "tunnelled")
		w.One("hydra_entries_hidden", metrics.Gauge, "Other servers' copies hidden by a better copy of the same instance.", float64(s.info.Kinds.Hidden))
		n.writeJoinMetrics(w, s.join)
		w.One("hydra_uptime_seconds", metrics.Gauge, "Seconds since the server started.", s.info.Uptime)
	}
	n.writeTunnelMetrics(w, s.tunnels)

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w.One("go_goroutines", metrics.Gauge, "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	w.One("go_memstats_heap_alloc_bytes", metrics.Gauge, "Number of heap bytes allocated and still in use.", float64(ms.HeapAlloc))
	w.One("go_memstats_heap_inuse_bytes", metrics.Gauge, "Number of heap bytes that are in use.", float64(ms.HeapInuse))
	w.One("go_memstats_sys_bytes", metrics.Gauge, "Number of bytes obtained from system.", float64(ms.Sys))
	w.One("go_gc_cycles_total", metrics.Counter, "Number of completed GC cycles.", float64(ms.NumGC))
	w.One("go_gc_pause_seconds_total", metrics.Counter, "Total GC stop-the-world pause time.", float64(ms.PauseTotalNs)/1e9)
	w.Family("hydra_build_info", metrics.Gauge, "Always 1, with the software's and Go's versions as labels.")
	w.Sample(1, "version", n.cfg.Version, "goversion", runtime.Version())
}

func linkName(peer, addr string) string {
	if addr != "" {
		return addr
	}
	return peer
}

func (n *Node) writeJoinMetrics(w *metrics.Writer, ji join.Info) {
	up := 0
	for _, l := range ji.Links {
		if l.Up {
			up++
		}
	}
	w.One("hydra_join_links", metrics.Gauge, "Join links (dialled and accepted), up or not.", float64(len(ji.Links)))
	w.One("hydra_join_links_up", metrics.Gauge, "Join links whose hellos were exchanged.", float64(up))
	w.Family("hydra_join_link_up", metrics.Gauge, "1 when the join link is up, by link (the dialled HOST:PORT, or the peer's id) and direction.")
	for _, l := range ji.Links {
		w.Sample(b2f(l.Up), "link", linkName(l.Peer, l.Addr), "dir", l.Dir)
	}
	w.Family("hydra_join_link_lag_seconds", metrics.Gauge, "Seconds since the peer's own beat was last heard (how stale its entries may be), by link.")
	for _, l := range ji.Links {
		if l.Up {
			w.Sample(l.Lag, "link", linkName(l.Peer, l.Addr), "dir", l.Dir)
		}
	}
	w.One("hydra_join_remote_entries", metrics.Gauge, "Entries learned from other servers (shown or hidden).", float64(ji.Remote))
	js := ji.Stats
	w.Family("hydra_join_messages_total", metrics.Counter, "SYNC messages on join links, by direction.")
	w.Sample(float64(js.MsgsIn), "direction", "in")
	w.Sample(float64(js.MsgsOut), "direction", "out")
	w.Family("hydra_join_bytes_total", metrics.Counter, "Bytes of SYNC messages on join links (ZMTP frames, before CURVE), by direction.")
	w.Sample(float64(js.BytesIn), "direction", "in")
	w.Sample(float64(js.BytesOut), "direction", "out")
	w.One("hydra_join_changes_applied_total", metrics.Counter, "Changes from other servers applied.", float64(js.ChangesIn))
	w.One("hydra_join_messages_dropped_total", metrics.Counter, "Join messages a full or gone peer did not take.", float64(js.Dropped))
}

func (n *Node) writeTunnelMetrics(w *metrics.Writer, links []tunnel.LinkInfo) {
	w.Family("hydra_tunnel_links", metrics.Gauge, "Tunnel peers, by state.")
	byState := map[string]int{}
	for _, l := range links {
		byState[l.State.String()]++
	}
	for _, st := range []tunnel.State{tunnel.StateConnecting, tunnel.StateUp, tunnel.StateGrace, tunnel.StateGone} {
		w.Sample(float64(byState[st.String()]), "state", st.String())
	}
	w.Family("hydra_tunnel_streams", metrics.Gauge, "Streams open on each tunnel link now.")
	for _, l := range links {
		w.Sample(float64(l.Streams), "link", l.Name)
	}
	w.Family("hydra_tunnel_bytes_total", metrics.Counter, "Bytes carried by each tunnel link (mux frames, before Noise), by direction.")
	for _, l := range links {
		w.Sample(float64(l.BytesIn), "link", l.Name, "direction", "in")
		w.Sample(float64(l.BytesOut), "link", l.Name, "direction", "out")
	}
	w.One("hydra_tunnel_proxies", metrics.Gauge, "Proxy listeners for tunnel peers' services now.", float64(proxies(links)))
}

// statusSource is the status page's Source.
type statusSource struct{ n *Node }

func (s statusSource) Changed(after uint64) <-chan struct{} { return s.n.cat.Changed(after) }

func (s statusSource) Status(ctx context.Context) statuspage.Status {
	n := s.n
	snap := n.cat.Snapshot()
	sn := n.snapshot(ctx)
	st := statuspage.Status{Server: n.srv.ID(), Version: n.cfg.Version, Endpoint: n.Endpoint(), Index: snap.Index(),
		Services: []statuspage.Service{}, Joined: []statuspage.JoinLink{}, Tunnels: []statuspage.TunnelLink{}}
	for _, name := range snap.Names() {
		svc := statuspage.Service{Name: name}
		for _, e := range snap.Instances(name) {
			kind := "local"
			switch {
			case e.Origin != n.srv.ID():
				kind = "joined"
			case e.Meta[tunnel.MetaPeer] != "":
				kind = "tunnelled"
			}
			svc.Instances = append(svc.Instances, statuspage.Instance{Instance: e.Instance, Address: e.String(),
				Origin: e.Origin, Kind: kind, Meta: e.Meta})
		}
		st.Services = append(st.Services, svc)
	}
	for _, l := range sn.tunnels {
		st.Tunnels = append(st.Tunnels, statuspage.TunnelLink{Name: l.Name, Server: l.Server, State: l.State.String(),
			Proxies: len(l.Proxies), Streams: l.Streams, BytesIn: l.BytesIn, BytesOut: l.BytesOut, Error: l.Error})
	}
	if sn.infoErr != nil {
		st.Error = "the registry did not answer in time: joined servers and counters are missing (" + sn.infoErr.Error() + ")"
		return st
	}
	in := sn.info
	st.Security, st.Uptime = in.Security, in.Uptime
	for _, l := range sn.join.Links {
		st.Joined = append(st.Joined, statuspage.JoinLink{Peer: l.Peer, Addr: l.Addr, Dir: l.Dir, State: l.State, Up: l.Up, Lag: l.Lag, Error: l.Error})
	}
	slices.SortFunc(st.Joined, func(a, b statuspage.JoinLink) int {
		return strings.Compare(linkName(a.Peer, a.Addr), linkName(b.Peer, b.Addr))
	})
	local, joined, tunnelled := sn.kinds()
	st.Counters = []statuspage.Counter{
		{Name: "requests", Value: float64(in.Requests)}, {Name: "errors", Value: float64(in.Errors)},
		{Name: "local entries", Value: float64(local)}, {Name: "joined entries", Value: float64(joined)},
		{Name: "tunnelled entries", Value: float64(tunnelled)}, {Name: "names", Value: float64(in.Names)},
		{Name: "watchers", Value: float64(in.Watches)}, {Name: "registered", Value: float64(in.Registered)},
		{Name: "expired", Value: float64(in.Expired)}, {Name: "goroutines", Value: float64(in.Memory.Goroutines)},
		{Name: "heap MiB", Value: math.Round(float64(in.Memory.HeapInuse)/(1<<20)*10) / 10},
	}
	return st
}
