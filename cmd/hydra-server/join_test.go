package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
)

// Join tests: real hydra-server processes (the test binary) on loopback.
// Short join timings keep them fast; every wait has a generous deadline so
// that a failure fails instead of hanging, and no assertion is on time.

// --join-allow: a server takes NULL join links only from the addresses it
// names, and the tests' servers share loopback.
var joinArgs = []string{"--join-interval", "100ms", "--join-timeout", "1s", "--join-grace", "2s", "--min-ttl", "100ms", "--join-allow", "127.0.0.0/8"}

// startJoin runs a server with the short join timings; it returns the
// process and its HOST:PORT.
func startJoin(t *testing.T, id string, args ...string) (*proc, string) {
	t.Helper()
	if !hasFlag(args, "--port") {
		args = append([]string{"--port", "0"}, args...)
	}
	common := joinArgs
	if hasFlag(args, "--curve") { // servers are known by their keys, not addresses
		common = slices.DeleteFunc(slices.Clone(joinArgs), func(a string) bool { return a == "--join-allow" || a == "127.0.0.0/8" })
	}
	p := start(t, nil, append(append([]string{"--server-id", id}, common...), args...)...)
	banner := p.line()
	a, ok := strings.CutPrefix(banner, "[Hydra Server] Bound to ")
	if !ok {
		t.Fatalf("banner %q", banner)
	}
	return p, a
}

func hasFlag(args []string, f string) bool {
	for _, a := range args {
		if a == f {
			return true
		}
	}
	return false
}

// waitLine waits for lines of p's stdout, in any order (skipping others).
func waitLine(t *testing.T, p *proc, want ...string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	left := map[string]bool{}
	for _, w := range want {
		left[w] = true
	}
	for len(left) > 0 {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("stdout closed before %q; stderr:\n%s", want, p.stderr())
			}
			delete(left, l)
		case <-deadline:
			t.Fatalf("no line %q; stderr:\n%s", want, p.stderr())
		}
	}
}

func client(t *testing.T, addr string) *registry.Client {
	t.Helper()
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: "tcp://" + addr, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// joinView is a server's entries of name: instance → "origin@version host:port".
func joinView(t *testing.T, c *registry.Client, name string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	es, err := c.Lookup(ctx, name)
	if err != nil {
		t.Fatalf("lookup on %s: %v", c.Endpoint(), err)
	}
	m := map[string]string{}
	for _, e := range es {
		if _, dup := m[e.Instance]; dup {
			t.Fatalf("instance %s twice on %s: %+v", e.Instance, c.Endpoint(), es)
		}
		m[e.Instance] = fmt.Sprintf("%s@%d %s", e.Origin, e.Version, e.Addr())
	}
	return m
}

// settle waits until every client shows the same n entries of name.
func settle(t *testing.T, name string, n int, cs ...*registry.Client) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var views []string
		var first map[string]string
		ok := true
		for _, c := range cs {
			v := joinView(t, c, name)
			views = append(views, fmt.Sprint(v))
			if first == nil {
				first = v
			}
			if len(v) != n || fmt.Sprint(v) != views[0] {
				ok = false
			}
		}
		if ok {
			return first
		}
		if time.Now().After(deadline) {
			t.Fatalf("no agreement on %d entries of %q: %v", n, name, views)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func register(t *testing.T, c *registry.Client, name, host string, port int) *registry.Registration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Register(ctx, registry.Service{Name: name, Host: host, Port: port, TTL: 900 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestJoinChain: A ← B ← C (B joins A, C joins B): a service registered on A
// is found on C, where it really is (host and port unchanged) and from
// which server; and back.
func TestJoinChain(t *testing.T) {
	_, a := startJoin(t, "A")
	b, bAddr := startJoin(t, "B", "--join", a)
	waitLine(t, b, "[Hydra Server] Joined with "+a)
	c, cAddr := startJoin(t, "C", "--join", "tcp://"+bAddr)
	waitLine(t, c, "[Hydra Server] Joined with "+bAddr)
	ca, cc := client(t, a), client(t, cAddr)
	r := register(t, ca, "web", "10.0.0.5", 8080)
	v := settle(t, "web", 1, ca, client(t, bAddr), cc)
	if v[r.Instance()] != "A@1 10.0.0.5:8080" {
		t.Fatalf("on C: %v", v)
	}
	// The command line shows it on C too.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, port, _ := net.SplitHostPort(cAddr)
	code, out, errs := runCmd(ctx, "lookup", "--port", port, "web")
	if code != 0 || !strings.Contains(out, "10.0.0.5:8080") || !strings.Contains(out, " A ") {
		t.Fatalf("lookup on C: %d %q %q", code, out, errs)
	}
	rc := register(t, cc, "web", "10.0.0.6", 8080)
	v = settle(t, "web", 2, ca, cc)
	if v[rc.Instance()] != "C@1 10.0.0.6:8080" {
		t.Fatalf("on A: %v", v)
	}
	if err := r.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	settle(t, "web", 1, ca, cc)
}

// TestJoinTriangle: B joins A, C joins A and B. Every server shows every
// entry once, whichever way it came.
func TestJoinTriangle(t *testing.T) {
	_, a := startJoin(t, "TA")
	b, bAddr := startJoin(t, "TB", "--join", a)
	c, cAddr := startJoin(t, "TC", "--join", a, "--join", bAddr)
	waitLine(t, b, "[Hydra Server] Joined with "+a)
	waitLine(t, c, "[Hydra Server] Joined with "+a, "[Hydra Server] Joined with "+bAddr)
	cs := []*registry.Client{client(t, a), client(t, bAddr), client(t, cAddr)}
	var regs []*registry.Registration
	for i, cl := range cs {
		regs = append(regs, register(t, cl, "tri", fmt.Sprintf("10.0.0.%d", i+1), 80))
	}
	settle(t, "tri", 3, cs...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := regs[1].Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	v := settle(t, "tri", 2, cs...)
	if v[regs[1].Instance()] != "" {
		t.Fatalf("deregistered entry still shown: %v", v)
	}
}

// TestJoinKillRestart: a server killed with SIGKILL has its entries expire
// on the others after the grace period; started again (same port), its
// client registers again, the others dial it again, and the entries come
// back.
func TestJoinKillRestart(t *testing.T) {
	port := freePort(t)
	aArgs := []string{"--port", itoa(port), "--service", "ssh=tcp://10.0.0.9:22"}
	a, aAddr := startJoin(t, "KA", aArgs...)
	b, bAddr := startJoin(t, "KB", "--join", aAddr)
	waitLine(t, b, "[Hydra Server] Joined with "+aAddr)
	owner, cb := client(t, aAddr), client(t, bAddr)
	r := register(t, owner, "kill", "10.0.0.1", 1) // heartbeated by owner
	settle(t, "kill", 1, owner, cb)
	settle(t, "ssh", 1, owner, cb)

	a.signal(syscall.SIGKILL)
	a.wait()
	killed := time.Now()
	settle(t, "kill", 0, cb)
	settle(t, "ssh", 0, cb)
	t.Logf("A's entries expired on B %v after SIGKILL (grace 2s)", time.Since(killed).Round(10*time.Millisecond))

	a2, _ := startJoin(t, "KA", aArgs...)
	_ = a2
	waitLine(t, b, "[Hydra Server] Joined with "+aAddr)
	v := settle(t, "kill", 1, owner, cb)
	if v[r.Instance()] == "" || !strings.HasPrefix(v[r.Instance()], "KA@") {
		t.Fatalf("after the restart: %v (want %s)", v, r.Instance())
	}
	settle(t, "ssh", 1, owner, cb)
}

// proxy relays TCP and can be cut: it stops moving bytes, as a network
// that drops every packet, while both processes stay up.
type proxy struct {
	ln     net.Listener
	mu     sync.Mutex
	cut    bool
	resume chan struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, resume: make(chan struct{})}
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		p.setCut(false)
		p.mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			conns = append(conns, c, u)
			p.mu.Unlock()
			go p.pipe(c, u)
			go p.pipe(u, c)
		}
	}()
	return p
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cut, ch := p.cut, p.resume
			p.mu.Unlock()
			if cut {
				<-ch
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cut == p.cut {
		return
	}
	p.cut = cut
	if !cut {
		close(p.resume)
		p.resume = make(chan struct{})
	}
}

// TestJoinLinkCut: B joins A through a relay; the relay is cut while both
// processes stay up: after the grace period each side's entries expire on
// the other; restored, B joins again and the entries come back.
func TestJoinLinkCut(t *testing.T) {
	_, a := startJoin(t, "LA")
	px := newProxy(t, a)
	pAddr := px.ln.Addr().String()
	b, bAddr := startJoin(t, "LB", "--join", pAddr)
	waitLine(t, b, "[Hydra Server] Joined with "+pAddr)
	ca, cb := client(t, a), client(t, bAddr)
	register(t, ca, "cut", "10.0.0.1", 1)
	register(t, cb, "cut", "10.0.0.2", 2)
	settle(t, "cut", 2, ca, cb)
	px.setCut(true)
	cutAt := time.Now()
	deadline := time.Now().Add(20 * time.Second)
	for len(joinView(t, ca, "cut")) != 1 || len(joinView(t, cb, "cut")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("entries did not expire across the cut: A %v, B %v", joinView(t, ca, "cut"), joinView(t, cb, "cut"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("each side's entries expired on the other %v after the cut (grace 2s)", time.Since(cutAt).Round(10*time.Millisecond))
	px.setCut(false)
	waitLine(t, b, "[Hydra Server] Joined with "+pAddr)
	settle(t, "cut", 2, ca, cb)
}

// TestJoinThousand: 1000 entries on A sync to B when B joins: once B says
// "Joined with", they are all there.
func TestJoinThousand(t *testing.T) {
	_, a := startJoin(t, "MA")
	ca := client(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1000; i += 8 {
				_, err := ca.Request(ctx, registry.VerbRegister, map[string]any{"token": ca.Token(), "name": fmt.Sprintf("bulk%d", i%10),
					"host": fmt.Sprintf("10.1.%d.%d", i/250, i%250), "port": 1000 + i, "ttl": 600, "meta": map[string]string{"n": itoa(i)}})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b, bAddr := startJoin(t, "MB", "--join", a)
	waitLine(t, b, "[Hydra Server] Joined with "+a)
	es, err := client(t, bAddr).ListEntries(ctx)
	if err != nil || len(es) != 1000 {
		t.Fatalf("B holds %d entries when joined (%v)", len(es), err)
	}
	for _, e := range es {
		if e.Origin != "MA" || e.Meta["n"] == "" {
			t.Fatalf("entry %+v", e)
		}
	}
}

// TestJoinRuntime: `hydra-server join` makes a running server join another.
func TestJoinRuntime(t *testing.T) {
	_, a := startJoin(t, "RA")
	b, bAddr := startJoin(t, "RB")
	_, port, _ := net.SplitHostPort(bAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, out, errs := runCmd(ctx, "join", "--port", port, a)
	if code != 0 || out != "joined "+a+" (server RA)\n" {
		t.Fatalf("join: %d %q %q", code, out, errs)
	}
	waitLine(t, b, "[Hydra Server] Joined with "+a)
	code, out, _ = runCmd(ctx, "join", "--port", port, "tcp://"+a)
	if code != 0 || out != "joined "+a+" (server RA)\n" {
		t.Fatalf("join again: %d %q", code, out)
	}
	code, out, _ = runCmd(ctx, "join", "--no-wait", "--port", port, "tcp://"+a)
	if code != 0 || out != "already joining "+a+"\n" {
		t.Fatalf("join --no-wait again: %d %q", code, out)
	}
	if code, _, errs := runCmd(ctx, "join", "--port", port, "udp://x"); code != 2 {
		t.Fatalf("bad address: %d %q", code, errs)
	}
	register(t, client(t, a), "rt", "10.0.0.1", 1)
	settle(t, "rt", 1, client(t, bAddr))
}

// TestJoinFlag: the forms --join takes, from flags, environment and file.
func TestJoinFlag(t *testing.T) {
	var l joinList
	for _, v := range []string{"10.0.0.7", "h:9", "tcp://h2:10", "a b,c", "[::1]:7", "::1"} {
		if err := l.Set(v); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
	}
	want := "10.0.0.7:8420 h:9 h2:10 a:8420 b:8420 c:8420 [::1]:7 [::1]:8420"
	if l.String() != want {
		t.Fatalf("got %q, want %q", l.String(), want)
	}
	for _, v := range []string{"ipc:///x", "h:0", "h:x"} {
		if err := l.Set(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
	// Environment and config file join too; flags add to them.
	_, a := startJoin(t, "EA")
	cfg := t.TempDir() + "/hydra.conf"
	if err := os.WriteFile(cfg, []byte("join "+a+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, []string{"HYDRA_JOIN_GRACE=10s"}, "--port", "0", "--config", cfg)
	p.line()
	waitLine(t, p, "[Hydra Server] Joined with "+a)
}

// TestJoinNetns: two servers in network namespaces made by the test, linked
// by a veth pair; the test reaches each through a veth of its own. The link
// is cut (ip link set down) while both processes stay up: each side's
// entries expire on the other; restored, the servers join again and the
// entries come back. Needs root and iproute2: skipped without them, except
// under CI=true where it must run.
func TestJoinNetns(t *testing.T) {
	ipPath, err := exec.LookPath("ip")
	switch {
	case os.Geteuid() != 0 || err != nil:
		msg := fmt.Sprintf("needs root and iproute2's ip (uid %d, ip: %v)", os.Geteuid(), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipPath, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	k := os.Getpid() % 250
	nsA, nsB := fmt.Sprintf("hyj-a-%d", os.Getpid()), fmt.Sprintf("hyj-b-%d", os.Getpid())
	linkA, linkB := fmt.Sprintf("hyla%d", k), fmt.Sprintf("hylb%d", k)
	ctlA, ctlB := fmt.Sprintf("hyca%d", k), fmt.Sprintf("hycb%d", k)
	run("netns", "add", nsA)
	t.Cleanup(func() { exec.Command(ipPath, "netns", "del", nsA).Run() })
	run("netns", "add", nsB)
	t.Cleanup(func() { exec.Command(ipPath, "netns", "del", nsB).Run() })
	linkNet := fmt.Sprintf("10.213.%d.", k) // A .1 — B .2: the join link
	ctlNetA := fmt.Sprintf("10.214.%d.", k) // test .1 — A .2
	ctlNetB := fmt.Sprintf("10.215.%d.", k) // test .1 — B .2
	for _, ns := range []string{nsA, nsB} {
		run("-n", ns, "link", "set", "lo", "up")
	}
	run("link", "add", linkA, "type", "veth", "peer", "name", linkB)
	run("link", "set", linkA, "netns", nsA)
	run("link", "set", linkB, "netns", nsB)
	run("-n", nsA, "addr", "add", linkNet+"1/30", "dev", linkA)
	run("-n", nsB, "addr", "add", linkNet+"2/30", "dev", linkB)
	run("-n", nsA, "link", "set", linkA, "up")
	run("-n", nsB, "link", "set", linkB, "up")
	for _, x := range []struct{ ns, dev, net string }{{nsA, ctlA, ctlNetA}, {nsB, ctlB, ctlNetB}} {
		inner := x.dev + "i"
		run("link", "add", x.dev, "type", "veth", "peer", "name", inner)
		t.Cleanup(func() { exec.Command(ipPath, "link", "del", x.dev).Run() })
		run("link", "set", inner, "netns", x.ns)
		run("addr", "add", x.net+"1/30", "dev", x.dev)
		run("link", "set", x.dev, "up")
		run("-n", x.ns, "addr", "add", x.net+"2/30", "dev", inner)
		run("-n", x.ns, "link", "set", inner, "up")
	}

	// The servers: A on 8420 in its namespace; B joins A by address alone
	// (the default port).
	startIn := func(ns string, args ...string) *proc {
		cmd := append([]string{"netns", "exec", ns, os.Args[0], "--host", "0.0.0.0"}, append(joinArgs, args...)...)
		p := startExec(t, exec.Command(ipPath, cmd...))
		if l := p.line(); l != "[Hydra Server] Bound to 0.0.0.0:8420" && l != "[Hydra Server] Bound to [::]:8420" {
			t.Fatalf("banner %q", l)
		}
		return p
	}
	pa := startIn(nsA, "--server-id", "NA", "--join-allow", linkNet+"2") // B's address on the link
	pb := startIn(nsB, "--server-id", "NB", "--join", linkNet+"1")
	waitLine(t, pb, "[Hydra Server] Joined with "+linkNet+"1:8420")
	ca, cb := client(t, ctlNetA+"2:8420"), client(t, ctlNetB+"2:8420")
	register(t, ca, "ns", "10.0.0.1", 1)
	register(t, cb, "ns", "10.0.0.2", 2)
	settle(t, "ns", 2, ca, cb)

	run("-n", nsA, "link", "set", linkA, "down")
	cutAt := time.Now()
	deadline := time.Now().Add(20 * time.Second)
	for len(joinView(t, ca, "ns")) != 1 || len(joinView(t, cb, "ns")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("entries did not expire across the cut: A %v, B %v", joinView(t, ca, "ns"), joinView(t, cb, "ns"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("each side's entries expired on the other %v after the link went down (grace 2s)", time.Since(cutAt).Round(10*time.Millisecond))
	for _, p := range []*proc{pa, pb} {
		select {
		case <-p.done:
			t.Fatalf("a server exited during the cut: %s", p.stderr())
		default:
		}
	}
	run("-n", nsA, "link", "set", linkA, "up")
	waitLine(t, pb, "[Hydra Server] Joined with "+linkNet+"1:8420")
	settle(t, "ns", 2, ca, cb)
}

// startExec runs cmd (which runs the test binary as hydra-server) like
// start does.
func startExec(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
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
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("stderr of %v:\n%s", cmd.Args, p.stderr())
		}
	})
	return p
}

// TestJoinRuntimeCurveKey: on a --curve server `hydra-server join` needs
// the peer's key (--key); without it the server refuses, naming the field,
// and with it the link is CURVE (the peer speaks nothing else).
func TestJoinRuntimeCurveKey(t *testing.T) {
	dir := t.TempDir()
	keygen := func(name string) (string, secure.KeyPair) { return tunnelKeys(t, dir, name) }
	aKey, ak := keygen("a.key")
	bKey, _ := keygen("b.key")
	adminKey, admin := keygen("admin.key")
	// Each server's list of servers is the other's KEY.pub (with its signing
	// key: the fleet signs, and each server's id is its origin key); B takes
	// JOIN from the admin key.
	admins := allowFile(t, dir, admin.Public)
	_, a := startJoin(t, "", "--key-file", aKey, "--curve", "--allow-servers", secure.PublicKeyPath(bKey))
	_, b := startJoin(t, "", "--key-file", bKey, "--curve", "--allow-servers", secure.PublicKeyPath(aKey), "--allow-admins", admins)
	_, port, _ := net.SplitHostPort(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := []string{"join", "--port", port, "--server-key", secure.PublicKeyPath(bKey), "--client-key", adminKey}
	code, out, errs := runCmd(ctx, append(cmd, a)...)
	if code != 2 || !strings.Contains(errs, "key is missing") {
		t.Fatalf("join without --key on a CURVE server: %d %q %q", code, out, errs)
	}
	code, out, errs = runCmd(ctx, append(cmd, a, "--key", secure.PublicKeyPath(aKey))...)
	if code != 0 || out != "joined "+a+" (server "+join.OriginID(ak.Signer().Public)+")\n" {
		t.Fatalf("join --key: %d %q %q", code, out, errs)
	}
	if code, _, errs := runCmd(ctx, append(cmd, a, "--key", "x", "--key", "y")...); code != 2 || !strings.Contains(errs, "2 --key") {
		t.Fatalf("two keys for one peer: %d %q", code, errs)
	}
}
