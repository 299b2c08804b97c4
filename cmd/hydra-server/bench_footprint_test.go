package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// TestFootprint checks the release footprint against the limits
// (scripts/footprint.sh runs it):
//
//   - the linux/arm64 release binary is at most 8 MiB;
//   - a release build of this host's server, started on a free port, has an
//     RSS of at most 15 MiB once idle;
//   - and at most 60 MiB holding 10 000 registered entries.
//
// It runs only with HYDRA_FOOTPRINT=1 (it builds two binaries), on Linux
// (it reads VmRSS from /proc/PID/status). HYDRA_FOOTPRINT_MAX_BINARY,
// _MAX_IDLE_RSS and _MAX_LOADED_RSS (bytes) change the limits. It prints
// one line per figure, "footprint: NAME VALUE", for scripts.
func TestFootprint(t *testing.T) {
	if os.Getenv("HYDRA_FOOTPRINT") != "1" {
		t.Skip("set HYDRA_FOOTPRINT=1 (or run scripts/footprint.sh) to measure the release footprint")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/PID/status: Linux only")
	}
	limit := func(name string, def int64) int64 {
		if v := os.Getenv("HYDRA_FOOTPRINT_" + name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("HYDRA_FOOTPRINT_%s=%q: %v", name, v, err)
			}
			return n
		}
		return def
	}
	maxBinary := limit("MAX_BINARY", 8<<20) // the brief's 8 MB, read as MiB
	maxIdle := limit("MAX_IDLE_RSS", 15<<20)
	maxLoaded := limit("MAX_LOADED_RSS", 60<<20)
	const entries = 10_000
	report := func(name string, v int64, unit string, max int64) {
		fmt.Printf("footprint: %s %d %s (limit %d)\n", name, v, unit, max)
		if v > max {
			t.Errorf("%s is %d %s, over the limit of %d", name, v, unit, max)
		}
	}

	dir := t.TempDir()
	arm64 := buildRelease(t, dir, "linux", "arm64")
	fi, err := os.Stat(arm64)
	if err != nil {
		t.Fatal(err)
	}
	report("linux/arm64-binary-bytes", fi.Size(), "bytes", maxBinary)

	native := buildRelease(t, dir, runtime.GOOS, runtime.GOARCH)
	// The entries come from one address, which holds 1024 by default.
	cmd := exec.Command(native, "--port", "0", "--log-level", "warn", "--max-entries-per-client", "10000")
	cmd.Env = baseEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	banner := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case banner <- sc.Text():
			default:
			}
		}
	}()
	var ep string
	select {
	case l := <-banner:
		addr, ok := strings.CutPrefix(l, "[Hydra Server] Bound to ")
		if !ok {
			t.Fatalf("banner %q", l)
		}
		ep = "tcp://" + addr
	case <-time.After(30 * time.Second):
		t.Fatal("no banner")
	}
	pid := cmd.Process.Pid

	time.Sleep(time.Second) // settled: runtime started, nothing connected
	idle := vmRSS(t, pid)
	report(fmt.Sprintf("idle-rss-bytes(%s/%s)", runtime.GOOS, runtime.GOARCH), idle, "bytes", maxIdle)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	registerMany(ctx, t, ep, entries)
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if info.Entries != entries {
		t.Fatalf("server holds %d entries, want %d", info.Entries, entries)
	}
	time.Sleep(time.Second)
	loaded := vmRSS(t, pid)
	report(fmt.Sprintf("rss-with-%d-entries-bytes(%s/%s)", entries, runtime.GOOS, runtime.GOARCH), loaded, "bytes", maxLoaded)
	fmt.Printf("footprint: server-heap-bytes %d (Go heap in use, from INFO)\n", info.Memory.HeapAlloc)

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("server exit after SIGTERM: %v", err)
	}
}

// buildRelease builds hydra-server for goos/goarch as scripts/dist.sh does
// (static, stripped, -trimpath) and returns its path.
func buildRelease(t *testing.T, dir, goos, goarch string) string {
	t.Helper()
	bin := filepath.Join(dir, "hydra-server-"+goos+"-"+goarch)
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "nethttpomithttp2", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build for %s/%s: %v\n%s", goos, goarch, err, out)
	}
	return bin
}

// vmRSS reads a process's resident set size from /proc/PID/status.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// registerMany registers n entries over one connection, 1000 per token,
// with a little metadata and
// a TTL long enough to need no heartbeat, keeping at most 256 requests in
// flight.
func registerMany(ctx context.Context, t *testing.T, ep string, n int) {
	t.Helper()
	s, err := zmtp.NewSocket(zmtp.DEALER, zmtp.Config{Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Connect(ep); err != nil {
		t.Fatal(err)
	}
	tok := fmt.Sprintf("footprint-%d", time.Now().UnixNano())
	recv := func() {
		rep, err := s.RecvContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep) != 2 || string(rep[0]) != "OK" {
			t.Fatalf("register reply %q", rep)
		}
	}
	inFlight := 0
	for i := range n {
		if inFlight == 256 {
			recv()
			inFlight--
		}
		body := fmt.Appendf(nil, `{"token":"%s-%d","name":"svc-%04d","host":"10.%d.%d.%d","port":%d,"ttl":600,"meta":{"version":"1.4.2","zone":"eu-west-1a"}}`,
			tok, i/1000, i/3, i>>16&255, i>>8&255, i&255, 1024+i%60000)
		if err := s.SendContext(ctx, []byte("REGISTER"), body); err != nil {
			t.Fatal(err)
		}
		inFlight++
	}
	for ; inFlight > 0; inFlight-- {
		recv()
	}
}
