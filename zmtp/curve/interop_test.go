package curve

import (
	"bufio"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/zmtp"

	"github.com/hydra-net/hydra/secure"
)

// pyPeer is a running testdata/pyzmq/curve_peer.py.
type pyPeer struct {
	cmd    *exec.Cmd
	lines  chan string
	mu     sync.Mutex
	all    []string
	stderr strings.Builder
	done   chan struct{}
}

func startPyPeer(t *testing.T, args ...string) *pyPeer {
	t.Helper()
	py := findPython(t)
	cmd := exec.Command(py, append([]string{filepath.Join("testdata", "pyzmq", "curve_peer.py")}, args...)...)
	p := &pyPeer{cmd: cmd, lines: make(chan string, 1000), done: make(chan struct{})}
	cmd.Stderr = &p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20) // MSG lines carry whole messages in hex
		for sc.Scan() {
			p.mu.Lock()
			p.all = append(p.all, sc.Text())
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
		cmd.Wait()
	})
	return p
}

// next returns the next line starting with prefix, skipping others.
func (p *pyPeer) next(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("pyzmq peer exited without %q; output:\n%s\nstderr:\n%s", prefix, p.output(), p.stderr.String())
			}
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(strings.TrimPrefix(l, prefix))
			}
		case <-timeout:
			t.Fatalf("no %q from pyzmq peer; output:\n%s", prefix, p.output())
		}
	}
}

// finish waits for the peer to exit and returns everything it printed.
func (p *pyPeer) finish(t *testing.T) string {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("pyzmq peer did not finish; output:\n%s", p.output())
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("pyzmq peer: %v\n%s\nstderr:\n%s", err, p.output(), p.stderr.String())
	}
	return p.output()
}

func (p *pyPeer) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.all, "\n")
}

func hx(s string) string { return hex.EncodeToString([]byte(s)) }

// TestInteropOurServerPyzmqClient: our CURVE REP server, libzmq's CURVE
// REQ client through pyzmq. Good keys exchange requests and replies (with
// heartbeats on both sides, so PING/PONG travel inside MESSAGE too); a
// client with the wrong server key gets no answer and no connection; a
// client whose key is not allowed gets ERROR "400", which libzmq reports
// as HANDSHAKE_FAILED_AUTH 400.
func TestInteropOurServerPyzmqClient(t *testing.T) {
	findPython(t)
	server, client, stranger := newKeyPair(t), newKeyPair(t), newKeyPair(t)
	slog := testutil.NewLogSink()
	rep := newSocket(t, zmtp.REP, zmtp.Config{
		Logger:            slog.Logger(),
		Security:          Server(server, secure.NewAllowList(client.Public)),
		HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: 5 * time.Second,
	})
	if err := rep.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			m, err := rep.Recv()
			if err != nil {
				return
			}
			rep.Send(append([][]byte{append([]byte("re:"), m[0]...)}, m[1:]...)...)
		}
	}()

	t.Run("good keys", func(t *testing.T) {
		p := startPyPeer(t, "--type", "REQ", "--connect", rep.Endpoint(),
			"--public="+client.Public.String(), "--secret="+client.Secret.Z85(), "--server-key="+server.Public.String(),
			"--heartbeat-ms", "20",
			"--send", hx("one"), "--send", hx("two")+","+hx("second frame"), "--send", hx(strings.Repeat("x", 40000)))
		if got := p.next(t, "REPLY "); got != hx("re:one") {
			t.Fatalf("reply 1: %s", got)
		}
		if got := p.next(t, "REPLY "); got != hx("re:two")+","+hx("second frame") {
			t.Fatalf("reply 2: %s", got)
		}
		if got := p.next(t, "REPLY "); got != hx("re:"+strings.Repeat("x", 40000)) {
			t.Fatalf("reply 3 differs")
		}
		out := p.finish(t)
		if !strings.Contains(out, "EVENT HANDSHAKE_SUCCEEDED") {
			t.Fatalf("no HANDSHAKE_SUCCEEDED:\n%s", out)
		}
	})
	t.Run("wrong server key", func(t *testing.T) {
		p := startPyPeer(t, "--type", "REQ", "--connect", rep.Endpoint(), "--timeout-ms", "1500",
			"--public="+client.Public.String(), "--secret="+client.Secret.Z85(), "--server-key="+stranger.Public.String(),
			"--send", hx("nope"))
		p.next(t, "TIMEOUT")
		out := p.finish(t)
		if strings.Contains(out, "HANDSHAKE_SUCCEEDED") || strings.Contains(out, "REPLY") {
			t.Fatalf("handshake with a wrong server key succeeded:\n%s", out)
		}
		slog.WaitFor(t, "handshake failed", "HELLO box does not open")
	})
	t.Run("unauthorized client", func(t *testing.T) {
		p := startPyPeer(t, "--type", "REQ", "--connect", rep.Endpoint(), "--timeout-ms", "1500",
			"--public="+stranger.Public.String(), "--secret="+stranger.Secret.Z85(), "--server-key="+server.Public.String(),
			"--send", hx("nope"))
		if got := p.next(t, "EVENT HANDSHAKE_FAILED_AUTH"); got != "400" {
			t.Fatalf("HANDSHAKE_FAILED_AUTH %s, want 400", got)
		}
		out := p.finish(t)
		if strings.Contains(out, "REPLY") {
			t.Fatalf("unauthorized client got a reply:\n%s", out)
		}
		slog.WaitFor(t, "handshake failed", secure.ErrUnauthorized.Error(), stranger.Public.String())
	})
}

// TestInteropPyzmqServerOurClient: libzmq's CURVE REP server with a ZAP
// authenticator (pyzmq's ThreadAuthenticator reading a directory of public
// certificates: the file WriteKeyPair wrote) and our CURVE REQ client.
func TestInteropPyzmqServerOurClient(t *testing.T) {
	findPython(t)
	server, stranger := newKeyPair(t), newKeyPair(t)
	dir := t.TempDir()
	clientPath := filepath.Join(t.TempDir(), "client")
	client, err := secure.Keygen(clientPath, false)
	if err != nil {
		t.Fatal(err)
	}
	pubCert, _ := os.ReadFile(secure.PublicKeyPath(clientPath))
	os.WriteFile(filepath.Join(dir, "client.key"), pubCert, 0o644) // pyzmq loads *.key

	p := startPyPeer(t, "--type", "REP", "--bind", "tcp://127.0.0.1:0", "--count", "3", "--allow-dir", dir,
		"--public="+server.Public.String(), "--secret="+server.Secret.Z85(), "--heartbeat-ms", "20", "--timeout-ms", "20000")
	ep := p.next(t, "BOUND ")

	t.Run("wrong server key", func(t *testing.T) {
		clog := testutil.NewLogSink()
		req := newSocket(t, zmtp.REQ, zmtp.Config{Logger: clog.Logger(), Linger: -1, Security: Client(client, stranger.Public)})
		req.Connect(ep)
		req.Send([]byte("nope"))
		clog.WaitFor(t, "handshake failed", "server closed after HELLO")
		req.Close()
	})
	t.Run("unauthorized client", func(t *testing.T) {
		clog := testutil.NewLogSink()
		req := newSocket(t, zmtp.REQ, zmtp.Config{Logger: clog.Logger(), Linger: -1, Security: Client(stranger, server.Public)})
		req.Connect(ep)
		req.Send([]byte("nope"))
		clog.WaitFor(t, "handshake failed", ErrRefused.Error(), `"400"`)
		req.Close()
	})
	t.Run("good keys", func(t *testing.T) {
		req := newSocket(t, zmtp.REQ, zmtp.Config{
			Security:          Client(client, server.Public),
			HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: 5 * time.Second,
		})
		req.Connect(ep)
		for _, msg := range [][][]byte{{[]byte("one")}, {[]byte("two"), []byte("frame")}, {make([]byte, 70000)}} {
			if err := req.Send(msg...); err != nil {
				t.Fatal(err)
			}
			m, err := recvTimeout(t, req, 15*time.Second)
			if err != nil {
				t.Fatalf("no reply from libzmq: %v\n%s", err, p.output())
			}
			if string(m[0]) != "re:"+string(msg[0]) || len(m) != len(msg) {
				t.Fatalf("reply %q", m)
			}
			time.Sleep(50 * time.Millisecond) // several heartbeats between requests
		}
		out := p.finish(t)
		// The messages libzmq received are exactly ours: no PING surfaced.
		if n := strings.Count(out, "MSG "); n != 3 {
			t.Fatalf("libzmq REP saw %d messages, want 3:\n%s", n, out)
		}
	})
}

// TestInteropPubSub: subscriptions travel as encrypted commands both ways
// (libzmq SUB → our PUB, our SUB → libzmq PUB), and filtering works.
func TestInteropPubSub(t *testing.T) {
	findPython(t)
	server, client := newKeyPair(t), newKeyPair(t)
	t.Run("pyzmq SUB, our PUB", func(t *testing.T) {
		pub := newSocket(t, zmtp.PUB, zmtp.Config{Security: Server(server, secure.NewAllowList(client.Public))})
		pub.Bind("tcp://127.0.0.1:0")
		p := startPyPeer(t, "--type", "SUB", "--connect", pub.Endpoint(), "--subscribe", "a", "--count", "5",
			"--public="+client.Public.String(), "--secret="+client.Secret.Z85(), "--server-key="+server.Public.String())
		stop := make(chan struct{})
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				pub.Send([]byte("b" + string(rune('0'+i%10))))
				pub.Send([]byte("a" + string(rune('0'+i%10))))
			}
		}()
		out := p.finish(t)
		close(stop)
		if strings.Count(out, "MSG 61") != 5 || strings.Contains(out, "MSG 62") {
			t.Fatalf("libzmq SUB received:\n%s", out)
		}
	})
	t.Run("our SUB, pyzmq PUB", func(t *testing.T) {
		p := startPyPeer(t, "--type", "PUB", "--bind", "tcp://127.0.0.1:0", "--count", "300", "--timeout-ms", "15000",
			"--public="+server.Public.String(), "--secret="+server.Secret.Z85())
		ep := p.next(t, "BOUND ")
		sub := newSocket(t, zmtp.SUB, zmtp.Config{Security: Client(client, server.Public)})
		sub.Subscribe([]byte("a"))
		sub.Connect(ep)
		for i := 0; i < 5; i++ {
			m, err := recvTimeout(t, sub, 15*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if m[0][0] != 'a' {
				t.Fatalf("SUB received %q", m)
			}
		}
	})
}
