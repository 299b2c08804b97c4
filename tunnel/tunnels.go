package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hydra-net/hydra/internal/backoff"
	"github.com/hydra-net/hydra/internal/netaddr"
	"github.com/hydra-net/hydra/internal/repeatlog"
	"github.com/hydra-net/hydra/mux"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/secure/noise"
)

// Registry is the local registry as tunnels use it.
type Registry interface {
	Register(ctx context.Context, svc registry.Service) (instance string, err error)
	Update(ctx context.Context, instance string, svc registry.Service) error
	Deregister(ctx context.Context, instance string) error
	// Watch delivers every entry's changes, as registry.Client.Watch(ctx, "") does.
	Watch(ctx context.Context) (<-chan registry.Event, error)
}

// Metadata keys of entries registered for proxies. Entries that carry
// MetaPeer are never shared again (no loops, no transit).
const (
	MetaPeer     = "hydra.tunnel"   // the far server's id
	MetaOrigin   = "hydra.origin"   // the id of the server the real entry lives on
	MetaInstance = "hydra.instance" // the real entry's instance id there
)

// settle is how long the control writer lets a burst of local changes
// pile up before sending the new set.
const settle = 50 * time.Millisecond

// Tunnels keeps a server's tunnels: those it dials (Config.Remotes) and
// those other servers dial to it.
type Tunnels struct {
	cfg Config
	log *slog.Logger
	reg Registry
	ss  *mux.StreamServer

	mu      sync.Mutex
	local   map[string]registry.Entry // instance → entry this server shares
	localCh chan struct{}             // closed and replaced when local changes
	peers   map[secure.PublicKey]*peer
	ready   chan struct{} // closed once the local set is known
	readyOK bool
	stopped bool // Run is over: no grace timer may start

	wg   sync.WaitGroup
	resp atomic.Pointer[noise.Responder] // inbound handshakes (HandshakeFailures)
	// refusedKeys counts the handshakes that finished with a key Allow
	// refuses (Noise lets them finish, so that they can be told why).
	refusedKeys atomic.Int64
}

// New checks cfg and returns Tunnels ready to Run, which registers proxies
// with reg.
func New(cfg Config, reg Registry) (*Tunnels, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if reg == nil {
		return nil, errors.New("tunnel: no registry")
	}
	cfg = cfg.withDefaults()
	cfg.Remotes = slices.Clone(cfg.Remotes)
	for i := range cfg.Remotes {
		cfg.Remotes[i].Addr, _ = netaddr.ParseHostPort(cfg.Remotes[i].Addr)
	}
	t := &Tunnels{cfg: cfg, log: cfg.Logger, reg: reg, local: map[string]registry.Entry{}, localCh: make(chan struct{}),
		peers: map[secure.PublicKey]*peer{}, ready: make(chan struct{})}
	t.ss = &mux.StreamServer{Dial: t.dialTarget, DialTimeout: cfg.DialTimeout, Logger: cfg.Logger}
	return t, nil
}

// Run follows the local registry, dials every remote and serves the
// tunnels ln accepts (a portshare.Listener's Tunnels half; nil: accept
// none) until ctx ends. It then closes every tunnel and proxy, deregisters
// the proxies and returns; ln is closed. Run is called once.
func (t *Tunnels) Run(ctx context.Context, ln net.Listener) error {
	t.log.Info("tunnel: starting", "key", t.cfg.Static.Public.String(), "remotes", len(t.cfg.Remotes),
		"accepting", ln != nil && t.cfg.Allow != nil, "window", t.cfg.Mux.StreamWindow, "max_streams", t.cfg.Mux.MaxStreams)
	if !loopbackHost(t.cfg.ProxyHost) {
		t.log.Warn("tunnel: proxies of the far sides' services listen beyond loopback, without authentication",
			"bind", t.cfg.ProxyHost)
	}
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
	t.stopped = true
	peers := slices.Collect(maps.Values(t.peers))
	t.mu.Unlock()
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, p := range peers {
		p.stopGrace()
		p.clear(dctx)
	}
	return nil
}

// shareable says whether e is shared through tunnels: this server's own
// entries over TCP that Config.Export lets out, not proxies of other
// tunnels.
func (t *Tunnels) shareable(e *registry.Entry) bool {
	return e.Origin == t.cfg.ServerID && e.Meta[MetaPeer] == "" && e.Proto != "udp" && t.exported(e)
}

// watchLocal follows the local registry's entries: the set every tunnel
// shares.
func (t *Tunnels) watchLocal(ctx context.Context) {
	var wait backoff.Backoff
	for ctx.Err() == nil {
		ch, err := t.reg.Watch(ctx)
		if err != nil {
			d := wait.Next()
			t.log.Warn("tunnel: cannot watch the local registry", "err", err, "in", d.Round(time.Millisecond))
			backoff.Sleep(ctx, d)
			continue
		}
		wait.Reset()
		for ev := range ch {
			t.apply(ev)
		}
	}
}

// apply folds one event of the local registry into the shared set.
func (t *Tunnels) apply(ev registry.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := false
	switch ev.Type {
	case registry.EventSync:
		next := map[string]registry.Entry{}
		for _, e := range ev.Entries {
			if t.shareable(&e) {
				next[e.Instance] = e
			}
		}
		changed = !maps.EqualFunc(next, t.local, func(a, b registry.Entry) bool { return a.Version == b.Version && a.Addr() == b.Addr() })
		t.local = next
	case registry.EventRegister, registry.EventUpdate:
		e := ev.Entry
		if t.shareable(&e) {
			t.local[e.Instance] = e
			changed = true
		} else if _, ok := t.local[e.Instance]; ok {
			delete(t.local, e.Instance)
			changed = true
		}
	case registry.EventDeregister, registry.EventExpire:
		if _, ok := t.local[ev.Entry.Instance]; ok {
			delete(t.local, ev.Entry.Instance)
			changed = true
		}
	}
	if changed {
		close(t.localCh)
		t.localCh = make(chan struct{})
	}
	if ev.Type == registry.EventSync && !t.readyOK {
		t.readyOK = true
		close(t.ready)
	}
}

// localSnapshot returns what this server shares now, and a channel closed
// when that changes.
func (t *Tunnels) localSnapshot() ([]Shared, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Shared, 0, len(t.local))
	for _, e := range t.local {
		out = append(out, Shared{Name: e.Name, Instance: e.Instance, Proto: e.Proto, Meta: e.Meta,
			Origin: e.Origin, Version: e.Version})
	}
	slices.SortFunc(out, func(a, b Shared) int { return strings.Compare(a.Instance, b.Instance) })
	return out, t.localCh
}

// dialTarget is the StreamServer's DialFunc: only instances this server
// shares, by instance id, never an address the far side names.
func (t *Tunnels) dialTarget(ctx context.Context, target string) (net.Conn, error) {
	inst, ok := strings.CutPrefix(target, TargetPrefix)
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
func (t *Tunnels) peer(key secure.PublicKey, name string) *peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[key]
	if p == nil {
		p = &peer{t: t, key: key, name: name, proxies: map[string]*proxy{}}
		t.peers[key] = p
	}
	return p
}

// dialLoop keeps a tunnel to r up: dial, serve, redial with backoff.
func (t *Tunnels) dialLoop(ctx context.Context, r Remote) {
	p := t.peer(r.Key, r.Addr)
	wait := backoff.Backoff{Min: t.cfg.RedialMin, Max: t.cfg.RedialMax}
	var fails repeatlog.Failures
	for ctx.Err() == nil {
		up, err := t.dialOnce(ctx, p, r)
		if ctx.Err() != nil {
			return
		}
		var refused *RefusedError
		if errors.As(err, &refused) {
			up = false // the remote said no: back off, do not reset
		}
		d := wait.Next()
		if up {
			wait.Reset()
			d = wait.Next()
			fails = repeatlog.Failures{}
			t.log.Info("tunnel: down, redialling", "remote", r.Addr, "err", err, "in", d.Round(time.Millisecond))
		} else {
			cause := dialCause(err)
			fails.Fail(t.log, "tunnel: cannot link to the remote; redialling with backoff", cause,
				"remote", r.Addr, "in", d.Round(time.Millisecond))
			n, _ := fails.Failing()
			p.setErr(cause, n)
		}
		backoff.Sleep(ctx, d)
	}
}

// dialCause says why a dial that never brought a link up failed, as the
// fix: the remote refused the handshake (with IK the dialler cannot tell a
// wrong --remote-key from a key missing from the remote's allow file: the
// responder closes without answering either way), nothing listens there,
// no such host.
func dialCause(err error) string {
	var dnsErr *net.DNSError
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		return "the remote refused this server's key (" + refused.Reason + "): add this server's public key to its allow file, then SIGHUP it"
	case err == nil:
		return "the link ended before it came up"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Sprintf("no such host %q: check the --tunnel address", dnsErr.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: is hydra-server running there, with tunnels on (--key-file and --allow-tunnels)? " + err.Error()
	case errors.Is(err, noise.ErrHandshake) && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)):
		// A server of this version tells a key it does not allow so after
		// the handshake (RefusedError); closing during it means it could
		// not read our first message, sealed to the pinned key.
		return "the remote closed the handshake unanswered: --remote-key is likely not its public key (or it is an older hydra-server that does not allow this server's key)"
	case errors.Is(err, noise.ErrHandshakeTimeout):
		return "the remote did not answer the handshake in time (a firewall, or not a hydra-server tunnel port?): " + err.Error()
	}
	return err.Error()
}

func (t *Tunnels) dialOnce(ctx context.Context, p *peer, r Remote) (up bool, err error) {
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
	// A misconfigured dialler fails the same way at every redial: say
	// each cause once (a key not allowed, a wrong key for this server).
	hlog := slog.New(repeatlog.Handler(t.log.Handler(), "noise: handshake failed", "noise: handshake refused", msgRefusedKey))
	// Noise completes the handshake with any key so that a key Allow
	// refuses can be told so (refuse), authenticated, instead of a bare
	// close it cannot tell from a wrong pinned key; such a link carries
	// nothing else.
	anyKey := secure.AuthorizerFunc(func(secure.PublicKey) bool { return t.cfg.Allow != nil })
	resp, err := noise.NewResponder(noise.Config{Static: t.cfg.Static, Peers: anyKey,
		HandshakeTimeout: t.cfg.DialTimeout, MaxHandshakes: t.cfg.MaxHandshakes,
		MaxHandshakesPerSource: t.cfg.MaxHandshakesPerSource, Logger: hlog})
	if err != nil {
		t.log.Error("tunnel: responder", "err", err)
		ln.Close()
		return
	}
	t.resp.Store(resp)
	// One accept loop (noise's, on the port's tunnel half): each link runs
	// on the goroutine of its handshake.
	sl := resp.Serve(ln, func(conn *noise.Conn) {
		key := conn.PeerKey()
		if !secure.Authorized(t.cfg.Allow, key) {
			hlog.Warn(msgRefusedKey, "err", "unknown key "+key.String(), "from", conn.RemoteAddr().String())
			t.refusedKeys.Add(1)
			t.refuse(conn, reasonUnknownKey)
			return
		}
		p := t.peer(key, "in:"+key.String()[:8])
		t.log.Info("tunnel: accepted", "from", conn.RemoteAddr(), "key", key.String())
		_, err := t.serveLink(ctx, p, conn, false)
		t.log.Info("tunnel: inbound down", "from", conn.RemoteAddr(), "err", err)
	})
	<-ctx.Done()
	sl.Close() // waits for every link's serveLink, which ctx ends
}

// serveLink runs one session over conn until it ends. up reports whether
// the control stream came up (the link worked, whatever ended it).
func (t *Tunnels) serveLink(ctx context.Context, p *peer, conn *noise.Conn, initiator bool) (up bool, err error) {
	mcfg := t.cfg.Mux
	var sess *mux.Session
	cc := countConn{Conn: conn, p: p}
	if initiator {
		sess, err = mux.Client(cc, &mcfg)
	} else {
		sess, err = mux.Server(cc, &mcfg)
	}
	if err != nil {
		conn.Close()
		return false, err
	}
	lctx, cancel := context.WithCancel(ctx)
	ctlw := &ctlWriter{}
	stop := context.AfterFunc(lctx, func() {
		if ctx.Err() != nil { // Run is ending: the peer withdraws our services at once
			farewell(sess, ctlw, Bye{})
		}
		sess.Close()
	})
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
		hdr, _ := mux.AppendHeader(nil, ControlTarget)
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
	ctlw.set(ctl)
	// The peer is up once its Hello came, not before: a remote that
	// refuses this server's key answers Refused instead, and the link
	// never counts as up.
	attached := false
	defer func() {
		if attached {
			p.detach(sess)
		}
	}()
	onHello := func() {
		p.attach(sess, ctlw, !initiator)
		attached = true
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := t.controlWriter(lctx, ctlw); err != nil {
			t.log.Debug("tunnel: control write", "peer", p.name, "err", err)
			ctl.Close()
		}
	}()
	err = t.controlReader(lctx, p, sess, ctl, onHello)
	var refused *RefusedError
	if !errors.As(err, &refused) && !errors.Is(err, errBye) && (errors.Is(err, io.EOF) || lctx.Err() != nil) {
		err = sessErr(sess, lctx)
	}
	return attached, err
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
	var ctlTaken atomic.Bool
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
			if target == ControlTarget {
				if wantCtl && ctlTaken.CompareAndSwap(false, true) {
					ctlCh <- st // buffered for this one stream
					return
				}
				mux.Abort(st) // one control stream per session
				return
			}
			if err := t.ss.ServeTarget(ctx, st, target); err != nil {
				t.log.Debug("tunnel: stream", "target", target, "err", err)
			}
		}()
	}
}

// controlReader reads the control stream: the peer's Hello (onHello runs
// at the first), then its shared sets, each applied to the peer's proxies.
func (t *Tunnels) controlReader(ctx context.Context, p *peer, sess *mux.Session, ctl net.Conn, onHello func()) error {
	var buf []byte
	hello := false
	for {
		b, err := readFrame(ctl, buf)
		if err != nil {
			return err
		}
		buf = b[:0]
		m, _, err := ParseMessage(b)
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case Hello:
			if !hello {
				onHello()
				t.log.Info("tunnel: up", "peer", p.name, "peer_server", m.Server, "remote", sess.RemoteAddr(), "key", p.key.String())
			}
			hello = true
			p.setServer(m.Server)
		case Refused:
			return &RefusedError{Reason: m.Reason}
		case Bye:
			t.log.Info("tunnel: the peer is shutting down; its services are withdrawn", "peer", p.name)
			p.bye(ctx, sess)
			return errBye
		case Services:
			if !hello {
				return fmt.Errorf("%w: %q before hello", ErrBadMessage, m.Type())
			}
			if err := t.checkLimits(m); err != nil {
				return err
			}
			p.apply(ctx, sess, t.importFilter(m.Entries))
		default:
			if !hello {
				return fmt.Errorf("%w: %q before hello", ErrBadMessage, m.Type())
			}
		}
	}
}

// checkLimits applies this server's bounds to what a peer shares.
func (t *Tunnels) checkLimits(m Services) error {
	if len(m.Entries) > t.cfg.MaxServices {
		return fmt.Errorf("%w: %d services shared, limit %d", ErrBadMessage, len(m.Entries), t.cfg.MaxServices)
	}
	for i, e := range m.Entries {
		if n := metaBytes(e.Meta); n > t.cfg.MaxMetadataBytes {
			return fmt.Errorf("%w: entry %d: metadata is %d bytes (keys plus values), the limit is %d", ErrBadMessage, i, n, t.cfg.MaxMetadataBytes)
		}
	}
	return nil
}

// controlWriter owns the control stream's writes: Hello, then the shared
// set once known and again at every change.
func (t *Tunnels) controlWriter(ctx context.Context, ctl *ctlWriter) error {
	b := Hello{Version: ControlVersion, Server: t.cfg.ServerID}.Append(nil)
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
		b = Services{Entries: entries}.Append(b[:0])
		if err := checkSize(b); err != nil {
			return err
		}
		if _, err := ctl.Write(b); err != nil {
			return err
		}
		select {
		case <-changed:
			backoff.Sleep(ctx, settle)
		case <-ctx.Done():
			return nil
		}
	}
}
