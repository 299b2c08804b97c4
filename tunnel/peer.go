package tunnel

import (
	"context"
	"errors"
	"fmt"
	"github.com/hydra-net/hydra/secure/noise"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/mux"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
)

// State is where a peer's link stands.
type State uint8

// States of a peer. A peer starts Connecting, is Up while a session is,
// and in Grace after losing it: its proxies stay (their connections are
// closed at once) until a session returns or Config.Grace passes; then
// they are removed and the peer is Gone until a session returns.
const (
	StateConnecting State = iota // no session yet
	StateUp                      // a session is up
	StateGrace                   // the session was lost; proxies kept for Config.Grace
	StateGone                    // the grace ended; proxies removed
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateUp:
		return "up"
	case StateGrace:
		return "grace"
	case StateGone:
		return "gone"
	}
	return "state " + strconv.Itoa(int(s))
}

// MarshalText is the state's name, as INFO's "tunnels" show it.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for st := StateConnecting; st <= StateGone; st++ {
		if st.String() == string(b) {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("tunnel: unknown state %q", b)
}

// LinkInfo describes one peer for Links, and as INFO's "tunnels" show it
// (PROTOCOL.md, "INFO").
type LinkInfo struct {
	Name    string            `json:"name"`             // the address dialled, or "in:" and the key's start
	Key     string            `json:"key"`              // the peer's public key (Z85)
	Server  string            `json:"server,omitempty"` // the peer's server id, once heard
	State   State             `json:"state"`            // where the link stands
	Proxies map[string]string `json:"proxies"`          // instance there → proxy address here
	// Streams is the number of streams open on the current session.
	Streams int `json:"streams"`
	// BytesIn and BytesOut count the link's bytes (mux frames, before
	// Noise) over every session with the peer.
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
	// Since is when the current session came up (zero when none is).
	Since time.Time `json:"since,omitzero"`
	// Error is why the link is not up (dialled links: the latest attempt's
	// failure), and Failures how many attempts failed in a row.
	Error    string `json:"error,omitempty"`
	Failures int    `json:"failures,omitempty"`
}

// Links reports every peer's state, by Name.
func (t *Tunnels) Links() []LinkInfo {
	t.mu.Lock()
	peers := slices.Collect(maps.Values(t.peers))
	t.mu.Unlock()
	var out []LinkInfo
	for _, p := range peers {
		p.mu.Lock()
		l := LinkInfo{Name: p.name, Key: p.key.String(), Server: p.server, State: p.state, Proxies: map[string]string{},
			BytesIn: p.bytesIn.Load(), BytesOut: p.bytesOut.Load(), Since: p.since, Error: p.err, Failures: p.failures}
		if p.sess != nil {
			l.Streams = p.sess.NumStreams()
		}
		for inst, px := range p.proxies {
			l.Proxies[inst] = px.ln.Addr().String()
		}
		p.mu.Unlock()
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b LinkInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// peer is what is kept of one far server across its sessions. Its proxies
// belong to it, not to a session: they keep their ports across redials.
type peer struct {
	t    *Tunnels
	key  secure.PublicKey
	name string

	applyMu sync.Mutex // one apply or clear at a time

	bytesIn, bytesOut atomic.Int64 // over every session (countConn)

	mu       sync.Mutex
	server   string
	state    State
	since    time.Time // when the current session attached
	err      string    // why the latest dial failed ("" once up)
	failures int       // dials failed in a row
	sess     *mux.Session
	ctl      *ctlWriter // sess's control stream
	inbound  bool       // sess was dialled by the peer (Allow let it in)
	gen      uint64     // sessions attached so far
	grace    *time.Timer
	proxies  map[string]*proxy
}

var errDown = errors.New("tunnel: down")

// open opens a stream on the current session: what every proxy uses, so
// proxies outlive sessions.
func (p *peer) open(context.Context) (net.Conn, error) {
	p.mu.Lock()
	s := p.sess
	p.mu.Unlock()
	if s == nil {
		return nil, errDown
	}
	return s.Open()
}

func (p *peer) setServer(id string) {
	p.mu.Lock()
	p.server = id
	p.mu.Unlock()
}

func (p *peer) attach(s *mux.Session, ctl *ctlWriter, inbound bool) {
	p.mu.Lock()
	old := p.sess
	p.sess, p.ctl, p.inbound = s, ctl, inbound
	p.state = StateUp
	p.since, p.err, p.failures = time.Now(), "", 0
	p.gen++
	if p.grace != nil {
		p.grace.Stop()
		p.grace = nil
	}
	p.mu.Unlock()
	if old != nil && old != s {
		old.Close() // the peer redialled before we noticed the old link die
	}
}

// detach ends s's time as the peer's session: the proxies' entries leave
// the registry at once (a lookup must not return a proxy nothing answers
// behind), and the grace period starts: their listeners keep their ports
// for a session that returns within Config.Grace (the entries come back
// with the same addresses); after it the listeners go too.
func (p *peer) detach(s *mux.Session) {
	p.t.mu.Lock()
	stopped := p.t.stopped
	p.t.mu.Unlock()
	p.mu.Lock()
	if p.sess != s {
		p.mu.Unlock()
		return
	}
	p.sess, p.ctl = nil, nil
	p.since = time.Time{}
	p.state = StateGrace
	if stopped {
		p.mu.Unlock()
		return // Run removes every proxy itself
	}
	p.startGraceLocked()
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p.withdraw(ctx)
}

// withdraw deregisters every proxy's entry, keeping its listener, unless a
// session came back meanwhile (its apply registers them again).
func (p *peer) withdraw(ctx context.Context) {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	p.mu.Lock()
	back := p.sess != nil
	all := slices.Collect(maps.Values(p.proxies))
	p.mu.Unlock()
	if back {
		return
	}
	for _, px := range all {
		px.deregister(ctx)
	}
	if len(all) > 0 {
		p.t.log.Info("tunnel: link lost, the peer's services are withdrawn until it returns", "peer", p.name, "services", len(all),
			"grace", p.t.cfg.Grace)
	}
}

// bye ends s because the peer shut down (Bye): its proxies go at once,
// listeners included, with no grace.
func (p *peer) bye(ctx context.Context, s *mux.Session) {
	if !p.end(s) {
		return
	}
	p.clear(ctx)
}

// revoke ends s because Allow no longer accepts the peer's key: no new
// stream opens on it, nothing it sends is applied; Recheck clears the rest.
func (p *peer) revoke(s *mux.Session) { p.end(s) }

// end makes s no longer the peer's session, with no grace (the peer is
// gone on purpose); it reports whether s was the session.
func (p *peer) end(s *mux.Session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess != s {
		return false
	}
	p.sess, p.ctl = nil, nil
	p.since = time.Time{}
	p.state = StateGone
	if p.grace != nil {
		p.grace.Stop()
		p.grace = nil
	}
	return true
}

// startGraceLocked starts the grace timer of the session that just ended.
func (p *peer) startGraceLocked() {
	gen := p.gen
	p.grace = time.AfterFunc(p.t.cfg.Grace, func() {
		p.mu.Lock()
		stale := p.sess == nil && p.gen == gen
		if stale {
			p.state = StateGone
			p.grace = nil
		}
		p.mu.Unlock()
		if stale {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			p.t.log.Info("tunnel: peer gone for the grace period, removing its proxies", "peer", p.name)
			p.clear(ctx)
		}
	})
}

// stopGrace cancels a pending grace timer (Run is ending and clears the
// proxies itself); one already firing finishes under applyMu first.
func (p *peer) stopGrace() {
	p.mu.Lock()
	if p.grace != nil {
		p.grace.Stop()
		p.grace = nil
	}
	p.mu.Unlock()
}

// current reports whether s is the peer's session.
func (p *peer) current(s *mux.Session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sess == s
}

// apply makes the proxies match the set the peer shares over s.
func (p *peer) apply(ctx context.Context, s *mux.Session, entries []Shared) {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	if !p.current(s) {
		return // a newer session replaced s
	}
	want := make(map[string]Shared, len(entries))
	for _, e := range entries {
		want[e.Instance] = e
	}
	p.mu.Lock()
	server := p.server
	var gone []*proxy
	for inst, px := range p.proxies {
		if _, ok := want[inst]; !ok {
			gone = append(gone, px)
			delete(p.proxies, inst)
		}
	}
	have := maps.Clone(p.proxies)
	p.mu.Unlock()
	for _, px := range gone {
		px.close(ctx)
	}
	for inst, e := range want {
		if px := have[inst]; px != nil && px.instance == "" {
			// Withdrawn when the last session was lost: back, same port.
			if err := px.register(ctx, e, server); err != nil {
				p.t.log.Warn("tunnel: cannot register a proxy again", "peer", p.name, "name", e.Name, "instance", e.Instance, "err", err)
			}
			continue
		}
		if px := have[inst]; px != nil {
			if px.e.Version != e.Version || px.e.Name != e.Name || px.e.Proto != e.Proto || !maps.Equal(px.e.Meta, e.Meta) {
				px.update(ctx, e, server)
			}
			continue
		}
		px, err := p.t.newProxy(ctx, p, e, server)
		if err != nil {
			p.t.log.Warn("tunnel: cannot serve a shared service", "peer", p.name, "name", e.Name, "instance", e.Instance, "err", err)
			continue
		}
		p.mu.Lock()
		p.proxies[inst] = px
		p.mu.Unlock()
	}
}

// clear removes every proxy of the peer and its entry.
func (p *peer) clear(ctx context.Context) {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	p.mu.Lock()
	all := slices.Collect(maps.Values(p.proxies))
	clear(p.proxies)
	p.mu.Unlock()
	for _, px := range all {
		px.close(ctx)
	}
}

// proxy serves one instance the peer shares: a listener here whose
// connections go through the tunnel, and its entry in the local registry
// (instance), which lives while the peer's session does: no heartbeats.
type proxy struct {
	t        *Tunnels
	e        Shared
	ln       net.Listener
	host     string // the entry's host: Config.AdvertiseHost, or the address ln bound
	instance string // "" while withdrawn (no session); the peer's applyMu guards it
	cancel   context.CancelFunc
	done     chan struct{}
}

func (px *proxy) service(e Shared, server string) registry.Service {
	return px.t.proxyService(e, server, px.host, px.ln.Addr().(*net.TCPAddr).Port)
}

func (t *Tunnels) proxyService(e Shared, server, host string, port int) registry.Service {
	meta := make(map[string]string, len(e.Meta)+3)
	maps.Copy(meta, e.Meta)
	meta[MetaPeer] = server
	meta[MetaOrigin] = e.Origin
	meta[MetaInstance] = e.Instance
	return registry.Service{Name: e.Name, Host: host, Port: port, Proto: e.Proto, Meta: meta}
}

// proxyNet is the network proxy listeners use: an IPv4 literal (0.0.0.0
// included) binds IPv4 only, as written, not every address family.
func (t *Tunnels) proxyNet() string {
	if ip := net.ParseIP(t.cfg.ProxyHost); ip != nil && ip.To4() != nil {
		return "tcp4"
	}
	return "tcp"
}

func (t *Tunnels) listenProxy() (net.Listener, error) {
	if t.cfg.PortMin == 0 {
		return net.Listen(t.proxyNet(), net.JoinHostPort(t.cfg.ProxyHost, "0"))
	}
	n := t.cfg.PortMax - t.cfg.PortMin + 1
	off := rand.N(n)
	var err error
	for i := range n {
		port := t.cfg.PortMin + (off+i)%n
		var ln net.Listener
		ln, err = net.Listen(t.proxyNet(), net.JoinHostPort(t.cfg.ProxyHost, strconv.Itoa(port)))
		if err == nil {
			return ln, nil
		}
	}
	return nil, fmt.Errorf("no free port in %d-%d: %w", t.cfg.PortMin, t.cfg.PortMax, err)
}

// registryTimeout bounds each call to the local registry.
const registryTimeout = 5 * time.Second

func (t *Tunnels) newProxy(ctx context.Context, p *peer, e Shared, server string) (*proxy, error) {
	ln, err := t.listenProxy()
	if err != nil {
		return nil, err
	}
	host := t.cfg.AdvertiseHost
	if host == "" {
		host = ln.Addr().(*net.TCPAddr).IP.String()
	}
	pctx, cancel := context.WithCancel(context.Background())
	px := &proxy{t: t, e: e, ln: ln, host: host, cancel: cancel, done: make(chan struct{})}
	if err := px.register(ctx, e, server); err != nil {
		cancel()
		ln.Close()
		return nil, err
	}
	f := &mux.Forwarder{Target: TargetPrefix + e.Instance, Open: p.open, Logger: t.log}
	go func() {
		defer close(px.done)
		_ = f.Serve(pctx, ln)
	}()
	t.log.Info("tunnel: proxy", "peer", p.name, "name", e.Name, "instance", e.Instance, "listen", ln.Addr().String())
	return px, nil
}

// register registers the proxy's entry, as e describes it.
func (px *proxy) register(ctx context.Context, e Shared, server string) error {
	px.e = e
	rctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	inst, err := px.t.reg.Register(rctx, px.service(e, server))
	if err != nil {
		return fmt.Errorf("register the proxy: %w", err)
	}
	px.instance = inst
	return nil
}

// deregister removes the proxy's entry, if it has one.
func (px *proxy) deregister(ctx context.Context) {
	if px.instance == "" {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := px.t.reg.Deregister(dctx, px.instance); err != nil {
		px.t.log.Debug("tunnel: cannot deregister a proxy entry", "name", px.e.Name, "instance", px.instance, "err", err)
	}
	px.instance = ""
}

func (px *proxy) update(ctx context.Context, e Shared, server string) {
	px.e = e
	uctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	if err := px.t.reg.Update(uctx, px.instance, px.service(e, server)); err != nil {
		px.t.log.Warn("tunnel: cannot update a proxy entry", "name", e.Name, "instance", e.Instance, "err", err)
	}
}

func (px *proxy) close(ctx context.Context) {
	px.deregister(ctx)
	px.cancel()
	<-px.done
}

// setErr records a failed dial of the peer (Links' Error and Failures).
func (p *peer) setErr(err string, failures int) {
	p.mu.Lock()
	p.err, p.failures = err, failures
	p.mu.Unlock()
}

// countConn counts the bytes of a peer's link.
type countConn struct {
	net.Conn
	p *peer
}

func (c countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.p.bytesIn.Add(int64(n))
	return n, err
}

func (c countConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.p.bytesOut.Add(int64(n))
	return n, err
}

// HandshakeFailure is one reason inbound tunnel handshakes failed, with
// how many did (noise.HandshakeFailure's names).
type HandshakeFailure struct {
	Reason string
	Count  int64
}

// HandshakeFailures are the inbound handshakes refused or failed since Run
// started accepting, every reason (zeros too); none before that. A key
// Allow refuses counts as unauthorized, though Noise let it finish.
func (t *Tunnels) HandshakeFailures() []HandshakeFailure {
	r := t.resp.Load()
	if r == nil {
		return nil
	}
	fs := r.HandshakeFailures()
	out := make([]HandshakeFailure, len(fs))
	for i, n := range fs {
		if noise.HandshakeFailure(i) == noise.FailUnauthorized {
			n += t.refusedKeys.Load()
		}
		out[i] = HandshakeFailure{noise.HandshakeFailure(i).String(), n}
	}
	return out
}
