package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hydra-net/hydra/mux"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/secure/noise"
)

// Tunnels: one outbound encrypted connection carries service information
// and all service traffic between two servers (ARCHITECTURE.md, "Data
// path of a tunnelled connection"; PROTOCOL.md, "Tunnels").
//
// The local server dials the remote's Hydra port (the port it shares with
// ZMTP, SharedListener), runs a Noise IK handshake pinned to the remote's
// key (the remote checks ours against its allow-list), and runs a mux
// (yamux) session over it. The dialler opens one control stream on which
// each side sends the services it shares (tunnel_msg.go); every other
// stream carries one proxied TCP connection to one shared instance.
//
// On each side, every instance learned from the far side gets a proxy
// listener on ProxyHost and is registered with this server under its own
// name, with the proxy's address: a lookup here returns the proxy, whose
// connections travel the tunnel (mux.Forwarder) to the far side, which
// dials the real service (mux.StreamServer) — only instances it shares,
// never an address the stream names. Proxy listeners belong to the peer
// (its key), not to a session: they survive a redial, so addresses
// clients hold stay valid; while no session is up their connections are
// closed at once. After Grace without a session they are removed.
//
// Tunnels talks to its own server as an ordinary registry Client (watch
// every name, register the proxies, keep them alive), so the server's
// loop needs no tunnel state. Entries a tunnel registers carry the
// metadata keys below; they are never shared again (no loops, no transit).

// Metadata keys of entries registered for tunnel proxies.
const (
	MetaTunnel   = "hydra.tunnel"   // the far server's id
	MetaOrigin   = "hydra.origin"   // the id of the server the real entry lives on
	MetaInstance = "hydra.instance" // the real entry's instance id there
)

// Defaults of TunnelConfig's fields.
const (
	DefaultTunnelPort          = 8420
	DefaultTunnelRedialMin     = 250 * time.Millisecond
	DefaultTunnelRedialMax     = 10 * time.Second
	DefaultTunnelGrace         = time.Minute
	DefaultTunnelEntryTTL      = 10 * time.Second
	DefaultTunnelMaxServices   = 1024
	DefaultTunnelDialTimeout   = 10 * time.Second
	DefaultTunnelStreamWindow  = 8 << 20
	DefaultTunnelMaxStreams    = 256
	DefaultTunnelAcceptBacklog = 64
	DefaultTunnelKeepAlive     = 2 * time.Second
	DefaultTunnelLiveness      = 6 * time.Second
)

// TunnelRemote is a server to keep a tunnel to.
type TunnelRemote struct {
	// Addr is HOST or HOST:PORT of the remote's Hydra port (8420 when
	// omitted; IPv6 as [::1]:8420).
	Addr string
	// Key is the remote server's public key: the handshake is pinned to it.
	Key secure.PublicKey
}

// ParseTunnelAddr returns HOST:PORT for HOST, HOST:PORT, [IPv6]:PORT or
// a bare IPv6 address.
func ParseTunnelAddr(s string) (string, error) {
	if s == "" {
		return "", errors.New("tunnel address is empty")
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || h == "" {
			return "", fmt.Errorf("tunnel address %q: want HOST[:PORT] with a port 1-65535", s)
		}
		return net.JoinHostPort(h, p), nil
	}
	if strings.ContainsAny(s, "[]/ ") || (strings.Count(s, ":") == 1) {
		return "", fmt.Errorf("tunnel address %q: want HOST[:PORT]", s)
	}
	return net.JoinHostPort(s, strconv.Itoa(DefaultTunnelPort)), nil
}

// TunnelConfig configures a server's tunnels. Every field says its default.
type TunnelConfig struct {
	// Static is this server's key pair (required): its identity on tunnels.
	Static secure.KeyPair
	// Allow decides which servers may dial tunnels to this one (by their
	// static key). Default nil: nobody; this server then only dials.
	Allow secure.Authorizer
	// Remotes are the servers to keep tunnels to.
	Remotes []TunnelRemote
	// Cipher is the AEAD asked for on tunnels this server dials. Default
	// noise.CipherAuto (AES-GCM with AES hardware, else ChaCha20-Poly1305).
	Cipher noise.Cipher

	// ProxyHost is the address proxy listeners bind. Default 127.0.0.1.
	ProxyHost string
	// AdvertiseHost is the host proxy entries are registered with.
	// Default ProxyHost, or 127.0.0.1 when ProxyHost is unspecified
	// (0.0.0.0, ::).
	AdvertiseHost string
	// PortMin and PortMax, when both set, are the range proxy listeners
	// take their ports from. Default: a port the system chooses.
	PortMin, PortMax int

	// Mux tunes the sessions. Zero fields take the tunnel defaults, not
	// mux's: an 8 MiB stream window (a 256 KiB window caps one stream at
	// 2.6 MB/s over a 100 ms round trip), 256 streams per tunnel (memory
	// stays bounded by about MaxStreams × StreamWindow), a backlog of 64,
	// a keepalive after 2s of silence in either direction and a peer
	// declared dead after 6s without a byte read.
	Mux mux.Config

	// RedialMin and RedialMax bound the wait between attempts to dial a
	// remote: it starts at RedialMin, doubles after each failure up to
	// RedialMax, and each wait is drawn at random from its upper half.
	// Defaults 250ms and 10s.
	RedialMin, RedialMax time.Duration
	// Grace is how long proxies of a peer outlive its last session. Default 1m.
	Grace time.Duration
	// EntryTTL is the TTL of proxy entries (heartbeats renew them).
	// Default 10s.
	EntryTTL time.Duration
	// MaxServices bounds the instances one peer may share with us; a peer
	// sending more loses its tunnel. Default 1024.
	MaxServices int
	// MaxMetadataBytes bounds a shared entry's metadata. Default
	// DefaultMaxMetadataBytes.
	MaxMetadataBytes int
	// DialTimeout bounds the TCP dial and the handshake of a tunnel, and
	// the dial of a service for a stream. Default 10s.
	DialTimeout time.Duration

	// Client configures how Tunnels talks to its own server; Run sets
	// Endpoint. Default: NULL security (a server with CURVE needs it set).
	Client ClientConfig
	// Logger receives tunnel events. Default: discard.
	Logger *slog.Logger
}

func (c TunnelConfig) withDefaults() TunnelConfig {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ProxyHost == "" {
		c.ProxyHost = "127.0.0.1"
	}
	if c.AdvertiseHost == "" {
		c.AdvertiseHost = c.ProxyHost
		if ip := net.ParseIP(c.ProxyHost); ip != nil && ip.IsUnspecified() {
			c.AdvertiseHost = "127.0.0.1"
		}
	}
	setDefault(&c.RedialMin, DefaultTunnelRedialMin)
	setDefault(&c.RedialMax, DefaultTunnelRedialMax)
	setDefault(&c.Grace, DefaultTunnelGrace)
	setDefault(&c.EntryTTL, DefaultTunnelEntryTTL)
	setDefault(&c.MaxServices, DefaultTunnelMaxServices)
	setDefault(&c.MaxMetadataBytes, DefaultMaxMetadataBytes)
	setDefault(&c.DialTimeout, DefaultTunnelDialTimeout)
	if c.Mux.StreamWindow == 0 {
		c.Mux.StreamWindow = DefaultTunnelStreamWindow
	}
	setDefault(&c.Mux.MaxStreams, DefaultTunnelMaxStreams)
	if c.Mux.AcceptBacklog == 0 {
		c.Mux.AcceptBacklog = min(DefaultTunnelAcceptBacklog, c.Mux.MaxStreams)
	}
	setDefault(&c.Mux.KeepAliveInterval, DefaultTunnelKeepAlive)
	setDefault(&c.Mux.LivenessTimeout, max(DefaultTunnelLiveness, 3*c.Mux.KeepAliveInterval))
	if c.Mux.Logger == nil {
		c.Mux.Logger = c.Logger
	}
	return c
}

// Verify reports whether c is usable.
func (c TunnelConfig) Verify() error {
	d := c.withDefaults()
	if c.Static.Public.IsZero() {
		return errors.New("registry: tunnel: no key pair (a key file is required for tunnels)")
	}
	for _, r := range c.Remotes {
		if _, err := ParseTunnelAddr(r.Addr); err != nil {
			return fmt.Errorf("registry: tunnel: %v", err)
		}
		if r.Key.IsZero() {
			return fmt.Errorf("registry: tunnel to %s: no remote key", r.Addr)
		}
	}
	if (c.PortMin != 0 || c.PortMax != 0) && (c.PortMin < 1 || c.PortMax > 65535 || c.PortMin > c.PortMax) {
		return fmt.Errorf("registry: tunnel: proxy port range %d-%d: want 1 <= min <= max <= 65535", c.PortMin, c.PortMax)
	}
	if d.RedialMin < 0 || d.RedialMax < d.RedialMin || d.Grace < 0 || d.EntryTTL < time.Second {
		return errors.New("registry: tunnel: want 0 <= RedialMin <= RedialMax, Grace >= 0, EntryTTL >= 1s")
	}
	if err := mux.VerifyConfig(&d.Mux); err != nil {
		return fmt.Errorf("registry: tunnel: %w", err)
	}
	return nil
}

// Tunnels keeps a server's tunnels: those it dials (TunnelConfig.Remotes)
// and those other servers dial to it.
type Tunnels struct {
	cfg    TunnelConfig
	log    *slog.Logger
	cl     *Client
	selfID string
	ss     *mux.StreamServer

	mu      sync.Mutex
	local   map[string]Entry // instance → entry this server shares
	localCh chan struct{}    // closed and replaced when local changes
	peers   map[secure.PublicKey]*tunnelPeer
	ready   chan struct{} // closed once the local set is known
	readyOK bool

	wg sync.WaitGroup
}

// NewTunnels checks cfg and returns Tunnels ready to Run.
func NewTunnels(cfg TunnelConfig) (*Tunnels, error) {
	if err := cfg.Verify(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Remotes = slices.Clone(cfg.Remotes)
	for i := range cfg.Remotes {
		cfg.Remotes[i].Addr, _ = ParseTunnelAddr(cfg.Remotes[i].Addr)
	}
	t := &Tunnels{cfg: cfg, log: cfg.Logger, local: map[string]Entry{}, localCh: make(chan struct{}),
		peers: map[secure.PublicKey]*tunnelPeer{}, ready: make(chan struct{})}
	t.ss = &mux.StreamServer{Dial: t.dialTarget, DialTimeout: cfg.DialTimeout, Logger: cfg.Logger}
	return t, nil
}

// Run talks to the server at endpoint (its own), dials every remote and
// serves the tunnels ln accepts (a SharedListener's Tunnels half; nil:
// accept none) until ctx ends. It then closes every tunnel and proxy,
// deregisters the proxies and returns.
func (t *Tunnels) Run(ctx context.Context, endpoint string, ln net.Listener) error {
	ccfg := t.cfg.Client
	ccfg.Endpoint = selfEndpoint(endpoint)
	if ccfg.Logger == nil {
		ccfg.Logger = t.log
	}
	cl, err := NewClient(ccfg)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	t.cl = cl
	defer cl.Close()
	for {
		id, _, err := cl.Ping(ctx)
		if err == nil {
			t.selfID = id
			break
		}
		if ctx.Err() != nil {
			if ln != nil {
				ln.Close()
			}
			return nil
		}
		t.log.Warn("tunnel: cannot reach own server yet", "endpoint", ccfg.Endpoint, "err", err)
		sleepCtx(ctx, time.Second)
	}
	t.log.Info("tunnel: starting", "key", t.cfg.Static.Public.String(), "remotes", len(t.cfg.Remotes),
		"accepting", ln != nil && t.cfg.Allow != nil, "window", t.cfg.Mux.StreamWindow, "max_streams", t.cfg.Mux.MaxStreams)
	t.wg.Add(1)
	go func() { defer t.wg.Done(); t.watchLocal(ctx) }()
	for _, r := range t.cfg.Remotes {
		t.wg.Add(1)
		go func() { defer t.wg.Done(); t.dialLoop(ctx, r) }()
	}
	if ln != nil {
		t.wg.Add(1)
		go func() { defer t.wg.Done(); t.acceptLoop(ctx, ln) }()
	}
	<-ctx.Done()
	t.wg.Wait()
	t.mu.Lock()
	peers := slices.Collect(maps.Values(t.peers))
	t.mu.Unlock()
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, p := range peers {
		p.clear(dctx)
	}
	return nil
}

// selfEndpoint turns a wildcard bind address into one a client can dial.
func selfEndpoint(ep string) string {
	rest, ok := strings.CutPrefix(ep, "tcp://")
	if !ok {
		return ep
	}
	h, p, err := net.SplitHostPort(rest)
	if err != nil {
		return ep
	}
	if h == "*" || h == "" || net.ParseIP(h) != nil && net.ParseIP(h).IsUnspecified() {
		if ip := net.ParseIP(h); ip != nil && ip.To4() == nil {
			h = "::1"
		} else {
			h = "127.0.0.1"
		}
	}
	return "tcp://" + net.JoinHostPort(h, p)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// shareable says whether e is shared through tunnels: this server's own
// entries over TCP, not proxies of other tunnels.
func (t *Tunnels) shareable(e *Entry) bool {
	return e.Origin == t.selfID && e.Meta[MetaTunnel] == "" && e.Proto != "udp"
}

// watchLocal follows this server's entries: the set every tunnel shares.
func (t *Tunnels) watchLocal(ctx context.Context) {
	for ctx.Err() == nil {
		ch, err := t.cl.Watch(ctx, "")
		if err != nil {
			t.log.Warn("tunnel: cannot watch own server", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		for ev := range ch {
			t.mu.Lock()
			changed := false
			switch ev.Type {
			case EventSync:
				next := map[string]Entry{}
				for _, e := range ev.Entries {
					if t.shareable(&e) {
						next[e.Instance] = e
					}
				}
				changed = !maps.EqualFunc(next, t.local, func(a, b Entry) bool { return a.Version == b.Version && a.Addr() == b.Addr() })
				t.local = next
			case EventRegister, EventUpdate:
				e := ev.Entry
				if t.shareable(&e) {
					t.local[e.Instance] = e
					changed = true
				} else if _, ok := t.local[e.Instance]; ok {
					delete(t.local, e.Instance)
					changed = true
				}
			case EventDeregister, EventExpire:
				if _, ok := t.local[ev.Entry.Instance]; ok {
					delete(t.local, ev.Entry.Instance)
					changed = true
				}
			}
			if changed {
				close(t.localCh)
				t.localCh = make(chan struct{})
			}
			if ev.Type == EventSync && !t.readyOK {
				t.readyOK = true
				close(t.ready)
			}
			t.mu.Unlock()
		}
	}
}

// localSnapshot returns what this server shares now, and a channel closed
// when that changes.
func (t *Tunnels) localSnapshot() ([]tunnelEntry, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]tunnelEntry, 0, len(t.local))
	for _, e := range t.local {
		out = append(out, tunnelEntry{Name: e.Name, Instance: e.Instance, Proto: e.Proto, Meta: e.Meta,
			Origin: e.Origin, Version: e.Version})
	}
	slices.SortFunc(out, func(a, b tunnelEntry) int { return strings.Compare(a.Instance, b.Instance) })
	return out, t.localCh
}

// dialTarget is the StreamServer's DialFunc: only instances this server
// shares, by instance id, never an address the far side names.
func (t *Tunnels) dialTarget(ctx context.Context, target string) (net.Conn, error) {
	inst, ok := strings.CutPrefix(target, tunnelTargetPrefix)
	t.mu.Lock()
	e, known := t.local[inst]
	t.mu.Unlock()
	if !ok || !known {
		return nil, fmt.Errorf("%w: %s", mux.ErrUnknownTarget, quote(target))
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", e.Addr())
}

// peer returns the state kept for the server with key, made if new.
func (t *Tunnels) peer(key secure.PublicKey, name string) *tunnelPeer {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[key]
	if p == nil {
		p = &tunnelPeer{t: t, key: key, name: name, proxies: map[string]*tunnelProxy{}}
		t.peers[key] = p
	}
	return p
}

// dialLoop keeps a tunnel to r up: dial, serve, redial with backoff and
// jitter.
func (t *Tunnels) dialLoop(ctx context.Context, r TunnelRemote) {
	p := t.peer(r.Key, r.Addr)
	backoff := t.cfg.RedialMin
	for ctx.Err() == nil {
		up, err := t.dialOnce(ctx, p, r)
		if ctx.Err() != nil {
			return
		}
		if up {
			backoff = t.cfg.RedialMin
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		t.log.Info("tunnel: down, redialling", "remote", r.Addr, "err", err, "in", wait.Round(time.Millisecond))
		sleepCtx(ctx, wait)
		backoff = min(max(2*backoff, time.Millisecond), t.cfg.RedialMax)
	}
}

func (t *Tunnels) dialOnce(ctx context.Context, p *tunnelPeer, r TunnelRemote) (up bool, err error) {
	d := net.Dialer{Timeout: t.cfg.DialTimeout, KeepAlive: 15 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		return false, err
	}
	conn, err := noise.Initiate(ctx, nc, noise.Config{Static: t.cfg.Static, RemoteKey: r.Key,
		Cipher: t.cfg.Cipher, HandshakeTimeout: t.cfg.DialTimeout, Logger: t.log})
	if err != nil {
		return false, fmt.Errorf("handshake: %w", err)
	}
	return t.serveLink(ctx, p, conn, true)
}

// acceptLoop serves the tunnels other servers dial to this one.
func (t *Tunnels) acceptLoop(ctx context.Context, ln net.Listener) {
	if t.cfg.Allow == nil {
		t.log.Info("tunnel: no allow-list: inbound tunnels are refused")
	}
	resp, err := noise.NewResponder(noise.Config{Static: t.cfg.Static, Peers: t.cfg.Allow,
		HandshakeTimeout: t.cfg.DialTimeout, Logger: t.log})
	if err != nil {
		t.log.Error("tunnel: responder", "err", err)
		ln.Close()
		return
	}
	sl := resp.Listen(ln)
	stop := context.AfterFunc(ctx, func() { sl.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := sl.AcceptConn()
		if err != nil {
			return
		}
		key := conn.PeerKey()
		p := t.peer(key, "in:"+key.String()[:8])
		t.log.Info("tunnel: accepted", "from", conn.RemoteAddr(), "key", key.String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := t.serveLink(ctx, p, conn, false)
			t.log.Info("tunnel: inbound down", "from", conn.RemoteAddr(), "err", err)
		}()
	}
}

// serveLink runs one session over conn until it ends. up reports whether
// the control stream came up (the link worked, whatever ended it).
func (t *Tunnels) serveLink(ctx context.Context, p *tunnelPeer, conn *noise.Conn, initiator bool) (up bool, err error) {
	mcfg := t.cfg.Mux
	var sess *mux.Session
	if initiator {
		sess, err = mux.Client(conn, &mcfg)
	} else {
		sess, err = mux.Server(conn, &mcfg)
	}
	if err != nil {
		conn.Close()
		return false, err
	}
	lctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(lctx, func() { sess.Close() })
	ctlCh := make(chan net.Conn, 1)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		stop()
		sess.Close()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.acceptStreams(lctx, sess, ctlCh, !initiator)
		cancel()
	}()
	var ctl net.Conn
	if initiator {
		st, err := sess.Open()
		if err != nil {
			return false, err
		}
		hdr, _ := mux.AppendHeader(nil, tunnelControlTarget)
		if _, err := st.Write(hdr); err != nil {
			mux.Abort(st)
			return false, err
		}
		ctl = st
	} else {
		tm := time.NewTimer(t.cfg.DialTimeout)
		select {
		case ctl = <-ctlCh:
			tm.Stop()
		case <-tm.C:
			return false, errors.New("no control stream from the peer")
		case <-lctx.Done():
			tm.Stop()
			return false, sessErr(sess, lctx)
		}
	}
	defer ctl.Close()
	p.attach(sess)
	defer p.detach(sess)
	err = t.control(lctx, p, sess, ctl)
	if errors.Is(err, io.EOF) || lctx.Err() != nil {
		err = sessErr(sess, lctx)
	}
	return true, err
}

func sessErr(sess *mux.Session, ctx context.Context) error {
	select {
	case <-sess.Done():
		if err := sess.Err(); err != nil {
			return err
		}
	default:
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return mux.ErrSessionClosed
}

// acceptStreams serves the streams the peer opens: the control stream
// (only the responder accepts one, once) and proxied connections.
func (t *Tunnels) acceptStreams(ctx context.Context, sess *mux.Session, ctlCh chan net.Conn, wantCtl bool) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := sess.AcceptStreamContext(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = st.SetReadDeadline(time.Now().Add(t.cfg.DialTimeout))
			target, err := mux.ReadHeader(st)
			if err != nil {
				mux.Abort(st)
				return
			}
			_ = st.SetReadDeadline(time.Time{})
			if target == tunnelControlTarget {
				if wantCtl {
					select {
					case ctlCh <- st:
						return
					default:
					}
				}
				mux.Abort(st)
				return
			}
			if err := t.ss.ServeTarget(ctx, st, target); err != nil {
				t.log.Debug("tunnel: stream", "target", target, "err", err)
			}
		}()
	}
}

// control runs the control stream: hello and the shared set out (again at
// every change), the peer's hello and sets in.
func (t *Tunnels) control(ctx context.Context, p *tunnelPeer, sess *mux.Session, ctl net.Conn) error {
	go func() {
		if err := t.controlWriter(ctx, ctl); err != nil {
			t.log.Debug("tunnel: control write", "peer", p.name, "err", err)
			ctl.Close()
		}
	}()
	var buf []byte
	hello := false
	for {
		b, err := readTunnelFrame(ctl, buf)
		if err != nil {
			return err
		}
		buf = b[:0]
		m, err := parseTunnelMsg(b, t.cfg.MaxMetadataBytes)
		if err != nil {
			return err
		}
		switch {
		case m.T == tunnelMsgHello:
			if !hello {
				t.log.Info("tunnel: up", "peer", p.name, "peer_server", m.Server, "remote", sess.RemoteAddr(), "key", p.key.String())
			}
			hello = true
			p.setServer(m.Server)
		case !hello:
			return fmt.Errorf("%w: %q before hello", errTunnelMsg, m.T)
		case m.T == tunnelMsgServices:
			if len(m.Entries) > t.cfg.MaxServices {
				return fmt.Errorf("%w: %d services shared, limit %d", errTunnelMsg, len(m.Entries), t.cfg.MaxServices)
			}
			p.apply(ctx, sess, m.Entries)
		}
	}
}

func (t *Tunnels) controlWriter(ctx context.Context, ctl net.Conn) error {
	b, _ := appendTunnelFrame(nil, &tunnelMsg{T: tunnelMsgHello, V: tunnelVersion, Server: t.selfID})
	if _, err := ctl.Write(b); err != nil {
		return err
	}
	select {
	case <-t.ready:
	case <-ctx.Done():
		return nil
	}
	for {
		entries, changed := t.localSnapshot()
		b, err := appendTunnelFrame(b[:0], &tunnelMsg{T: tunnelMsgServices, Entries: entries})
		if err != nil {
			return err
		}
		if _, err := ctl.Write(b); err != nil {
			return err
		}
		select {
		case <-changed:
			sleepCtx(ctx, 50*time.Millisecond) // let a burst of changes settle
		case <-ctx.Done():
			return nil
		}
	}
}

// TunnelLink describes one peer for Links.
type TunnelLink struct {
	Name    string            // the address dialled, or "in:" and the key's start
	Key     string            // the peer's public key (Z85)
	Server  string            // the peer's server id, once heard
	Up      bool              // a session is up
	Proxies map[string]string // instance there → proxy address here
}

// Links reports every peer's state.
func (t *Tunnels) Links() []TunnelLink {
	t.mu.Lock()
	peers := slices.Collect(maps.Values(t.peers))
	t.mu.Unlock()
	var out []TunnelLink
	for _, p := range peers {
		p.mu.Lock()
		l := TunnelLink{Name: p.name, Key: p.key.String(), Server: p.server, Up: p.sess != nil, Proxies: map[string]string{}}
		for inst, px := range p.proxies {
			l.Proxies[inst] = px.ln.Addr().String()
		}
		p.mu.Unlock()
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b TunnelLink) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// tunnelPeer is what is kept of one far server across its sessions.
type tunnelPeer struct {
	t    *Tunnels
	key  secure.PublicKey
	name string

	applyMu sync.Mutex // one apply at a time

	mu      sync.Mutex
	server  string
	sess    *mux.Session
	gen     uint64 // sessions attached so far
	proxies map[string]*tunnelProxy
}

var errTunnelDown = errors.New("registry: tunnel down")

// open opens a stream on the current session: what every proxy uses, so
// proxies outlive sessions.
func (p *tunnelPeer) open(context.Context) (net.Conn, error) {
	p.mu.Lock()
	s := p.sess
	p.mu.Unlock()
	if s == nil {
		return nil, errTunnelDown
	}
	return s.Open()
}

func (p *tunnelPeer) setServer(id string) {
	p.mu.Lock()
	p.server = id
	p.mu.Unlock()
}

func (p *tunnelPeer) attach(s *mux.Session) {
	p.mu.Lock()
	old := p.sess
	p.sess = s
	p.gen++
	p.mu.Unlock()
	if old != nil && old != s {
		old.Close() // the peer redialled before we noticed the old link die
	}
}

func (p *tunnelPeer) detach(s *mux.Session) {
	p.mu.Lock()
	if p.sess != s {
		p.mu.Unlock()
		return
	}
	p.sess = nil
	gen := p.gen
	p.mu.Unlock()
	time.AfterFunc(p.t.cfg.Grace, func() {
		p.mu.Lock()
		stale := p.sess == nil && p.gen == gen
		p.mu.Unlock()
		if stale {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			p.t.log.Info("tunnel: peer gone for the grace period, removing its proxies", "peer", p.name)
			p.clear(ctx)
		}
	})
}

// current reports whether s is the peer's session.
func (p *tunnelPeer) current(s *mux.Session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sess == s
}

// apply makes the proxies match the set the peer shares over s.
func (p *tunnelPeer) apply(ctx context.Context, s *mux.Session, entries []tunnelEntry) {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	if !p.current(s) {
		return // a newer session replaced s
	}
	want := make(map[string]tunnelEntry, len(entries))
	for _, e := range entries {
		want[e.Instance] = e
	}
	p.mu.Lock()
	server := p.server
	var gone []*tunnelProxy
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

// clear removes every proxy of the peer.
func (p *tunnelPeer) clear(ctx context.Context) {
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

// tunnelProxy serves one instance the peer shares: a listener here whose
// connections go through the tunnel, and its registration here.
type tunnelProxy struct {
	t      *Tunnels
	e      tunnelEntry
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{}
	reg    *Registration
}

func (t *Tunnels) proxyService(e tunnelEntry, server string, port int) Service {
	meta := make(map[string]string, len(e.Meta)+3)
	maps.Copy(meta, e.Meta)
	meta[MetaTunnel] = server
	meta[MetaOrigin] = e.Origin
	meta[MetaInstance] = e.Instance
	return Service{Name: e.Name, Host: t.cfg.AdvertiseHost, Port: port, Proto: e.Proto, Meta: meta, TTL: t.cfg.EntryTTL}
}

func (t *Tunnels) listenProxy() (net.Listener, error) {
	if t.cfg.PortMin == 0 {
		return net.Listen("tcp", net.JoinHostPort(t.cfg.ProxyHost, "0"))
	}
	n := t.cfg.PortMax - t.cfg.PortMin + 1
	off := rand.N(n)
	var err error
	for i := range n {
		port := t.cfg.PortMin + (off+i)%n
		var ln net.Listener
		ln, err = net.Listen("tcp", net.JoinHostPort(t.cfg.ProxyHost, strconv.Itoa(port)))
		if err == nil {
			return ln, nil
		}
	}
	return nil, fmt.Errorf("no free port in %d-%d: %w", t.cfg.PortMin, t.cfg.PortMax, err)
}

func (t *Tunnels) newProxy(ctx context.Context, p *tunnelPeer, e tunnelEntry, server string) (*tunnelProxy, error) {
	ln, err := t.listenProxy()
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	reg, err := t.cl.Register(rctx, t.proxyService(e, server, port))
	rcancel()
	if err != nil {
		ln.Close()
		return nil, err
	}
	pctx, cancel := context.WithCancel(context.Background())
	px := &tunnelProxy{t: t, e: e, ln: ln, cancel: cancel, done: make(chan struct{}), reg: reg}
	f := &mux.Forwarder{Target: tunnelTargetPrefix + e.Instance, Open: p.open, Logger: t.log}
	go func() {
		defer close(px.done)
		_ = f.Serve(pctx, ln)
	}()
	t.log.Info("tunnel: proxy", "peer", p.name, "name", e.Name, "instance", e.Instance, "listen", ln.Addr().String())
	return px, nil
}

func (px *tunnelProxy) update(ctx context.Context, e tunnelEntry, server string) {
	px.e = e
	uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := px.reg.Update(uctx, px.t.proxyService(e, server, px.ln.Addr().(*net.TCPAddr).Port)); err != nil {
		px.t.log.Warn("tunnel: cannot update a proxy entry", "name", e.Name, "instance", e.Instance, "err", err)
	}
}

func (px *tunnelProxy) close(ctx context.Context) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = px.reg.Deregister(dctx)
	px.cancel()
	<-px.done
}
