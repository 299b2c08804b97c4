package main

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
)

// The case: the remote runs with --host 0.0.0.0 and the local
// side exports a loopback-only service. Its proxy on the remote listens on
// loopback (the entry says so) unless --tunnel-bind publishes it; and
// without --tunnel-export naming it, a loopback-only service never
// crosses. (Before: the proxy listened on *:PORT while its entry said
// 127.0.0.1, and every service crossed.)
func TestTunnelBindAndExport(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("127.0.0.2 is a loopback address only on Linux")
	}
	dir := t.TempDir()
	keyA, kpA := tunnelKeys(t, dir, "a.key")
	keyB, kpB := tunnelKeys(t, dir, "b.key")
	allow := allowFile(t, dir, kpA.Public)
	echo := testutil.EchoServer(t)
	lssh := "lssh=tcp://" + echo.String()
	reach := func(e registry.Entry) bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(e.Port)), 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	for _, c := range []struct {
		name     string
		bArgs    []string
		wantHost string
	}{
		{"Default", nil, "127.0.0.1"},
		{"TunnelBind", []string{"--tunnel-bind", "0.0.0.0"}, "0.0.0.0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, epB := startServer(t, nil, append([]string{"--host", "0.0.0.0", "--plaintext", "--key-file", keyB, "--allow-tunnels", allow}, c.bArgs...)...)
			addrB := "127.0.0.1:" + portOf(t, epB)
			startServer(t, nil, "--key-file", keyA, "--tunnel", addrB, "--remote-key", kpB.Public.String(),
				"--service", lssh, "--tunnel-export", "lssh")
			e := nodetest.TunnelProxy(t, tclient(t, "tcp://"+addrB), "lssh")
			if e.Host != c.wantHost {
				t.Fatalf("proxy entry host %q, want %q", e.Host, c.wantHost)
			}
			if got, want := reach(e), c.wantHost != "127.0.0.1"; got != want {
				t.Fatalf("proxy at port %d reachable beyond 127.0.0.1: %v, want %v", e.Port, got, want)
			}
			if err := echoVia(e.Addr(), []byte("through")); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("LoopbackStaysHome", func(t *testing.T) {
		_, epB := startServer(t, nil, "--key-file", keyB, "--allow-tunnels", allow)
		startServer(t, nil, "--key-file", keyA, "--tunnel", strings.TrimPrefix(epB, "tcp://"), "--remote-key", kpB.Public.String(),
			"--service", lssh, "--service", "pub=tcp://192.0.2.1:22")
		cb := tclient(t, epB)
		nodetest.TunnelProxy(t, cb, "pub") // the set has arrived
		if es, err := cb.Lookup(testutil.Context(t, 5*time.Second), "lssh"); err == nil && len(es) > 0 {
			t.Fatalf("a loopback-only service crossed without --tunnel-export: %+v", es)
		}
	})
}

// SIGHUP with A's key removed from B's allow file closes the established
// tunnel, and a connection carrying data through it, before B says it
// reloaded (before: data still flowed 8s later).
func TestTunnelSIGHUPRevokes(t *testing.T) {
	dir := t.TempDir()
	keyA, kpA := tunnelKeys(t, dir, "a.key")
	keyB, kpB := tunnelKeys(t, dir, "b.key")
	allow := allowFile(t, dir, kpA.Public)
	pB, epB := startServer(t, nil, "--key-file", keyB, "--allow-tunnels", allow)
	pA, _ := startServer(t, nil, "--key-file", keyA, "--tunnel", strings.TrimPrefix(epB, "tcp://"), "--remote-key", kpB.Public.String(),
		"--service", "echo=tcp://"+testutil.EchoServer(t).String(), "--tunnel-export", "echo")
	e := nodetest.TunnelProxy(t, tclient(t, epB), "echo")
	c, err := net.Dial("tcp", e.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(allow, []byte("# nobody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pB.signal(syscall.SIGHUP)
	testutil.Eventually(t, 10*time.Second, "B reloaded", func() bool {
		return strings.Contains(pB.stderr(), "SIGHUP: key lists reloaded")
	})
	// The tunnel closed before the reload was logged: the connection is
	// dead now, not in some seconds.
	c.SetDeadline(time.Now().Add(time.Second))
	c.Write([]byte("more"))
	if n, err := c.Read(buf); err == nil || isTimeoutErr(err) {
		t.Fatalf("data still flows after SIGHUP revoked the key: %d bytes, %v", n, err)
	}
	testutil.Eventually(t, 10*time.Second, "A told why, at WARN", func() bool {
		return strings.Contains(pA.stderr(), "level=WARN") && strings.Contains(pA.stderr(), "refused this server's key (key removed from the allow-list)")
	})
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// SIGTERM on a tunnel end: the other end's watchers see the proxies
// deregistered at once (before: they stayed ~61s, for the grace).
func TestTunnelSIGTERMWithdraws(t *testing.T) {
	dir := t.TempDir()
	keyA, kpA := tunnelKeys(t, dir, "a.key")
	keyB, kpB := tunnelKeys(t, dir, "b.key")
	_, epB := startServer(t, nil, "--key-file", keyB, "--allow-tunnels", allowFile(t, dir, kpA.Public))
	pA, _ := startServer(t, nil, "--key-file", keyA, "--tunnel", strings.TrimPrefix(epB, "tcp://"), "--remote-key", kpB.Public.String(),
		"--service", "pub=tcp://192.0.2.1:22")
	cb := tclient(t, epB)
	e := nodetest.TunnelProxy(t, cb, "pub")
	ev, err := cb.Watch(testutil.Context(t, 20*time.Second), "pub")
	if err != nil {
		t.Fatal(err)
	}
	<-ev // sync
	pA.signal(syscall.SIGTERM)
	select {
	case x := <-ev:
		if x.Type != registry.EventDeregister || x.Entry.Instance != e.Instance {
			t.Fatalf("B's watcher: %+v, want the proxy's deregister", x)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B's watcher saw nothing 10s after A's SIGTERM")
	}
	if es, err := cb.Lookup(testutil.Context(t, 5*time.Second), "pub"); err == nil && len(es) > 0 {
		t.Fatalf("B still returns A's proxy: %+v", es)
	}
}
