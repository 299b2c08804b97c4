package node_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/dnsserver"
	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
)

// TestDNSFollowsZMTP: an entry registered over ZMTP is answered by dig
// (A and SRV with its own address in the additional section) and leaves
// DNS when it is deregistered.
func TestDNSFollowsZMTP(t *testing.T) {
	n := nodetest.Start(t, node.Config{DNS: node.DNSConfig{Config: dnsserver.Config{Addr: "127.0.0.1:0", Domain: "test.hydra"}}})
	if n.DNSAddr() == "" {
		t.Fatal("DNSAddr empty: DNS is not served")
	}
	cl := n.Client(t)
	ctx := testutil.Context(t, 30*time.Second)
	reg, err := cl.Register(ctx, registry.Service{Name: "Api", Host: "10.20.30.40", Port: 9000, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var d testutil.DigReply
	testutil.Eventually(t, 10*time.Second, "the ZMTP registration in DNS", func() bool {
		d = testutil.Dig(t, n.DNSAddr(), "api.service.test.hydra", "A")
		return len(d.Answer) == 1
	})
	if !strings.HasSuffix(d.Answer[0], " A 10.20.30.40") {
		t.Fatalf("A %v, want 10.20.30.40:\n%s", d.Answer, d.Out)
	}
	d = testutil.Dig(t, n.DNSAddr(), "_api._tcp.service.test.hydra", "SRV")
	if len(d.Answer) != 1 || !strings.Contains(d.Answer[0], " 9000 0a141e28.addr.test.hydra.") ||
		len(d.Additional) != 1 || d.Additional[0] != "0a141e28.addr.test.hydra. 0 IN A 10.20.30.40" {
		t.Fatalf("SRV answer %v additional %v:\n%s", d.Answer, d.Additional, d.Out)
	}
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the deregistered entry gone from DNS", func() bool {
		d = testutil.Dig(t, n.DNSAddr(), "api.service.test.hydra", "A")
		return d.Status == "NXDOMAIN"
	})
}

// TestDNSTakenAddr: an explicit address that is taken is New's error
// (naming DNS.Addr); an Optional one (cmd's default) is one warning that
// names --dns, and the node runs without DNS.
func TestDNSTakenAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	_, err = node.New(node.Config{Endpoint: "tcp://127.0.0.1:0", DNS: node.DNSConfig{Config: dnsserver.Config{Addr: addr}}})
	var ce *node.ConfigError
	if !errors.As(err, &ce) || ce.Field != "DNS.Addr" {
		t.Fatalf("New with a taken DNS address: %v, want a ConfigError on DNS.Addr", err)
	}
	sink := testutil.NewLogSink()
	n := nodetest.Start(t, node.Config{Logger: sink.Logger(), DNS: node.DNSConfig{Config: dnsserver.Config{Addr: addr}, Optional: true}})
	sink.WaitFor(t, "WARN", "dns: not serving", "--dns")
	if n.DNSAddr() != "" {
		t.Fatalf("DNSAddr %q, want \"\" when not serving", n.DNSAddr())
	}
	if got := strings.Count(strings.Join(sink.Lines(), "\n"), "dns: not serving"); got != 1 {
		t.Fatalf("%d warnings, want 1", got)
	}
	if _, err := node.New(node.Config{DNS: node.DNSConfig{Config: dnsserver.Config{Addr: "127.0.0.1:0", Domain: "a..b"}}}); !errors.As(err, &ce) || ce.Field != "DNS" || !strings.Contains(err.Error(), "Domain") {
		t.Fatalf("bad domain: %v, want a ConfigError on DNS naming Domain", err)
	}
}
