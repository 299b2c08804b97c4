package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// TestTunnelNetns puts the remote server in a network namespace of its
// own behind a firewall (nftables, or iptables) that lets only its Hydra
// port in, and checks that the services behind each side are reachable
// through the tunnel while their ports are not, and that a capture of
// the link shows no payload in clear.
//
// It needs root, ip, nft or iptables and tcpdump. Outside CI it skips
// without them; under CI=true it fails instead (.ci/run installs
// iproute2 nftables tcpdump).
func TestTunnelNetns(t *testing.T) {
	h := newNetns(t, "t", "10.213.77", "8420") // recipe_netns_test.go
	ns, nsIP, hydraPort, fw := h.ns, h.nsIP, h.port, h.firewall

	dir := t.TempDir()
	keyA, kpA := tunnelKeys(t, dir, "a.key")
	keyB, kpB := tunnelKeys(t, dir, "b.key")
	marker := make([]byte, 8)
	rand.Read(marker)
	secret := "hydra-plaintext-marker-" + hex.EncodeToString(marker)
	payload := bytes.Repeat([]byte(secret+" "), 4096)

	// Inside the namespace: an echo service on the firewalled address,
	// and server B with it as a static service.
	nsProc(t, ns, "HYDRA_TUNNEL_HELPER=echo:"+nsIP+":7007")
	_, kpC := tunnelKeys(t, dir, "c.key") // a registry client of B's (B runs CURVE: a key file, beyond loopback)
	bp := nsServer(t, ns, "--host", nsIP, "--port", hydraPort, "--key-file", keyB, "--allow-tunnels", allowFile(t, dir, kpA.Public),
		"--allow-clients", allowFile(t, dir, kpC.Public),
		"--server-id", "srv-b", "--service", "echo-r=tcp://"+nsIP+":7007")
	if l := bp.line(); !strings.Contains(l, "Bound to "+nsIP+":"+hydraPort) {
		t.Fatalf("B's banner: %q", l)
	}

	// Capture the link from here on.
	stop := h.capture(t, dir)

	// Server A here, tunnelling to B.
	_, epA := startServer(t, nil, "--key-file", keyA, "--tunnel", nsIP+":"+hydraPort, "--remote-key", kpB.Public.String(), "--server-id", "srv-a")
	ca := tclient(t, epA)
	tRegister(t, ca, "echo-l", testutil.EchoServer(t))

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
	if c, err := net.DialTimeout("tcp", pl.Addr(), 2*time.Second); err == nil {
		c.Close()
		t.Fatal("the firewall let a proxy port through")
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
