package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
)

var (
	hydraBin = flag.String("hydra", "hydra-server", "hydra-server binary")
	dur      = flag.Duration("duration", 3*time.Second, "how long each stream sends")
	rtts     = flag.String("rtt", "100ms", "comma-separated round trips to emulate with a delaying relay (empty: none)")
	noSSH    = flag.Bool("no-ssh", false, "skip ssh -L")
	window   = flag.String("window", "", "--tunnel-window for the hydra servers (default: theirs)")
	logLevel = "warn"
)

func init() {
	if l := os.Getenv("TUNNELBENCH_LOG"); l != "" {
		logLevel = l
	}
}

// sshCiphers are the ciphers ssh -L is measured with.
var sshCiphers = []string{"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"}

func main() {
	flag.Parse()
	fmt.Printf("one TCP stream, %v each, loopback, %s\n\n", *dur, time.Now().Format(time.RFC3339))
	tb := newTunnelBench()
	defer tb.close()
	tb.direct()
	for _, s := range strings.Split(*rtts, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		rtt, err := time.ParseDuration(s)
		check(err)
		tb.overRelay(rtt)
	}
}

// tunnelBench is what one run started: the sink, server B in front of it,
// the A servers tunnelling to B, relays and sshd.
type tunnelBench struct {
	tmp    string
	sink   string // the sink's address
	bAddr  string // server B's
	procs  []*exec.Cmd
	relays []*testutil.Relay
	sshd   *sshServer // nil: no ssh -L

	// keysA are key files for A servers still to start, one each: B keys
	// its peers by public key, and a second server with the same key
	// would take over the first one's tunnel.
	keysA []string
	keyB  string
	kpB   secure.KeyPair
	allow string // B's allow-list: every A key
}

// newTunnelBench starts the sink and server B, which serves the sink as a
// static service, and sshd unless -no-ssh.
func newTunnelBench() *tunnelBench {
	tmp, err := os.MkdirTemp("", "tunnelbench")
	check(err)
	tb := &tunnelBench{tmp: tmp, sink: startSink()}
	var allowed strings.Builder
	for i := range 4 {
		k, kp := keys(tmp, fmt.Sprintf("a%d", i))
		tb.keysA = append(tb.keysA, k)
		allowed.WriteString(kp.Public.String() + "\n")
	}
	tb.keyB, tb.kpB = keys(tmp, "b")
	tb.allow = filepath.Join(tmp, "allow")
	check(os.WriteFile(tb.allow, []byte(allowed.String()), 0o644))
	tb.bAddr = tb.startB()
	if !*noSSH {
		if tb.sshd, err = startSSHD(tmp); err != nil {
			fmt.Printf("ssh -L: skipped: %v\n", err)
		}
	}
	return tb
}

func (tb *tunnelBench) close() {
	if tb.sshd != nil {
		tb.sshd.stop()
	}
	for _, r := range tb.relays {
		r.Close()
	}
	for _, p := range tb.procs {
		p.Process.Kill()
		p.Wait()
	}
	os.RemoveAll(tb.tmp)
}

// startB starts server B and returns its address.
func (tb *tunnelBench) startB() string {
	args := []string{"--port", "0", "--key-file", tb.keyB, "--allow-tunnels", tb.allow, "--service", "sink=tcp://" + tb.sink, "--tunnel-export", "sink", "--log-level", logLevel}
	if *window != "" {
		args = append(args, "--tunnel-window", *window)
	}
	p, ep := startHydra(args...)
	tb.procs = append(tb.procs, p)
	return strings.TrimPrefix(ep, "tcp://")
}

// tunnelTo starts an A server tunnelling to B at addr (B or a relay in
// front of it) and returns the address of A's proxy for the sink: what is
// measured.
func (tb *tunnelBench) tunnelTo(addr string) string {
	keyA := tb.keysA[0]
	tb.keysA = tb.keysA[1:]
	args := []string{"--port", "0", "--key-file", keyA, "--tunnel", addr, "--remote-key", tb.kpB.Public.String(), "--log-level", logLevel}
	if *window != "" {
		args = append(args, "--tunnel-window", *window)
	}
	p, ep := startHydra(args...)
	tb.procs = append(tb.procs, p)
	return proxyAddr(ep, "sink")
}

// relay starts a relay to target that delays each direction by oneWay.
func (tb *tunnelBench) relay(target string, oneWay time.Duration) string {
	r := testutil.NewRelay(nil, target, oneWay)
	tb.relays = append(tb.relays, r)
	return r.Addr()
}

// direct compares raw TCP, the tunnel and ssh -L on loopback.
func (tb *tunnelBench) direct() {
	raw := measure("raw TCP", tb.sink)
	hy := measure("hydra tunnel", tb.tunnelTo(tb.bAddr))
	ssh := tb.measureSSH("", tb.sshdAddr())
	fmt.Println()
	fmt.Printf("hydra / raw TCP: %.2f\n", hy/raw)
	for i, c := range sshCiphers {
		if ssh[i] > 0 {
			fmt.Printf("hydra / ssh -L %s: %.2f\n", c, hy/ssh[i])
		}
	}
}

// overRelay repeats the comparison over relays that add rtt to the round
// trip, where the stream window decides.
func (tb *tunnelBench) overRelay(rtt time.Duration) {
	fmt.Printf("\nover a delaying relay, %v round trip:\n", rtt)
	r := measure(fmt.Sprintf("raw TCP @%v", rtt), tb.relay(tb.sink, rtt/2))
	h := measure(fmt.Sprintf("hydra tunnel @%v", rtt), tb.tunnelTo(tb.relay(tb.bAddr, rtt/2)))
	fmt.Printf("hydra / raw TCP @%v: %.2f\n", rtt, h/r)
	if tb.sshd == nil {
		return
	}
	ssh := tb.measureSSH(fmt.Sprintf(" @%v", rtt), tb.relay(tb.sshd.addr, rtt/2))
	for i, c := range sshCiphers {
		if ssh[i] > 0 {
			fmt.Printf("hydra / ssh -L %s @%v: %.2f\n", c, rtt, h/ssh[i])
		}
	}
}

func (tb *tunnelBench) sshdAddr() string {
	if tb.sshd == nil {
		return ""
	}
	return tb.sshd.addr
}

// measureSSH measures ssh -L with each of sshCiphers through via (sshd or
// a relay in front of it) and returns MB/s by cipher (0: failed). Without
// sshd it measures nothing.
func (tb *tunnelBench) measureSSH(suffix, via string) []float64 {
	res := make([]float64, len(sshCiphers))
	if tb.sshd == nil {
		return res
	}
	for i, c := range sshCiphers {
		l, stop, err := tb.sshd.forward(c, via, tb.sink)
		if err != nil {
			fmt.Printf("ssh -L %s: %v\n", c, err)
			continue
		}
		res[i] = measure("ssh -L "+c+suffix, l)
		stop()
	}
	return res
}

// measure streams through addr for -duration and prints MB/s and, on
// Linux, what the whole machine's CPU did meanwhile (all processes:
// sender, receiver, the relays under test): what a byte costs, which
// moves less than MB/s with the machine's state.
func measure(name, addr string) float64 {
	before, statErr := readCPUStat()
	mbs, bytes, el, err := stream(addr, *dur)
	if err != nil {
		fmt.Printf("%-40s error: %v\n", name, err)
		return 0
	}
	line := fmt.Sprintf("%-40s %9.1f MB/s", name, mbs)
	if after, err := readCPUStat(); statErr == nil && err == nil && after.total > before.total && bytes > 0 {
		busy := float64(after.busy-before.busy) / float64(after.total-before.total)
		cpuSec := busy * el.Seconds() * float64(runtime.NumCPU())
		line += fmt.Sprintf("   CPU busy %3.0f%%, %.2f ns/B", 100*busy, cpuSec/float64(bytes)*1e9)
	}
	fmt.Println(line)
	return mbs
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "tunnelbench:", err)
		os.Exit(1)
	}
}

func keys(dir, name string) (string, secure.KeyPair) {
	p := filepath.Join(dir, name+".key")
	kp, err := secure.Keygen(p, true)
	check(err)
	return p, kp
}

func startHydra(args ...string) (*exec.Cmd, string) {
	cmd := exec.Command(*hydraBin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		check(fmt.Errorf("%s printed no banner", *hydraBin))
	}
	addr, ok := strings.CutPrefix(sc.Text(), "[Hydra Server] Bound to ")
	if !ok {
		check(fmt.Errorf("banner %q", sc.Text()))
	}
	go io.Copy(io.Discard, out)
	return cmd, "tcp://" + addr
}

// proxyAddr waits for the tunnel proxy of name at the server at ep.
func proxyAddr(ep, name string) string {
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: ep})
	check(err)
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		es, _ := c.Lookup(ctx, name)
		cancel()
		for _, e := range es {
			if e.Meta[tunnel.MetaPeer] != "" {
				return e.Addr()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	check(fmt.Errorf("no tunnel proxy for %s at %s", name, ep))
	return ""
}

// startSink accepts streams, counts their bytes until EOF and answers
// with the count (8 bytes).
func startSink() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 256<<10)
				var n int64
				for {
					k, err := c.Read(buf)
					n += int64(k)
					if err != nil {
						break
					}
				}
				c.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
			}()
		}
	}()
	return ln.Addr().String()
}

// stream sends for d through addr and returns MB/s as the sink counted
// them (received bytes over the time to the sink's answer), the bytes and
// that time.
func stream(addr string, d time.Duration) (mbs float64, n uint64, el time.Duration, err error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.Close()
	buf := make([]byte, 128<<10)
	start := time.Now()
	c.SetWriteDeadline(start.Add(d))
	for {
		if _, err := c.Write(buf); err != nil {
			break
		}
	}
	c.SetWriteDeadline(time.Time{})
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	var b [8]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, 0, 0, fmt.Errorf("no count from the sink: %w", err)
	}
	el = time.Since(start)
	n = binary.BigEndian.Uint64(b[:])
	return float64(n) / el.Seconds() / 1e6, n, el, nil
}

// cpuStat is the machine's CPU time so far, from /proc/stat's "cpu" line
// (Linux), in clock ticks summed over all CPUs.
type cpuStat struct{ busy, total uint64 }

func readCPUStat() (cpuStat, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return cpuStat{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice,
	// already counted in user and nice]
	var st cpuStat
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuStat{}, fmt.Errorf("/proc/stat: %w", err)
		}
		st.total += n
		if i <= 2 || i == 5 || i == 6 {
			st.busy += n
		}
	}
	return st, nil
}

// sshServer is an OpenSSH sshd on loopback with a throwaway config.
type sshServer struct {
	dir, addr, key, user string
	cmd                  *exec.Cmd
}

func startSSHD(tmp string) (*sshServer, error) {
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/sshd"); err2 != nil {
			return nil, fmt.Errorf("sshd not found (apt-get install openssh-server openssh-client)")
		}
		sshd = "/usr/sbin/sshd"
	}
	dir := filepath.Join(tmp, "ssh")
	check(os.MkdirAll(dir, 0o700))
	for _, k := range []string{"host", "user"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "user.pub"))
	check(os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cfg := fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s/host
AuthorizedKeysFile %s/authorized_keys
PidFile %s/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
Ciphers chacha20-poly1305@openssh.com,aes128-gcm@openssh.com
Compression no
`, port, dir, dir, dir)
	check(os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600))
	os.MkdirAll("/run/sshd", 0o755)
	cmd := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			user := os.Getenv("USER")
			if user == "" {
				user = "root"
			}
			return &sshServer{dir: dir, addr: addr, key: filepath.Join(dir, "user"), user: user, cmd: cmd}, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	return nil, fmt.Errorf("sshd did not start")
}

func (s *sshServer) stop() { s.cmd.Process.Kill(); s.cmd.Wait() }

// forward runs ssh -N -L with cipher through via (sshd or a relay in front
// of it) to target, and returns the local address.
func (s *sshServer) forward(cipher, via, target string) (string, func(), error) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	local := ln.Addr().String()
	ln.Close()
	h, p, _ := net.SplitHostPort(via)
	cmd := exec.Command("ssh", "-N", "-T", "-i", s.key, "-p", p, "-c", cipher,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes",
		"-o", "BatchMode=yes", "-o", "Compression=no", "-o", "LogLevel=ERROR",
		"-L", local+":"+target, s.user+"@"+h)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", local); err == nil {
			c.Close()
			return local, stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("ssh -L did not come up")
}
