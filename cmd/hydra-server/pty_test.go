package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"golang.org/x/sys/unix"
)

// ptyProc is a hydra-server process on a pseudo-terminal, as a user runs
// it: stdin, stdout and stderr are the terminal, so isTerminal holds and
// what it draws (a progress line, a server-lost message) is what a person
// would see. Use startPty; read with output, waitFor.
type ptyProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	master *os.File
	mu     sync.Mutex
	out    bytes.Buffer // everything written to the terminal, escapes included
	done   chan struct{}
	read   chan struct{} // closed when the terminal has nothing more to read
	code   int
}

// openPty opens a pseudo-terminal pair of cols×rows: the master (ours)
// and the slave (the process's terminal), through /dev/ptmx.
func openPty(cols, rows uint16) (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil { // unlockpt
		m.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN) // ptsname
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		m.Close()
		s.Close()
		return nil, nil, fmt.Errorf("window size: %w", err)
	}
	return m, s, nil
}

// startPty runs hydra-server with args (and extra environment variables)
// on a new 120×40 pseudo-terminal, skipping the test where there is none.
// The process is killed when the test ends, if it still runs.
func startPty(t testing.TB, env []string, args ...string) *ptyProc {
	t.Helper()
	master, slave, err := openPty(120, 40)
	if err != nil {
		requireUnderCI(t)
		t.Skipf("no pseudo-terminal: %v", err)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(baseEnv(), append([]string{"TERM=xterm"}, env...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	p := &ptyProc{t: t, cmd: cmd, master: master, done: make(chan struct{}), read: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		master.Close()
		slave.Close()
		t.Fatal(err)
	}
	slave.Close() // the process holds it now; reads end (EIO) when it exits
	go func() {
		defer close(p.read)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
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
		master.Close()
		if t.Failed() {
			t.Logf("terminal of %v:\n%q", args, p.output())
		}
	})
	return p
}

// output is everything the process wrote to the terminal so far, with
// the terminal's \r\n for each \n and the escape sequences it drew.
func (p *ptyProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the terminal shows every part, and returns the output.
func (p *ptyProc) waitFor(d time.Duration, parts ...string) string {
	p.t.Helper()
	var out string
	testutil.Eventually(p.t, d, fmt.Sprintf("the terminal to show %q", parts), func() bool {
		out = p.output()
		for _, s := range parts {
			if !strings.Contains(out, s) {
				return false
			}
		}
		return true
	})
	return out
}

// wait waits for the process to exit, and for the terminal to be read to
// its end, and returns the exit status.
func (p *ptyProc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("process did not exit in %v; terminal:\n%q", d, p.output())
	}
	select {
	case <-p.read:
	case <-time.After(5 * time.Second):
		p.t.Fatalf("terminal still open after the process exited")
	}
	return p.code
}

// signal sends sig to the process.
func (p *ptyProc) signal(sig os.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatal(err)
	}
}

// TestPtyHelper: the terminal is a terminal to the process (the banner
// arrives with the terminal's line endings) and ends when it exits.
func TestPtyHelper(t *testing.T) {
	p := startPty(t, nil, "version")
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if out := p.output(); !strings.HasPrefix(out, "hydra-server ") || !strings.HasSuffix(out, "\r\n") {
		t.Fatalf("terminal shows %q", out)
	}
}

// TestBenchProgressOnTerminal drives `hydra-server bench` on a terminal:
// while a case runs, a progress line on stderr rewrites itself (the case,
// what it sent, the rate, the time against --duration); it is erased
// before the table; --quiet draws none.
func TestBenchProgressOnTerminal(t *testing.T) {
	p := startPty(t, nil, "bench", "zmtp", "--pattern", "push-pull,req-rep", "--duration", "1500ms")
	p.waitFor(20*time.Second, "\r\x1b[K[1/2] zmtp push-pull 256 B  ", " sent  ", "/s  ", "/1.50s")
	p.waitFor(20*time.Second, "\r\x1b[K[2/2] zmtp req-rep 256 B  ")
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("bench exit %d", code)
	}
	out := p.output()
	// Each redraw starts with \r and erase-line; the last one is erased
	// before the table, whose header then starts a clean line.
	i := strings.LastIndex(out, "\r\x1b[K")
	j := strings.Index(out, "bench  case")
	if i < 0 || j < 0 || i > j || strings.TrimSpace(out[i+len("\r\x1b[K"):j]) != "" {
		t.Fatalf("the progress line is not erased before the table:\n%q", out)
	}
	if strings.Count(out, "[1/2] zmtp push-pull") < 2 {
		t.Errorf("the progress line was drawn once, not redrawn as the case ran:\n%q", out)
	}
	for _, want := range []string{`zmtp\s+push-pull\s+256 B`, `zmtp\s+req-rep\s+256 B`, "msgs/s"} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the table lacks %q:\n%q", want, out)
		}
	}

	q := startPty(t, nil, "bench", "zmtp", "--pattern", "push-pull", "--duration", "600ms", "--quiet")
	if code := q.wait(30 * time.Second); code != 0 {
		t.Fatalf("bench --quiet exit %d", code)
	}
	if out := q.output(); strings.Contains(out, "\x1b[K") || strings.Contains(out, " sent ") || !strings.Contains(out, "push-pull") {
		t.Errorf("bench --quiet on a terminal:\n%q", out)
	}
}
