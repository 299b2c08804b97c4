package dnsserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults of Config.
const (
	DefaultAddr        = "127.0.0.1:8600" // Consul's DNS port
	DefaultDomain      = "hydra"
	DefaultTTL         = 0 * time.Second // answers change as fast as the registry does
	DefaultMaxUDPSize  = 1232            // the DNS flag day 2020 figure: no IP fragmentation
	DefaultMaxTCPConns = 256
	DefaultTCPIdle     = 10 * time.Second
	MaxTTL             = 24 * time.Hour
)

// Config configures a Server. The zero value serves DefaultDomain on
// DefaultAddr with TTL 0.
type Config struct {
	// Addr is HOST:PORT, bound for UDP and TCP. Default DefaultAddr.
	Addr string
	// Domain is the zone served: NAME.service.Domain. Default "hydra".
	Domain string
	// TTL of every record given. Default 0: resolvers do not cache, a
	// deregistered instance is gone from the next answer.
	TTL time.Duration
	// MaxUDPSize caps the UDP reply size an EDNS0 client may ask for
	// (512 to 65535). Default 1232.
	MaxUDPSize int
	// MaxTCPConns bounds the TCP connections served at once; more wait in
	// the kernel's backlog. Default 256.
	MaxTCPConns int
	// TCPIdle closes a TCP connection that sends no complete query for
	// this long. Default 10s.
	TCPIdle time.Duration
	// Logger receives the server's events. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if c.MaxUDPSize == 0 {
		c.MaxUDPSize = DefaultMaxUDPSize
	}
	if c.MaxTCPConns == 0 {
		c.MaxTCPConns = DefaultMaxTCPConns
	}
	if c.TCPIdle == 0 {
		c.TCPIdle = DefaultTCPIdle
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Domain = dns.CanonicalName(c.Domain)
	return c
}

// Validate reports the first bad field of c, by its Go name.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("dnsserver: config: Addr %q: want HOST:PORT", c.Addr)
	}
	if _, ok := dns.IsDomainName(c.Domain); !ok || c.Domain == "." || strings.Contains(c.Domain, "..") {
		return fmt.Errorf("dnsserver: config: Domain %q is not a domain name", strings.TrimSuffix(c.Domain, "."))
	}
	if c.TTL < 0 || c.TTL > MaxTTL {
		return fmt.Errorf("dnsserver: config: TTL %v outside [0s, %v]", c.TTL, MaxTTL)
	}
	if c.TTL%time.Second != 0 {
		return errors.New("dnsserver: config: TTL " + c.TTL.String() + " is not whole seconds")
	}
	if c.MaxUDPSize < dns.MinMsgSize || c.MaxUDPSize > dns.MaxMsgSize {
		return fmt.Errorf("dnsserver: config: MaxUDPSize %d outside [%d, %d]", c.MaxUDPSize, dns.MinMsgSize, dns.MaxMsgSize)
	}
	if c.MaxTCPConns < 0 {
		return fmt.Errorf("dnsserver: config: MaxTCPConns %d is negative", c.MaxTCPConns)
	}
	if c.TCPIdle < 0 {
		return fmt.Errorf("dnsserver: config: TCPIdle %v is negative", c.TCPIdle)
	}
	return nil
}
