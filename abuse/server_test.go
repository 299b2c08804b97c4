package abuse

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serverBin is the hydra-server binary TestMain builds once.
var serverBin string

// skipReason, when set, is why the suite cannot run here.
var skipReason string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if runtime.GOOS != "linux" {
		skipReason = "reads the server's memory from /proc/PID/status: Linux only"
		return m.Run()
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		skipReason = "no /proc: " + err.Error()
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "hydra-abuse-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "abuse:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	serverBin = filepath.Join(dir, "hydra-server")
	cmd := exec.Command("go", "build", "-o", serverBin, "../cmd/hydra-server")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "abuse: go build ./cmd/hydra-server: %v\n%s", err, out)
		return 1
	}
	raiseFileLimit()
	return m.Run()
}

// raiseFileLimit lifts this process's soft RLIMIT_NOFILE to its hard limit;
// the servers it starts inherit it (5 000 idle connections need more than
// the usual 1024 on both sides).
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func fileLimit() uint64 {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return 0
	}
	return l.Cur
}

func needServer(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// server is one running hydra-server process.
type server struct {
	t      testing.TB
	cmd    *exec.Cmd
	pid    int
	addr   string // the registry's HOST:PORT
	http   string // HOST:PORT of HTTP, "" when off
	stderr string // path of its stderr
	done   chan struct{}
	// tunnels, when set, is how the server accepts tunnels.
	tunnels *tunnelSetup
}

var boundRe = regexp.MustCompile(`Bound to (\S+)`)

// startServer runs the binary with the defaults plus a free port, HTTP on a
// free loopback port, no DNS, and args; it returns once the server printed
// "Bound to". t.Cleanup kills it; a failed test prints its stderr's tail.
func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	needServer(t)
	dir := t.TempDir()
	s := &server{t: t, stderr: filepath.Join(dir, "stderr"), done: make(chan struct{})}
	errf, err := os.Create(s.stderr)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := freeAddr(t)
	all := append([]string{"--port", "0", "--dns", "off", "--http", httpAddr}, args...)
	s.cmd = exec.Command(serverBin, all...)
	s.cmd.Env = cleanEnv()
	s.cmd.Stderr = errf
	// A test binary killed by its -timeout runs no Cleanup: the server
	// goes with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	errf.Close()
	s.pid = s.cmd.Process.Pid
	t.Cleanup(func() { s.stop() })
	bound := make(chan string, 1)
	go s.readStdout(out, bound)
	select {
	case a := <-bound:
		s.addr = a
	case <-time.After(15 * time.Second):
		t.Fatalf("hydra-server %v printed no \"Bound to\" in 15s\n%s", all, s.tail())
	}
	s.http = httpAddr
	return s
}

func (s *server) readStdout(r io.Reader, bound chan<- string) {
	defer close(s.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := boundRe.FindStringSubmatch(sc.Text()); m != nil {
			select {
			case bound <- m[1]:
			default:
			}
		}
	}
	_ = s.cmd.Wait()
}

func (s *server) stop() {
	if s.t.Failed() || os.Getenv("ABUSE_TAIL") != "" {
		s.t.Logf("server stderr (tail):\n%s", s.tail())
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
}

// alive reports whether the process is still running.
func (s *server) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// tail returns the last 40 lines of the server's stderr.
func (s *server) tail() string {
	b, _ := os.ReadFile(s.stderr)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// countLog counts the lines of the server's stderr holding substr.
func (s *server) countLog(substr string) int {
	b, _ := os.ReadFile(s.stderr)
	return bytes.Count(b, []byte(substr)) // one per line: the levels are written once per line
}

// endpoint is the registry's ZMTP endpoint.
func (s *server) endpoint() string { return "tcp://" + s.addr }

// memory is the server's resident set now and at its peak (VmRSS, VmHWM).
type memory struct{ rss, hwm int64 }

func (s *server) memory() memory {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return memory{}
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			m.rss = parseKB(v)
		} else if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			m.hwm = parseKB(v)
		}
	}
	return m
}

func parseKB(v string) int64 {
	kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return kb << 10
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// cleanEnv is this process's environment without HYDRA_ variables, which
// the server would read as flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HYDRA_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitLog waits up to d for a line holding substr in the server's stderr
// and returns how long it took.
func (s *server) waitLog(substr string, d time.Duration) (time.Duration, bool) {
	t0 := time.Now()
	for time.Since(t0) < d {
		if s.countLog(substr) > 0 {
			return time.Since(t0), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(t0), false
}

// heap is the server's go_memstats_heap_alloc_bytes from its /metrics (0 if
// it does not answer within a second).
func (s *server) heap() int64 {
	// No keep-alive: an idle connection's goroutines would outlive the test.
	c := http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + s.http + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_alloc_bytes "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f)
		}
	}
	return 0
}
