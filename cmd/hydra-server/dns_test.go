package main

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
)

// TestDNSFlags: --dns, --dns-domain and --dns-ttl reach the DNS server; a
// service registered over ZMTP is answered with that domain and TTL.
func TestDNSFlags(t *testing.T) {
	dnsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p, ep := startServer(t, nil, "--dns", dnsAddr, "--dns-domain", "Corp.Example", "--dns-ttl", "7s")
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testutil.Context(t, 30*time.Second)
	if _, err := c.Register(ctx, registry.Service{Name: "web", Host: "10.0.0.5", Port: 80, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	var d testutil.DigReply
	testutil.Eventually(t, 10*time.Second, "web in DNS", func() bool {
		d = testutil.Dig(t, dnsAddr, "web.service.corp.example", "A")
		return len(d.Answer) == 1
	})
	if d.Answer[0] != "web.service.corp.example. 7 IN A 10.0.0.5" {
		t.Fatalf("answer %q, want TTL 7 and 10.0.0.5:\n%s", d.Answer[0], d.Out)
	}
	if d = testutil.Dig(t, dnsAddr, "web.service.hydra", "A"); d.Status != "REFUSED" {
		t.Fatalf("the default domain under --dns-domain: %s, want REFUSED", d.Status)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderr())
	}
	code, _, errs := runCmd(ctx, "--port", "0", "--dns", dnsAddr, "--dns-ttl", "1500ms")
	if code != 2 || !strings.Contains(errs, "--dns-ttl 1.5s is not whole seconds") {
		t.Fatalf("--dns-ttl 1500ms: exit %d, stderr %q", code, errs)
	}
}

// TestDNSDefaultPortTaken: with --dns left at its default and the port
// taken (here, or by another server), the server warns once naming --dns
// and runs without DNS; the same address given explicitly is an error.
func TestDNSDefaultPortTaken(t *testing.T) {
	if ln, err := net.Listen("tcp", "127.0.0.1:8600"); err == nil {
		defer ln.Close()
	} // else someone else holds it: taken either way
	p, ep := startServer(t, nil, "--http", "") // a held HTTP port would warn too
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testutil.Context(t, 30*time.Second)
	if _, err := c.Lookup(ctx, "anything"); err != nil {
		t.Fatalf("the registry does not serve without DNS: %v", err)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderr())
	}
	if n := strings.Count(p.stderr(), "level=WARN"); n != 1 || !strings.Contains(p.stderr(), "set --dns to another HOST:PORT") {
		t.Fatalf("want one WARN naming --dns, got %d:\n%s", n, p.stderr())
	}
	// HYDRA_DNS=off (what an environment or a config file can say): no DNS, no warning.
	p, _ = startServer(t, []string{"HYDRA_DNS=off"}, "--http", "")
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 || strings.Contains(p.stderr(), "dns") {
		t.Fatalf("HYDRA_DNS=off: exit %d:\n%s", code, p.stderr())
	}
	code, _, errs := runCmd(ctx, "--port", "0", "--http", "", "--dns", "127.0.0.1:8600")
	if code != 2 || !strings.Contains(errs, "hydra-server: --dns: ") || !strings.Contains(errs, "address already in use") {
		t.Fatalf("explicit --dns of a taken port: exit %d, stderr %q; want 2 and --dns: ... in use", code, errs)
	}
}
