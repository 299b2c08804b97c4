package join

import (
	"errors"
	"fmt"
	"time"

	"github.com/hydra-net/hydra/internal/netaddr"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp"
)

// Defaults of Config's fields.
const (
	DefaultInterval  = time.Second
	DefaultGrace     = 30 * time.Second
	DefaultRedialMax = 10 * time.Second
	DefaultMaxPeers  = 64
)

// Fixed bounds of what links make a server hold.
const (
	maxOrigins      = 4096     // origins known at once
	maxInboundLinks = 1024     // links other servers dialled to us
	maxLinkQueue    = 64 << 20 // bytes queued for one dialled link's writer
)

// Config configures how a server shares its registry with others. The
// zero value joins nobody but accepts links.
type Config struct {
	// Peers are the servers to join at start: HOST, HOST:PORT or
	// tcp://HOST:PORT (port 8420 when omitted). More can be joined at run
	// time with the JOIN verb. Default none.
	Peers []string

	// Interval is how often each link carries a digest and this server's
	// beat. Default 1s.
	Interval time.Duration
	// Timeout drops a link on which nothing arrived for this long; a link
	// this server dialled is then dialled again. Default 5 × Interval.
	Timeout time.Duration
	// Grace is how long the entries of an origin stay after its beat was
	// last heard (through any link): then they expire. It must be well over
	// Interval times the number of hops between the farthest servers.
	// Default 30s.
	Grace time.Duration
	// RedialMax caps the backoff between attempts to dial a peer; the
	// first wait is Interval, doubling after each failed attempt. Default 10s.
	RedialMax time.Duration
	// MaxPeers bounds the peers this server dials (Peers and JOIN).
	// Default 64.
	MaxPeers int

	// Security, if set, makes the ZMTP security mechanism of links this
	// server dials to addr (HOST:PORT): CURVE's client side with the peer's
	// public key (package secure). Default nil: NULL, for trusted networks.
	// Links other servers dial to this one use the registry's
	// Config.Security like any client.
	Security func(addr string) func() zmtp.Mechanism
	// CurveTo, if set, makes the CURVE client mechanism for a link to the
	// server whose public key is given: set on a CURVE server (node does).
	// A run-time JOIN must then carry the peer's key, and no join link is
	// ever NULL (a peer Security gives no mechanism for is refused).
	// Default nil.
	CurveTo func(peer secure.PublicKey) func() zmtp.Mechanism

	// Signer, if set, signs the records of this server's origin (its
	// changes, snapshots, beats and leave), and records of every origin are
	// then taken only with their origin's valid signature (PROTOCOL.md,
	// "Signed records"). The server's id (registry.Config.ServerID) must be
	// OriginID(Signer.Public). Default nil: nothing is signed or checked,
	// for trusted networks; a fleet signs everywhere or nowhere.
	Signer *secure.Signer
	// TrustOrigin decides whose records are taken, by the signing key the
	// origin id names: the servers' list. Required with Signer. Called on
	// the server's loop: it must be quick, and safe while the list reloads.
	TrustOrigin func(secure.SignPublicKey) bool

	// OnLink is called from the server's loop whenever a link this server
	// dialled comes up (the peer's initial state applied) or goes down. It
	// must return quickly. Default nil.
	OnLink func(LinkEvent)
}

// LinkEvent reports a dialled link coming up or going down.
type LinkEvent struct {
	Addr   string // HOST:PORT as dialled
	Peer   string // the peer's server id
	Up     bool
	Reason string // why it went down
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * c.Interval
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.RedialMax == 0 {
		c.RedialMax = DefaultRedialMax
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	return c
}

// Validate reports the first bad field of c (after defaults), by its Go
// field name.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Interval", int64(c.Interval)}, {"Timeout", int64(c.Timeout)}, {"Grace", int64(c.Grace)},
		{"RedialMax", int64(c.RedialMax)}, {"MaxPeers", int64(c.MaxPeers)},
	} {
		if f.v < 0 {
			return fmt.Errorf("join: config: %s is negative", f.name)
		}
	}
	switch {
	case c.Timeout < 2*c.Interval:
		return fmt.Errorf("join: config: Timeout %v must be at least twice Interval %v", c.Timeout, c.Interval)
	case c.Grace < c.Timeout:
		return fmt.Errorf("join: config: Grace %v must be at least Timeout %v", c.Grace, c.Timeout)
	case c.Signer != nil && c.TrustOrigin == nil:
		return errors.New("join: config: TrustOrigin is required with Signer (whose records to take)")
	case c.Signer == nil && c.TrustOrigin != nil:
		return errors.New("join: config: TrustOrigin needs Signer (records are checked only when this server signs its own)")
	case len(c.Peers) > c.MaxPeers:
		return fmt.Errorf("join: config: Peers: %d peers, more than MaxPeers %d", len(c.Peers), c.MaxPeers)
	}
	for _, p := range c.Peers {
		if _, err := ParseAddr(p); err != nil {
			return fmt.Errorf("join: config: Peers: %w", err)
		}
	}
	return nil
}

// ParseAddr parses a join address, HOST, HOST:PORT or tcp://HOST:PORT
// (IPv6 as [::1]:8420 or ::1; port 8420 when omitted), and returns the
// HOST:PORT to dial and show.
func ParseAddr(s string) (addr string, err error) {
	addr, err = netaddr.ParseHostPort(s)
	if errors.Is(err, netaddr.ErrEmpty) {
		return "", fmt.Errorf("join address %q: %w", s, err)
	}
	if err != nil {
		return "", fmt.Errorf("join address %w", err) // netaddr's error starts with the address, quoted
	}
	return addr, nil
}
