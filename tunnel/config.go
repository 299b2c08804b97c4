package tunnel

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hydra-net/hydra/internal/netaddr"
	"github.com/hydra-net/hydra/mux"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/secure/noise"
)

// Defaults of Config's fields.
const (
	DefaultProxyHost        = "127.0.0.1"
	DefaultRedialMin        = 250 * time.Millisecond
	DefaultRedialMax        = 10 * time.Second
	DefaultGrace            = time.Minute
	DefaultMaxServices      = 1024
	DefaultMaxMetadataBytes = registry.DefaultMaxMetadataBytes
	DefaultDialTimeout      = 10 * time.Second
	DefaultStreamWindow     = 8 << 20
	DefaultMaxStreams       = 256
	DefaultAcceptBacklog    = 64
	DefaultKeepAlive        = 2 * time.Second
	DefaultLiveness         = 6 * time.Second
)

// Remote is a server to keep a tunnel to.
type Remote struct {
	// Addr is HOST or HOST:PORT of the remote's Hydra port
	// (netaddr.DefaultPort when omitted; IPv6 as [::1]:8420).
	Addr string
	// Key is the remote server's public key: the handshake is pinned to it.
	Key secure.PublicKey
}

// Config configures a server's tunnels. Every field says its default.
type Config struct {
	// ServerID is the local server's id (registry.Server.ID), required:
	// entries of that origin are the ones shared, and the far side learns
	// it in Hello.
	ServerID string
	// Static is this server's key pair (required): its identity on tunnels.
	Static secure.KeyPair
	// Allow decides which servers may dial tunnels to this one (by their
	// static key). Default nil: nobody; this server then only dials.
	Allow secure.Authorizer
	// Remotes are the servers to keep tunnels to. Default none.
	Remotes []Remote
	// Cipher is the AEAD asked for on tunnels this server dials. Default
	// noise.CipherAuto (AES-GCM with AES hardware, else ChaCha20-Poly1305).
	Cipher noise.Cipher

	// ProxyHost is the address proxy listeners bind. Default 127.0.0.1:
	// a proxy answers without any authentication, so only the operator's
	// explicit choice puts one beyond loopback.
	ProxyHost string
	// AdvertiseHost is the host proxy entries are registered with.
	// Default: the address the listener really bound (ProxyHost's IP; for
	// an unspecified ProxyHost such as 0.0.0.0, that address, so the entry
	// never claims less exposure than there is).
	AdvertiseHost string

	// Export lists the names (or path.Match globs) of this server's
	// services shared over its tunnels. Default nil: every service except
	// those bound to loopback (a host of 127.0.0.0/8, ::1 or "localhost"),
	// which were kept off the network on purpose and cross a tunnel only
	// when a pattern here names them. A set Export shares exactly what it
	// matches ("*": everything, loopback included).
	Export []string
	// Import lists the names (or globs) of the far sides' services this
	// server registers proxies for. Default nil: every one they export.
	Import []string
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
	// remote (internal/backoff: doubling, jittered). Defaults 250ms and 10s.
	RedialMin, RedialMax time.Duration
	// Grace is how long the proxy listeners of a peer keep their ports
	// after its last session ended (their entries leave the registry at
	// once, and return with the same addresses if a session does).
	// Default 1m.
	Grace time.Duration
	// MaxServices bounds the instances one peer may share with us; a peer
	// sending more loses its tunnel. Default 1024.
	MaxServices int
	// MaxMetadataBytes bounds a shared entry's metadata (keys plus values);
	// a peer sending more loses its tunnel. Default 4096
	// (registry.DefaultMaxMetadataBytes).
	MaxMetadataBytes int
	// DialTimeout bounds the TCP dial and the handshake of a tunnel, and
	// the dial of a service for a stream. Default 10s.
	DialTimeout time.Duration
	// MaxHandshakes and MaxHandshakesPerSource bound the inbound
	// handshakes running at once, in all and per source address (see
	// noise.Config). Defaults 512 and 32 (noise's).
	MaxHandshakes, MaxHandshakesPerSource int

	// Logger receives tunnel events. Default: discard.
	Logger *slog.Logger
}

// bad is Validate's error: the first bad field, by its Go name (Remotes for
// any remote's), and what is wrong with it.
func bad(field, format string, args ...any) error {
	return fmt.Errorf("tunnel: config: %s: %s", field, fmt.Sprintf(format, args...))
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ProxyHost == "" {
		c.ProxyHost = DefaultProxyHost
	}
	setDefault(&c.RedialMin, DefaultRedialMin)
	setDefault(&c.RedialMax, DefaultRedialMax)
	setDefault(&c.Grace, DefaultGrace)
	setDefault(&c.MaxServices, DefaultMaxServices)
	setDefault(&c.MaxMetadataBytes, DefaultMaxMetadataBytes)
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	if c.Mux.StreamWindow == 0 {
		c.Mux.StreamWindow = DefaultStreamWindow
	}
	setDefault(&c.Mux.MaxStreams, DefaultMaxStreams)
	if c.Mux.AcceptBacklog == 0 {
		c.Mux.AcceptBacklog = min(DefaultAcceptBacklog, c.Mux.MaxStreams)
	}
	setDefault(&c.Mux.KeepAliveInterval, DefaultKeepAlive)
	setDefault(&c.Mux.LivenessTimeout, max(DefaultLiveness, 3*c.Mux.KeepAliveInterval))
	if c.Mux.Logger == nil {
		c.Mux.Logger = c.Logger
	}
	return c
}

func setDefault[T int | time.Duration](p *T, def T) {
	if *p == 0 {
		*p = def
	}
}

// Validate reports the first field of c that is not usable, by its Go name.
func (c Config) Validate() error {
	if err := registry.CheckID("ServerID", c.ServerID); err != nil {
		return bad("ServerID", "%s", reason(err))
	}
	if c.Static.Public.IsZero() {
		return bad("Static", "no key pair (a key file is required for tunnels)")
	}
	for _, r := range c.Remotes {
		if _, err := netaddr.ParseHostPort(r.Addr); err != nil {
			return bad("Remotes", "address %v", err)
		}
		if r.Key.IsZero() {
			return bad("Remotes", "tunnel to %s: no remote key", r.Addr)
		}
	}
	if c.ProxyHost != "" {
		if err := netaddr.CheckHost(c.ProxyHost); err != nil {
			return bad("ProxyHost", "%v", err)
		}
	}
	for _, f := range []struct {
		name string
		pats []string
	}{{"Export", c.Export}, {"Import", c.Import}} {
		if err := checkPatterns(f.pats); err != nil {
			return bad(f.name, "%v", err)
		}
	}
	if (c.PortMin != 0 || c.PortMax != 0) && (c.PortMin < 1 || c.PortMax > 65535 || c.PortMin > c.PortMax) {
		return bad("PortMin", "proxy port range %d-%d: want 1 <= min <= max <= 65535", c.PortMin, c.PortMax)
	}
	d := c.withDefaults()
	switch {
	case c.RedialMin < 0:
		return bad("RedialMin", "negative (%v)", c.RedialMin)
	case d.RedialMax < d.RedialMin:
		return bad("RedialMax", "%v below RedialMin %v", d.RedialMax, d.RedialMin)
	case c.Grace < 0:
		return bad("Grace", "negative (%v)", c.Grace)
	case c.MaxServices < 0:
		return bad("MaxServices", "negative (%d)", c.MaxServices)
	case c.MaxMetadataBytes < 0:
		return bad("MaxMetadataBytes", "negative (%d)", c.MaxMetadataBytes)
	case c.DialTimeout < 0:
		return bad("DialTimeout", "negative (%v)", c.DialTimeout)
	case c.MaxHandshakes < 0:
		return bad("MaxHandshakes", "negative (%d)", c.MaxHandshakes)
	case c.MaxHandshakesPerSource < 0:
		return bad("MaxHandshakesPerSource", "negative (%d)", c.MaxHandshakesPerSource)
	}
	if err := d.Mux.Validate(); err != nil {
		// mux names its own field: "Mux.StreamWindow 1 outside [...]".
		return fmt.Errorf("tunnel: config: Mux.%s", strings.TrimPrefix(err.Error(), "mux: "))
	}
	return nil
}
