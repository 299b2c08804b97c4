// Command tunnelbench measures one bulk TCP stream through a Hydra tunnel
// (two hydra-server processes on loopback) next to raw TCP and OpenSSH
// `ssh -L` (chacha20-poly1305 and aes128-gcm; sshd started here on
// loopback with a throwaway key and config in a temp dir), in the same
// run, and prints MB/s and ratios. With -rtt it repeats the comparison
// over a delaying TCP relay (this kernel has no netem), where the stream
// window decides.
//
//	go build -o /tmp/hydra-server ./cmd/hydra-server
//	go run ./bench/tunnelbench -hydra /tmp/hydra-server -rtt 100ms
//
// bench/tunnel.sh does both.
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
	"sync"
	"time"

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

func main() {
	flag.Parse()
	tmp, err := os.MkdirTemp("", "tunnelbench")
	check(err)
	defer os.RemoveAll(tmp)
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}()
	sink := startSink()
	fmt.Printf("one TCP stream, %v each, loopback, %s\n\n", *dur, time.Now().Format(time.RFC3339))

	type row struct {
		name string
		mbs  float64
	}
	var rows []row
	measure := func(name, addr string) float64 {
		before, statErr := readCPUStat()
		mbs, bytes, el, err := stream(addr, *dur)
		if err != nil {
			fmt.Printf("%-40s error: %v\n", name, err)
			return 0
		}
		line := fmt.Sprintf("%-40s %9.1f MB/s", name, mbs)
		// The whole machine's CPU while the stream ran (all processes:
		// sender, receiver, the relays under test): what a byte costs,
		// which moves less than MB/s with the machine's state.
		if after, err := readCPUStat(); statErr == nil && err == nil && after.total > before.total && bytes > 0 {
			busy := float64(after.busy-before.busy) / float64(after.total-before.total)
			cpuSec := busy * el.Seconds() * float64(runtime.NumCPU())
			line += fmt.Sprintf("   CPU busy %3.0f%%, %.2f ns/B", 100*busy, cpuSec/float64(bytes)*1e9)
		}
		fmt.Println(line)
		rows = append(rows, row{name, mbs})
		return mbs
	}

	// One key per A process: B keys its peers by public key, and a second
	// server with the same key would take over the first one's tunnel.
	var keysA []string
	var allowed strings.Builder
	for i := range 4 {
		k, kp := keys(tmp, fmt.Sprintf("a%d", i))
		keysA = append(keysA, k)
		allowed.WriteString(kp.Public.String() + "\n")
	}
	keyB, kpB := keys(tmp, "b")
	allow := filepath.Join(tmp, "allow")
	check(os.WriteFile(allow, []byte(allowed.String()), 0o644))

	// B serves the sink as a static service; A tunnels to B (or to a relay
	// in front of B) and its proxy for "sink" is what we measure.
	startB := func() string {
		args := []string{"--port", "0", "--key-file", keyB, "--allow-file", allow, "--service", "sink=tcp://" + sink, "--log-level", logLevel}
		if *window != "" {
			args = append(args, "--tunnel-window", *window)
		}
		p, ep := startHydra(args...)
		procs = append(procs, p)
		return strings.TrimPrefix(ep, "tcp://")
	}
	tunnelTo := func(addr string) string {
		keyA := keysA[0]
		keysA = keysA[1:]
		args := []string{"--port", "0", "--key-file", keyA, "--tunnel", addr, "--remote-key", kpB.Public.String(), "--log-level", logLevel}
		if *window != "" {
			args = append(args, "--tunnel-window", *window)
		}
		p, ep := startHydra(args...)
		procs = append(procs, p)
		return proxyAddr(ep, "sink")
	}
	bAddr := startB()

	raw := measure("raw TCP", sink)
	hy := measure("hydra tunnel", tunnelTo(bAddr))
	var sshRes = map[string]float64{}
	var sshd *sshServer
	if !*noSSH {
		sshd, err = startSSHD(tmp)
		if err != nil {
			fmt.Printf("ssh -L: skipped: %v\n", err)
		} else {
			defer sshd.stop()
			for _, c := range []string{"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"} {
				l, stop, err := sshd.forward(c, sshd.addr, sink)
				if err != nil {
					fmt.Printf("ssh -L %s: %v\n", c, err)
					continue
				}
				sshRes[c] = measure("ssh -L "+c, l)
				stop()
			}
		}
	}
	fmt.Println()
	fmt.Printf("hydra / raw TCP: %.2f\n", hy/raw)
	for c, v := range sshRes {
		if v > 0 {
			fmt.Printf("hydra / ssh -L %s: %.2f\n", c, hy/v)
		}
	}

	for _, s := range strings.Split(*rtts, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		rtt, err := time.ParseDuration(s)
		check(err)
		fmt.Printf("\nover a delaying relay, %v round trip:\n", rtt)
		rawRelay := startDelayRelay(sink, rtt/2)
		r := measure(fmt.Sprintf("raw TCP @%v", rtt), rawRelay)
		bRelay := startDelayRelay(bAddr, rtt/2)
		h := measure(fmt.Sprintf("hydra tunnel @%v", rtt), tunnelTo(bRelay))
		fmt.Printf("hydra / raw TCP @%v: %.2f\n", rtt, h/r)
		if sshd != nil {
			sRelay := startDelayRelay(sshd.addr, rtt/2)
			for _, c := range []string{"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"} {
				l, stop, err := sshd.forward(c, sRelay, sink)
				if err != nil {
					fmt.Printf("ssh -L %s: %v\n", c, err)
					continue
				}
				v := measure(fmt.Sprintf("ssh -L %s @%v", c, rtt), l)
				stop()
				if v > 0 {
					fmt.Printf("hydra / ssh -L %s @%v: %.2f\n", c, rtt, h/v)
				}
			}
		}
	}
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

// startDelayRelay relays to target, delaying every chunk by oneWay in
// each direction (so the round trip grows by 2 × oneWay). It buffers
// without bound: the endpoints' windows are what limit throughput.
func startDelayRelay(target string, oneWay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
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
			go delayPipe(u, c, oneWay)
			go delayPipe(c, u, oneWay)
		}
	}()
	return ln.Addr().String()
}

type chunk struct {
	at time.Time
	b  []byte
}

func delayPipe(dst, src net.Conn, d time.Duration) {
	ch := make(chan chunk, 1<<16)
	var once sync.Once
	closeBoth := func() { once.Do(func() { dst.Close(); src.Close() }) }
	go func() {
		defer close(ch)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				ch <- chunk{time.Now().Add(d), b[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		if w := time.Until(c.at); w > 0 {
			time.Sleep(w)
		}
		if _, err := dst.Write(c.b); err != nil {
			closeBoth()
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
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
