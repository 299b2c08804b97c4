package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/hydra-net/hydra/catalog"
	"github.com/hydra-net/hydra/dnsserver"
	"github.com/hydra-net/hydra/internal/netaddr"
	"github.com/hydra-net/hydra/internal/portshare"
	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
	"github.com/hydra-net/hydra/zmtp"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// Config is everything a running server is made of. The zero value is a
// registry on 127.0.0.1:8420 with NULL security, no join peers (joining
// servers are accepted) and no tunnels.
type Config struct {
	// Logger receives every part's events. Default: discard.
	Logger *slog.Logger

	// Endpoint is where the registry listens: tcp://HOST:PORT or
	// ipc://PATH. Tunnels share a tcp:// port. Default tcp://127.0.0.1:8420.
	Endpoint string

	// Registry configures the registry server. Node sets its Logger (when
	// nil), Security (from Keys, Curve and Allow) and Replicator (join).
	Registry registry.Config

	// Join configures replication with other servers. Node sets its
	// Security from JoinKeys and CurveTo when Curve is on, and its Signer
	// from Keys when TrustOrigin is set (signed origin records: the
	// registry's ServerID is then join.OriginID of the signing key).
	Join join.Config

	// Keys is this server's key pair: its identity on tunnels and, with
	// Curve, on the ZMTP port. Default nil: no tunnels, no CURVE.
	Keys *secure.KeyPair
	// Access says who may do what, one list per role (see Access).
	// Default: the zero Access (see its fields).
	Access Access
	// Curve runs CURVE on the ZMTP port with Keys. Default false (NULL).
	Curve bool
	// JoinKeys pins the public key of each joined server (by the HOST:PORT
	// join.ParseAddr gives) for CURVE join links; with Curve, every peer of
	// Join.Peers needs one. Default none.
	JoinKeys map[string]secure.PublicKey

	// Version is the software's version, INFO's "version". Default "":
	// left out.
	Version string

	// Tunnel configures tunnels; they run when Keys is set and there are
	// Tunnel.Remotes to dial or an Access.Tunnels to accept with. Node sets
	// its Static key, Allow (Access.Tunnels), ServerID, Logger, and
	// MaxHandshakes and MaxHandshakesPerSource (from Limits). Default: no
	// remotes.
	Tunnel tunnel.Config

	// HTTP is the HTTP listener (node/http.go). Default: off.
	HTTP HTTPConfig
	// DNS is the DNS server (node/dns.go). Default: off.
	DNS DNSConfig

	// Limits bound connections and queued bytes per peer, per source
	// address and in all (node/limits.go). Default: the zero Limits.
	Limits Limits
}

// ConfigError is a problem with a Config, naming the field by its path in
// Config ("Join.Grace", "Tunnel.Remotes"): cmd/hydra-server maps paths to
// flag names.
type ConfigError struct {
	Field string // path of the field in Config
	Err   error  // the part's own error, naming its fields by their Go names
}

func (e *ConfigError) Error() string { return "node: " + e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Endpoint == "" {
		c.Endpoint = netaddr.DefaultEndpoint
	}
	if c.Registry.Logger == nil {
		c.Registry.Logger = c.Logger
	}
	// A servers' list that names each server's signing key (KEY.pub
	// content) is what join trusts origins by: the fleet signs.
	if al, ok := c.Access.Servers.(*secure.AllowList); ok && al.Servers() && c.Join.TrustOrigin == nil && c.Keys != nil {
		c.Join.TrustOrigin = al.TrustsSigner
	}
	if c.Keys != nil && c.Join.TrustOrigin != nil && c.Join.Signer == nil {
		s := c.Keys.Signer()
		c.Join.Signer = &s
	}
	return c
}

// tunnels reports whether tunnels run: keys, and something to dial or accept.
func (c Config) tunnels() bool {
	return c.Keys != nil && (len(c.Tunnel.Remotes) > 0 || c.Access.Tunnels != nil)
}

// Validate reports the first problem of c as a *ConfigError.
func (c Config) Validate() error {
	c = c.withDefaults()
	if !strings.HasPrefix(c.Endpoint, "tcp://") && !strings.HasPrefix(c.Endpoint, "ipc://") {
		return &ConfigError{"Endpoint", fmt.Errorf("%q: want tcp://HOST:PORT or ipc://PATH", c.Endpoint)}
	}
	if err := c.Registry.Validate(); err != nil {
		return &ConfigError{"Registry", err}
	}
	if err := c.Join.Validate(); err != nil {
		return &ConfigError{"Join", err}
	}
	if s := c.Join.Signer; s != nil && c.Registry.ServerID != "" && c.Registry.ServerID != join.OriginID(s.Public) {
		return &ConfigError{"Registry.ServerID", fmt.Errorf("%q: with signed join records the id is the signing key's, %s (leave it unset)", c.Registry.ServerID, join.OriginID(s.Public))}
	}
	if c.Keys == nil {
		switch {
		case c.Curve:
			return &ConfigError{"Curve", errors.New("needs Keys (this server's key pair)")}
		case len(c.Tunnel.Remotes) > 0:
			return &ConfigError{"Tunnel.Remotes", errors.New("need Keys (this server's key pair)")}
		case c.Access.Tunnels != nil:
			return &ConfigError{"Access.Tunnels", errors.New("needs Keys (this server's key pair)")}
		}
	}
	if err := c.Access.validate(c.Curve); err != nil {
		return err
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if len(c.JoinKeys) > 0 && !c.Curve {
		return &ConfigError{"JoinKeys", errors.New("need Curve (join links are CURVE only when the port is)")}
	}
	if c.Curve {
		for _, p := range c.Join.Peers {
			addr, err := join.ParseAddr(p)
			if err != nil {
				return &ConfigError{"Join.Peers", err}
			}
			if _, ok := c.JoinKeys[addr]; !ok {
				return &ConfigError{"JoinKeys", fmt.Errorf("no key for join peer %s: with Curve each needs its public key", addr)}
			}
		}
	}
	if c.tunnels() && !strings.HasPrefix(c.Endpoint, "tcp://") {
		return &ConfigError{"Endpoint", fmt.Errorf("%q: tunnels need a tcp:// endpoint", c.Endpoint)}
	}
	if err := c.HTTP.Validate(); err != nil {
		return &ConfigError{"HTTP", err}
	}
	if err := c.DNS.Validate(); err != nil {
		return &ConfigError{"DNS", err}
	}
	if c.Keys != nil { // checked even when no tunnel runs yet: a mistake is a mistake
		t := c.tunnelConfig("validate")
		if err := t.Validate(); err != nil {
			return &ConfigError{"Tunnel", err}
		}
	}
	return nil
}

func (c Config) tunnelConfig(serverID string) tunnel.Config {
	t := c.Tunnel
	t.Static, t.Allow, t.ServerID = *c.Keys, c.Access.Tunnels, serverID
	lim := c.Limits.withDefaults()
	t.MaxHandshakes, t.MaxHandshakesPerSource = lim.Handshakes, lim.HandshakesPerSource
	if t.Logger == nil {
		t.Logger = c.Logger
	}
	return t
}

// Node is one running server, made by New and run by Run.
type Node struct {
	cfg   Config
	log   *slog.Logger
	acc   *access
	srv   *registry.Server
	join  *join.Join
	share *portshare.Listener // nil without tunnels
	tun   *tunnel.Tunnels     // nil without tunnels
	cat   *catalog.Catalog
	http  *httpServer
	dns   *dnsserver.Server // nil: off
}

// wireOutputLimits gives the registry the byte budgets and write
// deadline of Limits, unless Config.Registry sets its own.
func (n *Node) wireOutputLimits(rcfg *registry.Config) {
	l := n.cfg.Limits.withDefaults()
	if rcfg.MaxPendingBytes == 0 {
		rcfg.MaxPendingBytes = l.PendingBytes
	}
	if rcfg.MaxPendingTotal == 0 {
		rcfg.MaxPendingTotal = l.PendingTotal
	}
	if rcfg.WriteTimeout == 0 {
		rcfg.WriteTimeout = l.WriteTimeout
	}
}

// New checks cfg, builds the server and binds its port (so Endpoint is
// known, with the real port of a :0), but serves nothing until Run.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{cfg: cfg, log: cfg.Logger}
	n.acc = newAccess(cfg.Access, cfg.Curve, cfg.Join.Peers, cfg.Logger)
	rcfg := cfg.Registry
	lim := cfg.Limits.withDefaults()
	rcfg.HandshakesPerSource, rcfg.Handshakes = lim.HandshakesPerSource, lim.Handshakes
	rcfg.ConnsPerSource, rcfg.Conns = lim.ConnsPerSource, lim.Conns
	jcfg := cfg.Join
	if rcfg.Authorize == nil { // a test may set its own
		rcfg.Authorize = n.acc.authorize
	}
	n.wireOutputLimits(&rcfg)
	if jcfg.Signer != nil {
		rcfg.ServerID = join.OriginID(jcfg.Signer.Public) // an origin id names its key
	}
	if cfg.Curve {
		rcfg.Security = curve.Server(*cfg.Keys, secure.AuthorizerFunc(n.acc.curvePeer))
		kp, keys := *cfg.Keys, cfg.JoinKeys
		jcfg.Security = func(addr string) func() zmtp.Mechanism {
			if pub, ok := keys[addr]; ok {
				return curve.Client(kp, pub)
			}
			return nil
		}
		jcfg.CurveTo = func(pub secure.PublicKey) func() zmtp.Mechanism { return curve.Client(kp, pub) }
	}
	var err error
	if n.join, err = join.New(jcfg); err != nil {
		return nil, err
	}
	rcfg.Replicator = n.join
	rcfg.Info = n.info
	if n.srv, err = registry.NewServer(rcfg); err != nil {
		return nil, err
	}
	if err := n.bind(); err != nil {
		n.srv.Close()
		return nil, err
	}
	n.cat = catalog.New(n.srv.Local())
	if err := n.bindHTTP(); err != nil {
		n.close()
		return nil, err
	}
	if err := n.bindDNS(); err != nil {
		n.close()
		return nil, err
	}
	if err := n.mountObserve(); err != nil { // metrics, /healthz, the status page (observe.go)
		n.close()
		return nil, err
	}
	if cfg.tunnels() {
		if n.tun, err = tunnel.New(cfg.tunnelConfig(n.srv.ID()), n.srv.Local()); err != nil {
			n.close()
			return nil, err
		}
	}
	return n, nil
}

// info is what node adds to INFO (registry.Config.Info): "version" and
// "tunnels", every tunnel peer's state (tunnel.LinkInfo). Tunnels reach the
// registry this way, as a hook of the reply, so that registry knows nothing
// of tunnels: Links takes the tunnels' own locks, never held while they
// wait for the registry's loop.
func (n *Node) info() map[string]any {
	m := map[string]any{}
	if n.cfg.Version != "" {
		m["version"] = n.cfg.Version
	}
	if n.tun != nil {
		links := n.tun.Links()
		if links == nil {
			links = []tunnel.LinkInfo{}
		}
		m["tunnels"] = links
	}
	return m
}

// bind binds the registry: with tunnels, through a listener that hands ZMTP
// peers to the registry and tunnel handshakes to the tunnels (one port).
func (n *Node) bind() error {
	if !n.cfg.tunnels() {
		return n.srv.Bind(n.cfg.Endpoint)
	}
	ln, err := zmtp.Listen(n.cfg.Endpoint)
	if err != nil {
		return err
	}
	lim := n.cfg.Limits.withDefaults()
	pcfg := portshare.Config{MaxPending: lim.Handshakes, MaxPendingPerSource: lim.HandshakesPerSource, Logger: n.log}
	if n.share, err = portshare.New(ln, pcfg); err != nil {
		ln.Close()
		return err
	}
	return n.srv.BindListener(n.share.ZMTP())
}

// Endpoint is the registry's endpoint, with the real port.
func (n *Node) Endpoint() string { return n.srv.Endpoint() }

// Addr is HOST:PORT of a tcp:// endpoint (the path of an ipc:// one).
func (n *Node) Addr() string {
	_, rest, _ := strings.Cut(n.Endpoint(), "://")
	return rest
}

// Server is the registry server.
func (n *Node) Server() *registry.Server { return n.srv }

// Join is the join replicator.
func (n *Node) Join() *join.Join { return n.join }

// Tunnels is the tunnel manager, nil when tunnels are off.
func (n *Node) Tunnels() *tunnel.Tunnels { return n.tun }

// Catalog is the read model of every visible entry (local, joined,
// tunnelled), current while Run runs: what HTTP and DNS answer from.
func (n *Node) Catalog() *catalog.Catalog { return n.cat }

// Secure reports whether the ZMTP port runs CURVE.
func (n *Node) Secure() bool { return n.cfg.Curve }

// Run serves until ctx ends (or the registry stops by itself), then stops
// gracefully: tunnels first, withdrawing their proxies while the registry
// still serves, then the registry, flushing its replies. It returns nil
// after a stop that ctx asked for. Run may be called once.
func (n *Node) Run(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- n.srv.Serve(context.Background()) }()
	catCtx, catCancel := context.WithCancel(context.Background())
	catDone := make(chan struct{})
	go func() {
		defer close(catDone)
		if err := n.cat.Run(catCtx); err != nil && catCtx.Err() == nil {
			n.log.Debug("catalog: stopped", "err", err) // the registry stopped: Run is returning
		}
	}()
	stopDNS := n.serveDNS()
	httpDone := make(chan error, 1)
	go func() { httpDone <- n.http.serve() }()
	stopHTTP := func() {
		n.http.stop()
		if herr := <-httpDone; herr != nil {
			n.log.Warn("http: stopped", "err", herr)
		}
	}
	var tunCancel context.CancelFunc = func() {}
	tunDone := make(chan error, 1)
	if n.tun != nil {
		var tctx context.Context
		tctx, tunCancel = context.WithCancel(context.Background())
		var in net.Listener
		if n.cfg.Access.Tunnels != nil {
			in = n.share.Tunnels()
		}
		go func() { tunDone <- n.tun.Run(tctx, in) }()
	} else {
		tunDone <- nil
	}
	stopTunnels := func() {
		tunCancel()
		if terr := <-tunDone; terr != nil && !errors.Is(terr, context.Canceled) {
			n.log.Warn("tunnel: stopped", "err", terr)
		}
	}
	var err error
	select {
	case err = <-served:
		stopDNS()
		stopHTTP()
		stopTunnels()
	case <-ctx.Done():
		stopDNS()
		stopHTTP()
		stopTunnels()
		// Joined servers drop this one's entries now, not after the grace.
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n.join.Depart(dctx)
		cancel()
		n.srv.Close()
		if err = <-served; errors.Is(err, registry.ErrClosed) {
			err = nil // a stop before Serve even started is still a clean stop
		}
	}
	catCancel()
	<-catDone
	n.close()
	return err
}

// Close stops a node that never ran (Run stops it by itself).
func (n *Node) Close() error {
	n.close()
	return nil
}

func (n *Node) close() {
	if n.http != nil {
		n.http.close()
	}
	if n.dns != nil {
		n.dns.Close()
	}
	n.srv.Close()
	if n.share != nil {
		n.share.Close()
	}
}

// Reload re-reads what can change at run time, on SIGHUP: every role's
// list backed by a file (secure.AllowList), without Curve the addresses of
// the Join.Peers, and the HTTP token file. A list whose file is bad keeps
// its old keys (the error names the file and why; the other lists are
// still re-read). Then every established connection is checked again: a
// ZMTP peer whose key lost every role is dropped (registry.Server.Recheck),
// and a tunnel whose key is off Access.Tunnels closes (tunnel Recheck),
// within a second. reloaded reports whether any list has a file.
func (n *Node) Reload() (reloaded bool, err error) {
	reloaded, err = n.acc.reload()
	tok, terr := n.http.reloadTokens()
	n.srv.Recheck()
	if n.tun != nil {
		n.tun.Recheck()
	}
	return reloaded || tok, errors.Join(err, terr)
}
