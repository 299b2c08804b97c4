package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// TestTunnelNetns puts the remote server in a network namespace of its
// own behind a firewall (nftables, or iptables) that lets only its Hydra
// ports and its proxies' port range in, and checks that the services
// behind each side are reachable through the tunnel while their ports are
// not; that the remote's proxies are not reachable from the local side's
// network (with the firewall open for them: only their bind keeps them
// in) unless --tunnel-bind says so; that --tunnel-export and
// --tunnel-import hold across the namespaces; and that a capture of the
// link shows no payload in clear.
//
// It needs root, ip, nft or iptables and tcpdump. Outside CI it skips
// without them; under CI=true it fails instead (.ci/run installs
// iproute2 nftables tcpdump).
func TestTunnelNetns(t *testing.T) {
	h := newNetns(t, "t", "10.213.77", "8420", "8421", "7100-7139") // recipe_netns_test.go: both proxy ranges open
	ns, nsIP, hydraPort, fw := h.ns, h.nsIP, h.port, h.firewall
	// B and B2 take proxy ports from ranges of their own: with one range,
	// B2's proxy on the namespace's address could take the port of B's on
	// loopback, and a dial meant to show B's closed would reach B2's.
	const hydraPort2, proxyPorts, proxyPorts2 = "8421", "7100-7119", "7120-7139"

	dir := t.TempDir()
	keyA, kpA := tunnelKeys(t, dir, "a.key")
	keyB, kpB := tunnelKeys(t, dir, "b.key")
	keyB2, kpB2 := tunnelKeys(t, dir, "b2.key")
	marker := make([]byte, 8)
	rand.Read(marker)
	secret := "hydra-plaintext-marker-" + hex.EncodeToString(marker)
	payload := bytes.Repeat([]byte(secret+" "), 4096)

	// Inside the namespace: an echo service on the firewalled address,
	// and server B with it as a static service.
	nsProc(t, ns, "HYDRA_TUNNEL_HELPER=echo:"+nsIP+":7007")
	// B exports both (bound beyond loopback: the default lets them out);
	// A imports only echo-r. B runs CURVE (a key file, beyond loopback):
	// kpC is a registry client of B's and B2's.
	_, kpC := tunnelKeys(t, dir, "c.key")
	clients := allowFile(t, dir, kpC.Public)
	bp := nsServer(t, ns, "--host", nsIP, "--port", hydraPort, "--key-file", keyB, "--allow-tunnels", allowFile(t, dir, kpA.Public),
		"--allow-clients", clients,
		"--server-id", "srv-b", "--service", "echo-r=tcp://"+nsIP+":7007", "--service", "other-r=tcp://"+nsIP+":7007",
		"--tunnel-ports", proxyPorts)
	if l := bp.line(); !strings.Contains(l, "Bound to "+nsIP+":"+hydraPort) {
		t.Fatalf("B's banner: %q", l)
	}
	// B2, beside B, publishes its proxies on the namespace's address.
	b2 := nsServer(t, ns, "--host", nsIP, "--port", hydraPort2, "--key-file", keyB2, "--allow-tunnels", allowFile(t, dir, kpA.Public),
		"--allow-clients", clients,
		"--server-id", "srv-b2", "--tunnel-ports", proxyPorts2, "--tunnel-bind", nsIP)
	if l := b2.line(); !strings.Contains(l, "Bound to "+nsIP+":"+hydraPort2) {
		t.Fatalf("B2's banner: %q", l)
	}

	// Capture the link from here on.
	stop := h.capture(t, dir)

	// Server A here, tunnelling to B.
	// It exports echo-l (loopback-bound: only because it is named), not
	// echo-hidden.
	_, epA := startServer(t, nil, "--key-file", keyA, "--tunnel", nsIP+":"+hydraPort, "--remote-key", kpB.Public.String(),
		"--tunnel", nsIP+":"+hydraPort2, "--remote-key", kpB2.Public.String(), "--server-id", "srv-a",
		"--tunnel-export", "echo-l", "--tunnel-import", "echo-r")
	ca := tclient(t, epA)
	tRegister(t, ca, "echo-l", testutil.EchoServer(t))
	tRegister(t, ca, "echo-hidden", testutil.EchoServer(t))

	// B's service, behind the firewall, through A's proxy.
	pr := nodetest.TunnelProxy(t, ca, "echo-r")
	if err := echoVia(pr.Addr(), payload); err != nil {
		t.Fatalf("B's service through the tunnel: %v", err)
	}
	// ... while its own port is closed to us.
	if c, err := net.DialTimeout("tcp", nsIP+":7007", 2*time.Second); err == nil {
		c.Close()
		t.Fatal("the firewall let the service port through")
	}

	// A's service, from inside B's namespace, through B's proxy. The Hydra
	// port is open, so we look it up from here.
	cb := nodetest.RegistryClient(t, "tcp://"+nsIP+":"+hydraPort, registry.ClientConfig{Security: curve.Client(kpC, kpB.Public)})
	pl := nodetest.TunnelProxy(t, cb, "echo-l")
	// B's proxy listens on B's loopback, as its entry says: from our
	// network its port is closed, though the firewall lets it in.
	if pl.Host != "127.0.0.1" {
		t.Fatalf("B's proxy entry: %+v, want host 127.0.0.1", pl)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(nsIP, strconv.Itoa(pl.Port)), 2*time.Second); err == nil {
		c.Close()
		t.Fatal("B's proxy is reachable from A's network without --tunnel-bind")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial B's proxy from A's network: %v, want connection refused (the firewall lets its port in)", err)
	}
	// B2's, with --tunnel-bind, is reachable from here, through the tunnel.
	p2 := nodetest.TunnelProxy(t, nodetest.RegistryClient(t, "tcp://"+nsIP+":"+hydraPort2,
		registry.ClientConfig{Security: curve.Client(kpC, kpB2.Public)}), "echo-l")
	if p2.Host != nsIP {
		t.Fatalf("B2's proxy entry: %+v, want host %s", p2, nsIP)
	}
	if err := echoVia(p2.Addr(), []byte("published on purpose")); err != nil {
		t.Fatalf("B2's proxy from A's network: %v", err)
	}
	// The filters: what A does not export never reached B; what A does not
	// import was never registered here.
	for _, c := range []struct {
		cl   *registry.Client
		name string
	}{{cb, "echo-hidden"}, {ca, "other-r"}} {
		if es, err := c.cl.Lookup(testutil.Context(t, 5*time.Second), c.name); err == nil && len(es) > 0 {
			t.Fatalf("%s crossed the tunnel against the filters: %+v", c.name, es)
		}
	}
	out, err := nsCommand(ns, "HYDRA_TUNNEL_HELPER=client:"+pl.Addr()+":"+secret).CombinedOutput()
	if err != nil {
		t.Fatalf("client inside the namespace through B's proxy: %v\n%s", err, out)
	}

	// The capture: the tunnel's preamble (the one clear part of it) is
	// there, the payload is not.
	capBytes := stop("HYNZ")
	if bytes.Contains(capBytes, []byte(secret)) || bytes.Contains(capBytes, []byte("hydra-plaintext-marker")) {
		t.Fatal("payload plaintext on the wire")
	}
	t.Logf("capture: %d bytes on %s, no plaintext of the %d-byte payload; firewall: %s", len(capBytes), h.hostDev, len(payload), fw)
}

// nsCommand runs this test binary's helper inside the namespace.
func nsCommand(ns string, env ...string) *exec.Cmd {
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run", "^TestTunnelHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// nsProc runs a helper inside the namespace until the test ends.
func nsProc(t *testing.T, ns string, env ...string) {
	cmd := nsCommand(ns, env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// nsServer runs hydra-server (this test binary) inside the namespace.
func nsServer(t *testing.T, ns string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, os.Args[0]}, args...)...)
	cmd.Env = baseEnv()
	p := &proc{t: t, cmd: cmd, lines: make(chan string, 1000), done: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = lockedWriter{&p.mu, &p.errb}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("stderr of B:\n%s", p.stderr())
		}
	})
	return p
}

// TestTunnelHelper is not a test: TestTunnelNetns runs it inside the
// namespace, as an echo service or a client, by HYDRA_TUNNEL_HELPER.
func TestTunnelHelper(t *testing.T) {
	mode, arg, _ := strings.Cut(os.Getenv("HYDRA_TUNNEL_HELPER"), ":")
	switch mode {
	case "echo":
		ln, err := net.Listen("tcp", arg)
		if err != nil {
			t.Fatal(err)
		}
		testutil.ServeEcho(ln)
	case "client":
		i := strings.LastIndex(arg, ":")
		addr, secret := arg[:i], arg[i+1:]
		if err := echoVia(addr, bytes.Repeat([]byte(secret+" "), 4096)); err != nil {
			t.Fatal(err)
		}
	default:
		t.Skip("helper for TestTunnelNetns")
	}
}
