package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
)

// tunnelKeys writes a key pair to dir/name (0600) and returns it.
func tunnelKeys(t testing.TB, dir, name string) (path string, kp secure.KeyPair) {
	t.Helper()
	path = filepath.Join(dir, name)
	kp, err := secure.Keygen(path, false)
	if err != nil {
		t.Fatal(err)
	}
	return path, kp
}

func allowFile(t testing.TB, dir string, keys ...secure.PublicKey) string {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s  # test peer\n", k)
	}
	// A fresh name per call: Z85 keys contain '/' and cannot name files.
	f, err := os.CreateTemp(dir, "allow-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o644); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func tclient(t testing.TB, endpoint string) *registry.Client {
	t.Helper()
	c, err := registry.NewClient(registry.ClientConfig{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tRegister(t testing.TB, c *registry.Client, name string, a *net.TCPAddr) {
	t.Helper()
	if _, err := c.Register(testutil.Context(t, 10*time.Second), registry.Service{Name: name, Host: a.IP.String(), Port: a.Port}); err != nil {
		t.Fatal(err)
	}
}

// echoVia sends msg through addr, half-closes, and checks the echo by
// SHA-256.
func echoVia(addr string, msg []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if e := <-werr; err == nil {
		err = e
	}
	if err != nil {
		return err
	}
	if want := sha256.Sum256(msg); !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("echo of %d bytes: got %d bytes with another SHA-256", len(msg), n)
	}
	return nil
}

// TestTunnelProcesses: two hydra-server processes, A (--tunnel to B,
// through a relay the test can kill) and B (--allow-tunnels with A's key).
func TestTunnelProcesses(t *testing.T) {
	dir := t.TempDir()
	keyA, kpA := tunnelKeys(t, dir, "a.key")
	keyB, kpB := tunnelKeys(t, dir, "b.key")
	_, epB := startServer(t, nil, "--key-file", keyB, "--allow-tunnels", allowFile(t, dir, kpA.Public), "--server-id", "srv-b", "--tunnel-export", "*")
	rel := testutil.NewRelay(t, strings.TrimPrefix(epB, "tcp://"), 0)
	_, epA := startServer(t, nil, "--key-file", keyA, "--tunnel", rel.Addr(), "--remote-key", kpB.Public.String(),
		"--server-id", "srv-a", "--tunnel-keepalive", "1s", "--tunnel-export", "*")
	ca, cb := tclient(t, epA), tclient(t, epB)

	// The same port still serves ZMTP clients: ca and cb work.
	tRegister(t, ca, "echo-a", testutil.EchoServer(t))
	tRegister(t, cb, "echo-b", testutil.EchoServer(t))
	pa := nodetest.TunnelProxy(t, cb, "echo-a") // A's service, seen at B
	pb := nodetest.TunnelProxy(t, ca, "echo-b") // B's service, seen at A
	if pa.Meta[tunnel.MetaPeer] != "srv-a" || pb.Meta[tunnel.MetaPeer] != "srv-b" {
		t.Fatalf("proxy entries: %+v %+v", pa, pb)
	}

	t.Run("EchoBothWays", func(t *testing.T) {
		msg := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		if err := echoVia(pa.Addr(), msg); err != nil {
			t.Errorf("B side → A's echo: %v", err)
		}
		if err := echoVia(pb.Addr(), msg); err != nil {
			t.Errorf("A side → B's echo: %v", err)
		}
	})

	t.Run("Concurrent100", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg := make([]byte, 128<<10+i*97)
				rand.Read(msg)
				addr := pa.Addr()
				if i%2 == 1 {
					addr = pb.Addr()
				}
				if err := echoVia(addr, msg); err != nil {
					errs <- fmt.Errorf("stream %d: %w", i, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("RefusedServiceClosesClient", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := ln.Addr().(*net.TCPAddr)
		ln.Close()
		tRegister(t, ca, "dead", dead)
		p := nodetest.TunnelProxy(t, cb, "dead")
		c, err := net.Dial("tcp", p.Addr())
		if errors.Is(err, syscall.ECONNRESET) {
			return // reset before Dial returned: closed promptly, as wanted
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := c.Read(make([]byte, 1))
		var ne net.Error
		if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("client of a refusing service: read %d, %v; want the connection closed", n, err)
		}
	})

	t.Run("LinkKilledMidTransfer", func(t *testing.T) {
		c, err := net.Dial("tcp", pa.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(40 * time.Second))
		// Write and read the echo concurrently until something fails.
		go io.Copy(io.Discard, c)
		errc := make(chan error, 1)
		started := make(chan struct{})
		go func() {
			buf := make([]byte, 32<<10)
			for i := 0; ; i++ {
				if _, err := c.Write(buf); err != nil {
					errc <- err
					return
				}
				if i == 16 {
					close(started)
				}
			}
		}()
		<-started
		before := rel.Accepted()
		rel.Kill()
		select {
		case err := <-errc:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("transfer hung until its deadline: %v", err)
			}
			t.Logf("transfer failed as it should: %v", err)
		case <-time.After(40 * time.Second):
			t.Fatal("no error surfaced after the link died")
		}
		testutil.Eventually(t, 30*time.Second, "A redials", func() bool { return rel.Accepted() > before })
		msg := []byte("after the reconnect")
		testutil.Eventually(t, 30*time.Second, "new connections through the same proxy addresses", func() bool {
			return echoVia(pa.Addr(), msg) == nil && echoVia(pb.Addr(), msg) == nil
		})
	})
}

// Usage errors of the tunnel flags.
func TestTunnelFlagErrors(t *testing.T) {
	dir := t.TempDir()
	key, kp := tunnelKeys(t, dir, "k")
	for _, args := range [][]string{
		{"--tunnel", "127.0.0.1:1"},                    // no key file, no remote key
		{"--key-file", key, "--tunnel", "127.0.0.1:1"}, // no remote key
		{"--key-file", key, "--remote-key", "short", "--tunnel", "h"},
		{"--key-file", key, "--tunnel", "h:99999", "--remote-key", kp.Public.String()},
		{"--allow-tunnels", "x"},
		{"--key-file", key, "--tunnel-ports", "9-1"},
		{"--key-file", key, "--tunnel-bind", "a;b"},
		{"--key-file", key, "--tunnel-export", "[x"},
		{"--key-file", key, "--tunnel-import", "web,[x"},
	} {
		code, _, errs := runCmd(context.Background(), args...)
		if code != 2 {
			t.Errorf("%q: exit %d (want 2), stderr %q", args, code, errs)
		}
	}
}
