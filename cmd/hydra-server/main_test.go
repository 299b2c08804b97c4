package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as hydra-server: with HYDRA_SERVER_TEST_MAIN=1
// it runs main, so tests start real server processes without a build step.
func TestMain(m *testing.M) {
	if os.Getenv("HYDRA_SERVER_TEST_MAIN") == "1" {
		main()
		return
	}
	if os.Getenv("HYDRA_SERVER_TEST_IDLE") == "1" {
		// A process with a server's command line that does nothing (health
		// --pid reads it) until killed. (A bare select{} would be a
		// deadlock the runtime ends at once.)
		for {
			time.Sleep(time.Hour)
		}
	}
	os.Exit(m.Run())
}

// proc is a hydra-server process.
type proc struct {
	t     testing.TB
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	errb  bytes.Buffer
	done  chan struct{}
	code  int
}

// baseEnv is the test's environment without HYDRA_* variables.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HYDRA_") {
			env = append(env, kv)
		}
	}
	// Race-enabled binaries sleep 1s at exit unless told otherwise.
	return append(env, "HYDRA_SERVER_TEST_MAIN=1", "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
}

// start runs hydra-server with args and extra environment variables.
func start(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(baseEnv(), env...)
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
		err := cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		_ = err
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
			t.Logf("stderr of %v:\n%s", args, p.stderr())
		}
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errb.String()
}

// line returns the next line of stdout.
func (p *proc) line() string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("stdout closed; stderr:\n%s", p.stderr())
		}
		return l
	case <-time.After(10 * time.Second):
		p.t.Fatalf("no output line; stderr:\n%s", p.stderr())
	}
	return ""
}

// wait waits for the process to exit and returns its status.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(15 * time.Second):
		p.t.Fatalf("process did not exit; stderr:\n%s", p.stderr())
	}
	return -1
}

func (p *proc) signal(sig os.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// startServer runs a server process on a free port and returns it and
// its endpoint.
func startServer(t testing.TB, env []string, args ...string) (*proc, string) {
	t.Helper()
	p := start(t, env, append([]string{"--port", "0"}, args...)...)
	banner := p.line()
	addr, ok := strings.CutPrefix(banner, "[Hydra Server] Bound to ")
	if !ok {
		t.Fatalf("banner %q", banner)
	}
	return p, "tcp://" + addr
}

func portOf(t testing.TB, endpoint string) string {
	_, port, err := net.SplitHostPort(strings.TrimPrefix(endpoint, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runCmd runs a command line in-process and returns its status, stdout
// and stderr.
func runCmd(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(ctx, func() {}, stdio{out: &out, err: &errb}, args)
	return code, out.String(), errb.String()
}

func TestDefaultBanner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:8420")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("port 8420 is busy: %v", err)
		}
		t.Skipf("port 8420 is busy (another hydra-server?): %v", err)
	}
	ln.Close()
	p := start(t, nil)
	if l := p.line(); l != "[Hydra Server] Bound to 127.0.0.1:8420" {
		t.Fatalf("banner %q", l)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if !strings.Contains(p.stderr(), "shutting down") {
		t.Fatalf("stderr: %s", p.stderr())
	}
}

// TestFlagsEnvConfig: flags win over HYDRA_* variables, which win over the
// config file.
func TestFlagsEnvConfig(t *testing.T) {
	pf, pe, pc := freePort(t), freePort(t), freePort(t)
	dir := t.TempDir()
	conf := dir + "/hydra.conf"
	if err := os.WriteFile(conf, fmt.Appendf(nil, "# a comment\nport %d\nlog-level debug\nservice ssh=tcp://127.0.0.1:22 web=http://10.0.0.1:80?zone=a\n", pc), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		args []string
		want int
	}{
		{"config", nil, []string{"--config", conf}, pc},
		{"env over config", []string{"HYDRA_PORT=" + strconv.Itoa(pe)}, []string{"--config", conf}, pe},
		{"config from env", []string{"HYDRA_CONFIG=" + conf}, nil, pc},
		{"flag over env", []string{"HYDRA_PORT=" + strconv.Itoa(pe), "HYDRA_CONFIG=" + conf}, []string{"--port", strconv.Itoa(pf)}, pf},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := start(t, c.env, c.args...)
			if l, want := p.line(), fmt.Sprintf("[Hydra Server] Bound to 127.0.0.1:%d", c.want); l != want {
				t.Fatalf("banner %q, want %q", l, want)
			}
			if c.args == nil || c.args[0] == "--config" || c.name == "config from env" {
				// The config's other lines took effect too.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				code, out, errs := runCmd(ctx, "list", "--entries", "--port", strconv.Itoa(c.want))
				if code != 0 || !strings.Contains(out, "ssh ") || !strings.Contains(out, "static") || !strings.Contains(out, "zone=a") {
					t.Fatalf("list: %d %q %q", code, out, errs)
				}
				if !strings.Contains(p.stderr(), "level=DEBUG") {
					t.Errorf("log-level from the config file not applied: %s", p.stderr())
				}
			}
			p.signal(os.Interrupt)
			if code := p.wait(); code != 0 {
				t.Fatalf("exit %d", code)
			}
		})
	}
	// A JSON config file works too.
	jconf := dir + "/hydra.json"
	os.WriteFile(jconf, fmt.Appendf(nil, `{"port": %d, "service": ["a=tcp://10.0.0.1:1", "b=udp://10.0.0.2:2"]}`, pc), 0o600)
	p := start(t, nil, "--config", jconf)
	if l := p.line(); l != fmt.Sprintf("[Hydra Server] Bound to 127.0.0.1:%d", pc) {
		t.Fatalf("json config: %q", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code, out, _ := runCmd(ctx, "lookup", "b", "--port", strconv.Itoa(pc)); code != 0 || !strings.Contains(out, "10.0.0.2:2") || !strings.Contains(out, "udp") {
		t.Fatalf("lookup b: %d %q", code, out)
	}
}

func TestHelpAndVersion(t *testing.T) {
	ctx := context.Background()
	code, out, _ := runCmd(ctx, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"--host", "--port", "--proto", "--config", "--log-level", "--log-format", "--version",
		"--max-entries-per-client", "--max-metadata-bytes", "--service", "$HYDRA_PORT", "$HYDRA_LOG_FORMAT",
		"register", "lookup", "list", "watch", "(default 8420)", "(default 127.0.0.1)"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	for _, cmd := range []string{"register", "lookup", "list", "watch"} {
		code, out, _ := runCmd(ctx, cmd, "--help")
		if code != 0 || !strings.Contains(out, "Usage: hydra-server "+cmd) || !strings.Contains(out, "--port") {
			t.Errorf("%s --help: %d %q", cmd, code, out)
		}
		if c2, out2, _ := runCmd(ctx, "help", cmd); c2 != 0 || out2 != out {
			t.Errorf("help %s differs from %s --help", cmd, cmd)
		}
	}
	code, out, _ = runCmd(ctx, "--version")
	want := fmt.Sprintf("hydra-server devel (%s %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if code != 0 || out != want {
		t.Fatalf("--version: %d %q, want %q", code, out, want)
	}
	if _, out2, _ := runCmd(ctx, "version"); out2 != out {
		t.Fatalf("version: %q", out2)
	}
	// HYDRA_VERSION meant for something else neither prints the version
	// nor breaks parsing.
	t.Setenv("HYDRA_VERSION", "1.2.3")
	t.Setenv("HYDRA_PORT", "99999")
	if code, _, errs := runCmd(ctx); code != 2 || !strings.Contains(errs, "--port 99999 out of range") {
		t.Fatalf("with HYDRA_VERSION set: %d %q", code, errs)
	}
}

func TestBadCommandLines(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--log-format", "xml"}, `--log-format "xml"`},
		{[]string{"--proto", "udp"}, `--proto "udp": want tcp or ipc`},
		{[]string{"--port", "70000"}, "out of range"},
		{[]string{"--no-such-flag"}, "hydra-server: unknown flag --no-such-flag\nRun 'hydra-server --help' for usage.\n"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"status"}, `unknown command "status": did you mean "info"?`},
		{[]string{"--service", "nonsense"}, "NAME=PROTO://HOST:PORT"},
		{[]string{"--min-ttl", "10s", "--default-ttl", "5s"}, "hydra-server: --default-ttl 5s is outside [--min-ttl 10s, --max-ttl 24h0m0s]\n"},
		{[]string{"--min-ttl", "10s", "--max-ttl", "1s"}, "hydra-server: --min-ttl 10s is above --max-ttl 1s\n"},
		{[]string{"--join-interval", "2s", "--join-timeout", "3s"}, "hydra-server: --join-timeout 3s must be at least twice --join-interval 2s\n"},
		{[]string{"--max-entries", "10", "--max-entries-per-client", "20"}, "hydra-server: --max-entries-per-client 20 is above --max-entries 10\n"},
		{[]string{"--config", "/nonexistent/hydra.conf"}, "no such file"},
		{[]string{"lookup"}, "want one NAME"},
		{[]string{"register", "web"}, "want NAME and"},
		{[]string{"register", "web", "10.0.0.1:99999"}, "port out of range"},
	} {
		code, _, errs := runCmd(ctx, c.args...)
		if code != 2 || !strings.Contains(errs, c.says) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, errs, c.says)
		}
	}
}

func TestLogsAndWarning(t *testing.T) {
	// --dns "" and --http "": another server (or test) may hold the default
	// 127.0.0.1:8600 or 127.0.0.1:8500, whose warnings are not the one this
	// test is about.
	p, ep := startServer(t, []string{"HYDRA_LOG_FORMAT=json"}, "--host", "0.0.0.0", "--log-level", "warn", "--dns", "", "--http", "")
	if !strings.HasPrefix(ep, "tcp://0.0.0.0:") {
		t.Errorf("--host 0.0.0.0 bound %s, want IPv4's any address", ep)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(p.stderr()), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], `{"time":`) || !strings.Contains(lines[0], `"level":"WARN"`) || !strings.Contains(lines[0], "in plaintext (NULL)") || !strings.Contains(lines[0], "give --key-file") {
		t.Fatalf("want exactly the JSON warning at level warn, got:\n%s", p.stderr())
	}
	// On loopback there is no warning, IPv6's written in brackets too.
	for _, host := range [][]string{nil, {"--host", "[::1]"}, {"--host", "::1"}} {
		p, _ = startServer(t, nil, append([]string{"--http", ""}, host...)...)
		p.signal(syscall.SIGINT)
		p.wait()
		if strings.Contains(p.stderr(), "CURVE") || !strings.Contains(p.stderr(), "level=INFO") {
			t.Fatalf("loopback server %v stderr:\n%s", host, p.stderr())
		}
	}
}
