package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
)

// netnsHost is a network namespace joined to this one by a veth pair:
// hostIP on this side (device hostDev), nsIP inside, behind a firewall
// that lets only its ports in (port is the first).
type netnsHost struct {
	ns, hostDev    string
	hostIP, nsIP   string
	port, firewall string
}

// newNetns makes the namespace name+pid with the /24 subnet (three
// octets, "10.213.77"), whose firewall lets in the TCP ports given (a port
// or a range "7100-7119"), removed when the test ends. It needs root, ip,
// nft or iptables and tcpdump: outside CI it skips without them; under
// CI=true it fails instead (.ci/run installs iproute2 nftables tcpdump).
func newNetns(t *testing.T, name, subnet string, ports ...string) *netnsHost {
	t.Helper()
	need := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("netns test cannot run under CI: %s", why)
		}
		t.Skipf("skipping the netns test: %s (run as root with iproute2, nftables or iptables, and tcpdump)", why)
	}
	if os.Geteuid() != 0 {
		need("not root")
	}
	fw := ""
	for _, tool := range []string{"nft", "iptables"} {
		if _, err := exec.LookPath(tool); err == nil {
			fw = tool
			break
		}
	}
	if fw == "" {
		need("neither nft nor iptables found")
	}
	for _, tool := range []string{"ip", "tcpdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			need(tool + " not found")
		}
	}
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	h := &netnsHost{ns: "hydra-" + name + id, hostDev: "hy" + name + id + "a", hostIP: subnet + ".1", nsIP: subnet + ".2", port: ports[0], firewall: fw}
	vb := "hy" + name + id + "b"
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "add", h.ns).CombinedOutput(); err != nil {
		need(fmt.Sprintf("ip netns add: %v: %s", err, bytes.TrimSpace(out)))
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", h.ns).Run() })
	sh("ip", "link", "add", h.hostDev, "type", "veth", "peer", "name", vb)
	t.Cleanup(func() { exec.Command("ip", "link", "del", h.hostDev).Run() })
	sh("ip", "link", "set", vb, "netns", h.ns)
	sh("ip", "addr", "add", h.hostIP+"/24", "dev", h.hostDev)
	sh("ip", "link", "set", h.hostDev, "up")
	sh("ip", "netns", "exec", h.ns, "ip", "addr", "add", h.nsIP+"/24", "dev", vb)
	sh("ip", "netns", "exec", h.ns, "ip", "link", "set", vb, "up")
	sh("ip", "netns", "exec", h.ns, "ip", "link", "set", "lo", "up")
	if fw == "nft" {
		rules := `table inet hydratest {
	chain input {
		type filter hook input priority 0; policy drop;
		iifname "lo" accept
		ct state established,related accept
		tcp dport { ` + strings.Join(ports, ", ") + ` } accept
	}
}
`
		cmd := exec.Command("ip", "netns", "exec", h.ns, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v\n%s", err, out)
		}
	} else {
		rules := [][]string{
			{"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
			{"-A", "INPUT", "-m", "state", "--state", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
		}
		for _, p := range ports {
			rules = append(rules, []string{"-A", "INPUT", "-p", "tcp", "--dport", strings.ReplaceAll(p, "-", ":"), "-j", "ACCEPT"})
		}
		for _, r := range append(rules, []string{"-P", "INPUT", "DROP"}) {
			sh(append([]string{"ip", "netns", "exec", h.ns, "iptables"}, r...)...)
		}
	}
	return h
}

// capture runs tcpdump on the host side of the veth (tcp only) into a
// file until stop, which waits until the capture holds every one of want
// (what shows that it captured the right thing) and returns it.
func (h *netnsHost) capture(t *testing.T, dir string) (stop func(want ...string) []byte) {
	t.Helper()
	pcap := filepath.Join(dir, h.hostDev+".pcap")
	td := exec.Command("tcpdump", "-i", h.hostDev, "-n", "-U", "--immediate-mode", "-s", "0", "-w", pcap, "tcp")
	tdErr, _ := td.StderrPipe()
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { td.Process.Kill(); td.Wait() })
	sc := bufio.NewScanner(tdErr)
	for sc.Scan() && !strings.Contains(sc.Text(), "listening on") {
	}
	tail := make(chan string, 1)
	go func() {
		var last string
		for sc.Scan() {
			last += sc.Text() + "\n"
		}
		tail <- last
	}()
	return func(want ...string) []byte {
		testutil.Eventually(t, 10*time.Second, "the capture holds "+strings.Join(want, ", "), func() bool {
			b, _ := os.ReadFile(pcap)
			for _, w := range want {
				if !bytes.Contains(b, []byte(w)) {
					return false
				}
			}
			return true
		})
		td.Process.Signal(syscall.SIGINT)
		td.Wait()
		t.Logf("tcpdump: %s", <-tail)
		b, err := os.ReadFile(pcap)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// TestRecipeNetnsNoPlaintext: README's tunnel recipe exactly as written,
// the remote in a namespace of its own: from the local side's network its
// registry answers no plaintext client (no list, no injected register),
// and a capture of its port shows none of the registry's traffic in clear
// (the service names both sides share never appear).
func TestRecipeNetnsNoPlaintext(t *testing.T) {
	h := newNetns(t, "r", "10.213.78", "8420")
	dir := t.TempDir()
	// hydra-server keygen --out a.key (and b.key); cp a.key.pub tunnels.keys
	keyA, _ := tunnelKeys(t, dir, "a.key")
	keyB, _ := tunnelKeys(t, dir, "b.key")
	tunnels := filepath.Join(dir, "tunnels.keys")
	pubA, err := os.ReadFile(keyA + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tunnels, pubA, 0o644); err != nil {
		t.Fatal(err)
	}
	marker := make([]byte, 6)
	rand.Read(marker)
	nameB, nameA := "remote-svc-"+hex.EncodeToString(marker), "local-svc-"+hex.EncodeToString(marker)

	stop := h.capture(t, dir)
	// remote: hydra-server --host 0.0.0.0 --key-file b.key --allow-tunnels tunnels.keys
	// (plus a service of its own to share: bound to loopback, it crosses
	// only when --tunnel-export names it).
	bp := nsServer(t, h.ns, "--host", "0.0.0.0", "--port", h.port, "--key-file", keyB, "--allow-tunnels", tunnels,
		"--service", nameB+"=tcp://127.0.0.1:7007", "--tunnel-export", nameB)
	if l := bp.line(); !strings.Contains(l, "Bound to 0.0.0.0:"+h.port) {
		t.Fatalf("B's banner: %q", l)
	}
	// local: hydra-server --key-file a.key --tunnel gw.example --remote-key b.key.pub
	_, epA := startServer(t, nil, "--key-file", keyA, "--tunnel", h.nsIP, "--remote-key", keyB+".pub", "--tunnel-export", nameA)
	ca := tclient(t, epA)
	tRegister(t, ca, nameA, testutil.EchoServer(t))
	nodetest.TunnelProxy(t, ca, nameB) // the tunnel is up and carried both lists

	// An attacker on the local side's network: no plaintext registry.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	remote := "tcp://" + h.nsIP + ":" + h.port
	for _, args := range [][]string{
		{"list", "--server", remote, "--timeout", "3s"},
		{"register", "--once", "inject-" + hex.EncodeToString(marker), "tcp://10.9.9.9:22", "--server", remote, "--timeout", "3s"},
	} {
		if code, out, errs := runCmd(ctx, args...); code != 2 || !strings.Contains(errs, "runs CURVE") {
			t.Errorf("%v against the remote: exit %d %q %q, want a CURVE refusal", args, code, out, errs)
		}
	}
	// Nor a CURVE client with a key of its own.
	keyX, _ := tunnelKeys(t, dir, "x.key")
	if code, _, errs := runCmd(ctx, "list", "--server", remote, "--timeout", "3s", "--server-key", keyB+".pub", "--client-key", keyX); code != 2 || !strings.Contains(errs, "refused this client's key") {
		t.Errorf("an unlisted CURVE client: exit %d %q", code, errs)
	}

	// The tunnel's preamble and the port's CURVE greeting are the clear
	// parts: seeing them shows the capture is of the right thing.
	got := stop("HYNZ", "CURVE")
	for _, s := range []string{nameA, nameB, hex.EncodeToString(marker), "REGISTER", "LOOKUP", "\"services\""} {
		if bytes.Contains(got, []byte(s)) {
			t.Errorf("%q in clear on the remote's port", s)
		}
	}
	t.Logf("capture: %d bytes on %s, no registry plaintext; firewall %s", len(got), h.hostDev, h.firewall)
}
