package node_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/dnsserver"
	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
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

// TestDNSJoinedAndTunnelled: an entry of a joined server is answered with
// its real address; a tunnelled one with the address and port of the local
// proxy.
func TestDNSJoinedAndTunnelled(t *testing.T) {
	dnsOn := node.DNSConfig{Config: dnsserver.Config{Addr: "127.0.0.1:0"}}
	ctx := testutil.Context(t, 30*time.Second)

	a := nodetest.Start(t, node.Config{Join: join.Config{Interval: 100 * time.Millisecond}})
	b := nodetest.Start(t, node.Config{DNS: dnsOn, Join: join.Config{Interval: 100 * time.Millisecond, Peers: []string{a.Addr()}}})
	if _, err := a.Client(t).Register(ctx, registry.Service{Name: "on-a", Host: "10.0.0.1", Port: 1, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "A's entry in B's DNS", func() bool {
		d := testutil.Dig(t, b.DNSAddr(), "on-a.service.hydra", "A")
		return len(d.Answer) == 1 && strings.HasSuffix(d.Answer[0], " A 10.0.0.1")
	})

	kc, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	kd, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	far := nodetest.Start(t, node.Config{Keys: &kd, Access: node.Access{Tunnels: secure.NewAllowList(kc.Public)}, Tunnel: tunnel.Config{Export: []string{"*"}}})
	near := nodetest.Start(t, node.Config{Keys: &kc, DNS: dnsOn, Tunnel: tunnel.Config{
		Remotes: []tunnel.Remote{{Addr: far.Addr(), Key: kd.Public}}, RedialMin: 50 * time.Millisecond}})
	if _, err := far.Client(t).Register(ctx, registry.Service{Name: "echo", Host: "127.0.0.1", Port: 7, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	proxy := nodetest.TunnelProxy(t, near.Client(t), "echo")
	want := fmt.Sprintf(" %d 7f000001.addr.hydra.", proxy.Port)
	testutil.Eventually(t, 15*time.Second, "the tunnel proxy in DNS", func() bool {
		d := testutil.Dig(t, near.DNSAddr(), "_echo._tcp.service.hydra", "SRV")
		return len(d.Answer) == 1 && strings.HasSuffix(d.Answer[0], want)
	})
}
