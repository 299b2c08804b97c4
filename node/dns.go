package node

import (
	"context"

	"github.com/hydra-net/hydra/dnsserver"
)

// DNSConfig is the node's DNS server: NAME.service.DOMAIN. answered from
// the catalog (package dnsserver), over UDP and TCP on one address.
type DNSConfig struct {
	// Config is the server's: Domain, TTL, limits. Node sets its Logger.
	// Its Addr is HOST:PORT (port 0: any free port, see Node.DNSAddr);
	// here the default "" means no DNS server (cmd/hydra-server's --dns
	// defaults to dnsserver.DefaultAddr, 127.0.0.1:8600).
	dnsserver.Config
	// Optional makes a failure to bind a warning instead of New's error:
	// the node runs without DNS. cmd/hydra-server sets it when --dns is
	// left at its default, so that a second server on a machine (or many
	// in tests) still starts. Default false: an error.
	Optional bool
}

// Validate reports the first problem of c, naming its fields.
func (c DNSConfig) Validate() error {
	if c.Addr == "" {
		return nil
	}
	return c.Config.Validate()
}

// bindDNS binds the DNS server (New's job, so DNSAddr is known before Run).
func (n *Node) bindDNS() error {
	c := n.cfg.DNS
	if c.Addr == "" {
		return nil
	}
	if c.Logger == nil {
		c.Logger = n.log
	}
	s, err := dnsserver.Listen(n.cat, c.Config)
	if err != nil {
		if c.Optional {
			n.log.Warn("dns: not serving (set --dns to another HOST:PORT, or to \"\" to turn DNS off)",
				"addr", c.Addr, "err", err)
			return nil
		}
		return &ConfigError{"DNS.Addr", err}
	}
	n.dns = s
	n.log.Info("dns: listening", "addr", s.Addr(), "domain", c.Domain)
	return nil
}

// DNSAddr is the DNS server's HOST:PORT, UDP and TCP (the real port of a
// :0), "" when it is off.
func (n *Node) DNSAddr() string {
	if n.dns == nil {
		return ""
	}
	return n.dns.Addr()
}

// serveDNS runs the DNS server until stop; done is closed when it returned.
func (n *Node) serveDNS() (stop func()) {
	if n.dns == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.dns.Serve(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
