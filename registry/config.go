package registry

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hydra-net/hydra/internal/admission"
	"github.com/hydra-net/hydra/zmtp"
)

// Config configures a Server. The zero value is usable: every field says
// its default, applied when the field is zero.
type Config struct {
	// Logger receives the server's events. Default: discard.
	Logger *slog.Logger

	// ServerID names this server in every entry it originates (Entry.Origin)
	// and in PING/INFO replies: 1 to 64 bytes of [A-Za-z0-9._-].
	// Default: 16 random hex digits, new at every start.
	ServerID string

	// MaxEntries bounds the entries held in all. Default 100000.
	MaxEntries int
	// MaxEntriesPerClient bounds the entries one client (one token) holds.
	// Default 1024.
	MaxEntriesPerClient int
	// MaxMetadataBytes bounds an entry's metadata, keys plus values.
	// Default 4096.
	MaxMetadataBytes int
	// MaxRequestBytes bounds a request message, every frame counted plus
	// 16 bytes per frame. A peer that sends more is disconnected by the
	// ZMTP layer before anything is allocated (it cannot be answered).
	// Default 65536.
	MaxRequestBytes int64

	// DefaultTTL is the TTL of an entry registered without one. Default 30s.
	DefaultTTL time.Duration
	// MinTTL and MaxTTL bound the TTL a client may ask for; a request
	// outside gets a bad_request error. Defaults 1s and 24h.
	MinTTL time.Duration
	MaxTTL time.Duration
	// SweepInterval is how often expired entries are removed: an entry
	// lives at most TTL + SweepInterval after its last heartbeat.
	// Default min(MinTTL/4, 250ms).
	SweepInterval time.Duration

	// MaxWatches bounds the watches held in all, and MaxWatchesPerPeer
	// those of one connection. Defaults 4096 and 64.
	MaxWatches        int
	MaxWatchesPerPeer int
	// WatchKeepalive is how often a watch that saw no event gets a
	// keepalive event, by which the server finds watchers that went away
	// and watchers find a server that did. Default 15s.
	WatchKeepalive time.Duration

	// MaxListPage bounds the entries or names in one LIST reply; LIST pages
	// with a cursor beyond it. Default 1000.
	MaxListPage int
	// MaxListBytes bounds the bytes of entries' JSON in one LIST
	// entries=true page, which then ends early with a cursor: a page costs
	// the loop and the caller's queue about this much at most. Default
	// 1 MiB.
	MaxListBytes int

	// PeerHeartbeat is the ZMTP heartbeat (PING) interval towards each
	// connected peer; a peer silent for three intervals is dropped.
	// Default 10s; negative turns ZMTP heartbeats off.
	PeerHeartbeat time.Duration

	// MaxPendingBytes bounds the bytes of replies and events queued for one
	// peer that it has not read; a reply or event past it makes the peer a
	// slow consumer: its connection is closed, its watches dropped, and it
	// is counted (Stats.SlowConsumers). One reply bigger than it (a LIST
	// page) still goes to a peer with nothing pending. Default 4 MiB.
	MaxPendingBytes int64
	// MaxPendingTotal bounds those bytes for all peers together; past it
	// the peer with the most pending is cut off the same way. Default
	// 64 MiB.
	MaxPendingTotal int64
	// WriteTimeout is how long a write to a peer may make no progress
	// before the peer is cut off as a slow consumer. Default 10s; negative
	// turns it off.
	WriteTimeout time.Duration
	// HandshakesPerSource and Handshakes cap the accepted ZMTP connections
	// that have not finished their handshake, from one source address (an
	// IPv6 /64) and in all; past the total, the source holding the most
	// gives its oldest up to a newcomer from a source holding fewer
	// (zmtp.Config.Handshakes). Defaults 32 and 512; negative: no cap.
	HandshakesPerSource int
	Handshakes          int
	// ConnsPerSource and Conns cap the established ZMTP connections
	// likewise; one past them is refused with an ERROR command ("too many
	// connections from this address") and closed (zmtp.Config.Conns).
	// Defaults 256 and 4096; negative: no cap.
	ConnsPerSource int
	Conns          int

	// Static are services registered from configuration, for things that
	// cannot speak Hydra (sshd on :22): they never expire and no client may
	// change them. Their TTL is ignored.
	Static []Service

	// Security makes the ZMTP security mechanism of each connection
	// (CURVE from package zmtp/curve). Default: NULL.
	Security func() zmtp.Mechanism

	// Replicator, if set, shares this server's entries with other servers
	// and applies theirs (package join; PROTOCOL.md, "Join (server sync)").
	// The server calls it from its loop (see Replicator). Default nil: the
	// server joins nobody and answers JOIN with bad_request and SYNC with
	// unknown_verb.
	Replicator Replicator

	// Authorize says whether peer p may act in role r (see Role: which
	// verbs need which). It runs on the server's loop for every request
	// that needs more than any role, and from Recheck's goroutine: it must
	// be safe for concurrent use and must not block.
	// Default nil: DefaultAuthorize (clients anyone, servers nobody, admins
	// only loopback, ipc and inproc peers).
	Authorize func(p Peer, r Role) bool

	// Info, if set, adds objects to the INFO reply, by key (node adds
	// "version" and "tunnels"); keys the reply has already are ignored. It
	// runs on the server's loop and must not block. Default nil.
	Info func() map[string]any
}

// Defaults of Config's fields.
const (
	DefaultMaxEntries          = 100000
	DefaultMaxEntriesPerClient = 1024
	DefaultMaxMetadataBytes    = 4096
	DefaultMaxRequestBytes     = 64 << 10
	DefaultTTL                 = 30 * time.Second
	DefaultMinTTL              = time.Second
	DefaultMaxTTL              = 24 * time.Hour
	DefaultMaxWatches          = 4096
	DefaultMaxWatchesPerPeer   = 64
	DefaultWatchKeepalive      = 15 * time.Second
	DefaultMaxListPage         = 1000
	DefaultMaxListBytes        = 1 << 20
	DefaultPeerHeartbeat       = 10 * time.Second
	DefaultMaxPendingBytes     = 4 << 20
	DefaultMaxPendingTotal     = 64 << 20
	DefaultWriteTimeout        = 10 * time.Second
	DefaultHandshakesPerSource = 32
	DefaultHandshakes          = 512
	DefaultConnsPerSource      = 256
	DefaultConns               = 4096
)

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ServerID == "" {
		c.ServerID = randomHex(8)
	}
	setDefault(&c.MaxEntries, DefaultMaxEntries)
	setDefault(&c.MaxEntriesPerClient, DefaultMaxEntriesPerClient)
	setDefault(&c.MaxMetadataBytes, DefaultMaxMetadataBytes)
	setDefault(&c.MaxRequestBytes, DefaultMaxRequestBytes)
	setDefault(&c.MinTTL, DefaultMinTTL)
	setDefault(&c.MaxTTL, DefaultMaxTTL)
	if c.DefaultTTL == 0 {
		c.DefaultTTL = min(max(DefaultTTL, c.MinTTL), c.MaxTTL)
	}
	setDefault(&c.SweepInterval, min(c.MinTTL/4, 250*time.Millisecond))
	setDefault(&c.MaxWatches, DefaultMaxWatches)
	setDefault(&c.MaxWatchesPerPeer, DefaultMaxWatchesPerPeer)
	setDefault(&c.WatchKeepalive, DefaultWatchKeepalive)
	setDefault(&c.MaxListPage, DefaultMaxListPage)
	setDefault(&c.MaxListBytes, DefaultMaxListBytes)
	setDefault(&c.PeerHeartbeat, DefaultPeerHeartbeat)
	setDefault(&c.MaxPendingBytes, DefaultMaxPendingBytes)
	setDefault(&c.MaxPendingTotal, DefaultMaxPendingTotal)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.HandshakesPerSource, DefaultHandshakesPerSource)
	setDefault(&c.Handshakes, DefaultHandshakes)
	setDefault(&c.ConnsPerSource, DefaultConnsPerSource)
	setDefault(&c.Conns, DefaultConns)
	return c
}

func setDefault[T int | int64 | time.Duration](p *T, def T) {
	if *p == 0 {
		*p = def
	}
}

// Validate reports the first inconsistent setting of c (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := checkID("ServerID", c.ServerID); err != nil {
		return fmt.Errorf("registry: config: %s", err.Message)
	}
	for _, v := range []struct {
		name string
		n    int64
	}{
		{"MaxEntries", int64(c.MaxEntries)}, {"MaxEntriesPerClient", int64(c.MaxEntriesPerClient)},
		{"MaxMetadataBytes", int64(c.MaxMetadataBytes)}, {"MaxRequestBytes", c.MaxRequestBytes},
		{"MinTTL", int64(c.MinTTL)}, {"MaxTTL", int64(c.MaxTTL)}, {"DefaultTTL", int64(c.DefaultTTL)},
		{"SweepInterval", int64(c.SweepInterval)}, {"MaxWatches", int64(c.MaxWatches)},
		{"MaxWatchesPerPeer", int64(c.MaxWatchesPerPeer)}, {"WatchKeepalive", int64(c.WatchKeepalive)},
		{"MaxListPage", int64(c.MaxListPage)}, {"MaxListBytes", int64(c.MaxListBytes)},
		{"MaxPendingBytes", c.MaxPendingBytes}, {"MaxPendingTotal", c.MaxPendingTotal},
	} {
		if v.n < 0 {
			return fmt.Errorf("registry: config: %s is negative", v.name)
		}
	}
	if c.MaxPendingBytes > c.MaxPendingTotal {
		return fmt.Errorf("registry: config: MaxPendingBytes %d is above MaxPendingTotal %d", c.MaxPendingBytes, c.MaxPendingTotal)
	}
	if c.MinTTL > c.MaxTTL {
		return fmt.Errorf("registry: config: MinTTL %v is above MaxTTL %v", c.MinTTL, c.MaxTTL)
	}
	if c.DefaultTTL < c.MinTTL || c.DefaultTTL > c.MaxTTL {
		return fmt.Errorf("registry: config: DefaultTTL %v is outside [MinTTL %v, MaxTTL %v]", c.DefaultTTL, c.MinTTL, c.MaxTTL)
	}
	if c.MaxEntriesPerClient > c.MaxEntries {
		return fmt.Errorf("registry: config: MaxEntriesPerClient %d is above MaxEntries %d", c.MaxEntriesPerClient, c.MaxEntries)
	}
	if c.MaxRequestBytes < 1024 {
		return fmt.Errorf("registry: config: MaxRequestBytes %d is below 1024", c.MaxRequestBytes)
	}
	if int64(c.MaxMetadataBytes) >= c.MaxRequestBytes {
		return fmt.Errorf("registry: config: MaxMetadataBytes %d must be below MaxRequestBytes %d", c.MaxMetadataBytes, c.MaxRequestBytes)
	}
	return nil
}

// limiter makes the admission.Limiter of a pair of caps (negative: none);
// nil when neither caps anything.
func limiter(perSource, total int, evict bool) *admission.Limiter {
	if perSource <= 0 && total <= 0 {
		return nil
	}
	return admission.New(admission.Config{PerSource: max(perSource, 0), Total: max(total, 0), Evict: evict})
}

// quieter passes records to h one level lower: the ZMTP layer's per-peer
// news (connected, dropped) is debugging detail for a registry, whose
// clients come and go all the time.
type quieter struct{ h slog.Handler }

func (q quieter) Enabled(ctx context.Context, l slog.Level) bool {
	return q.h.Enabled(ctx, demote(l))
}

func (q quieter) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return q.h.Handle(ctx, r)
}

func (q quieter) WithAttrs(as []slog.Attr) slog.Handler { return quieter{q.h.WithAttrs(as)} }
func (q quieter) WithGroup(name string) slog.Handler    { return quieter{q.h.WithGroup(name)} }

func demote(l slog.Level) slog.Level {
	if l == slog.LevelInfo {
		return slog.LevelDebug
	}
	return l
}
