package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/secure"
)

// TestExitCodes: as grep's, 0 found, 1 not found, 2 an error (bad usage,
// no server).
func TestExitCodes(t *testing.T) {
	_, ep := startServer(t, nil, "--service", "ssh=tcp://127.0.0.1:22")
	ctx := testutil.Context(t, 30*time.Second)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"lookup", "ssh", "--server", ep}, 0},
		{[]string{"list", "--server", ep}, 0},
		{[]string{"lookup", "nothing", "--server", ep}, 1},
		{[]string{"lookup", "--json", "nothing", "--server", ep}, 1},
		{[]string{"lookup", "--server", ep}, 2},                          // no NAME
		{[]string{"lookup", "ssh", "--server", "tcp://h:99999"}, 2},      // bad --server
		{[]string{"lookup", "ssh", "--server", ep, "--port", "8420"}, 2}, // two ways to name it
		{[]string{"lookup", "ssh", "--port", strconv.Itoa(freePort(t))}, 2},
		{[]string{"join", "--port", strconv.Itoa(freePort(t)), "10.0.0.1"}, 2},
		{[]string{"register", "--wait", "0", "--port", strconv.Itoa(freePort(t)), "web", "10.0.0.5:80"}, 2},
	} {
		if code, out, errs := runCmd(ctx, tc.args...); code != tc.code {
			t.Errorf("%v: exit %d, want %d (%q %q)", tc.args, code, tc.code, out, errs)
		}
	}
}

// TestDeadServer: a refused connection is said at once, in one line with
// the likely fix, not after --timeout, by every client command.
func TestDeadServer(t *testing.T) {
	ctx := testutil.Context(t, 60*time.Second)
	port := strconv.Itoa(freePort(t))
	for name, args := range map[string][]string{
		"lookup":        {"lookup", "web"},
		"list":          {"list"},
		"list-entries":  {"list", "--entries", "--json"},
		"watch":         {"watch", "web"},
		"join":          {"join", "10.0.0.1"},
		"register":      {"register", "--wait", "0", "web", "10.0.0.5:80"},
		"register-once": {"register", "--once", "--wait", "0", "web", "10.0.0.5:80"},
	} {
		start := time.Now()
		code, out, errs := runCmd(ctx, append(args, "--port", port, "--timeout", "20s")...)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%v took %v: a refused connection must not wait out --timeout", args, took)
		}
		errs = strings.ReplaceAll(errs, port, "PORT")
		golden(t, "dead-server/"+name, "$ hydra-server "+strings.Join(args, " ")+" --port PORT --timeout 20s\nexit "+strconv.Itoa(code)+"\n"+out+errs)
	}
}

// TestServerFlag: --server and $HYDRA_SERVER name the server for every
// client command; --host/--port on the command line win over
// $HYDRA_SERVER; '[::1]' as --host makes a valid endpoint.
func TestServerFlag(t *testing.T) {
	_, ep := startServer(t, nil, "--service", "ssh=tcp://127.0.0.1:22")
	port := portOf(t, ep)
	dead := "tcp://127.0.0.1:" + strconv.Itoa(freePort(t))
	for _, tc := range []struct {
		env  []string
		args []string
		code int
	}{
		{nil, []string{"lookup", "ssh", "--server", ep}, 0},
		{nil, []string{"lookup", "ssh", "--server", "127.0.0.1:" + port}, 0},
		{[]string{"HYDRA_SERVER=" + ep}, []string{"lookup", "ssh"}, 0},
		{[]string{"HYDRA_SERVER=" + ep, "HYDRA_PORT=1"}, []string{"lookup", "ssh"}, 0},   // --server wins in the environment
		{[]string{"HYDRA_SERVER=" + dead}, []string{"lookup", "ssh", "--port", port}, 0}, // the command line wins
		{[]string{"HYDRA_PORT=" + port}, []string{"lookup", "ssh", "--server", dead}, 2},
		{[]string{"HYDRA_SERVER=" + dead}, []string{"lookup", "ssh"}, 2},
		{[]string{"HYDRA_SERVER=" + ep}, []string{"list"}, 0},
		{[]string{"HYDRA_SERVER=" + ep}, []string{"register", "--once", "db", "10.0.0.9:5432"}, 0},
		{[]string{"HYDRA_SERVER=" + ep}, []string{"join", "--no-wait", "127.0.0.1:1"}, 0},
	} {
		p := start(t, tc.env, tc.args...)
		if code := p.wait(); code != tc.code {
			t.Errorf("%v %v: exit %d, want %d: %s", tc.env, tc.args, code, tc.code, p.stderr())
		}
	}
	// A config file's 'server' line.
	conf := filepath.Join(t.TempDir(), "client.conf")
	if err := os.WriteFile(conf, []byte("server "+ep+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd(testutil.Context(t, 10*time.Second), "lookup", "ssh", "--config", conf); code != 0 || !strings.Contains(out, "127.0.0.1:22") {
		t.Errorf("server from --config: %d %q %q", code, out, errs)
	}

	for _, tc := range []struct{ host, want string }{
		{"[::1]", "tcp://[::1]:8420"},
		{"::1", "tcp://[::1]:8420"},
		{"10.0.0.1", "tcp://10.0.0.1:8420"},
	} {
		c := common{host: tc.host, port: 8420, proto: "tcp"}
		if got, err := c.endpoint(); err != nil || got != tc.want {
			t.Errorf("--host %q: %q %v, want %q", tc.host, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ server, want string }{
		{"tcp://[::1]:9000", "tcp://[::1]:9000"},
		{"[::1]", "tcp://[::1]:8420"},
		{"example.com", "tcp://example.com:8420"},
		{"ipc:///tmp/h.sock", "ipc:///tmp/h.sock"},
	} {
		if got, err := parseServer(tc.server); err != nil || got != tc.want {
			t.Errorf("--server %q: %q %v, want %q", tc.server, got, err, tc.want)
		}
	}
}

// TestWatchServerLost: watch says on stderr when its server goes away,
// and when it is back, with a fresh sync of what the server holds now.
func TestWatchServerLost(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	srv := start(t, nil, "--port", port, "--service", "ssh=tcp://127.0.0.1:22")
	srv.line()
	watch := start(t, nil, "watch", "--json", "--port", port)
	if got := watch.line(); !strings.Contains(got, `"type":"sync"`) || !strings.Contains(got, `"ssh"`) {
		t.Fatalf("first sync: %q", got)
	}
	srv.signal(syscall.SIGTERM)
	srv.wait()
	testutil.Eventually(t, 10*time.Second, "watch says the server is lost", func() bool {
		return strings.Contains(watch.stderr(), "server lost: retrying tcp://127.0.0.1:"+port+" (connection refused)")
	})
	// Back, holding something else: the fresh sync shows it.
	srv = start(t, nil, "--port", port, "--service", "db=tcp://127.0.0.1:5432")
	srv.line()
	if got := watch.line(); !strings.Contains(got, `"type":"sync"`) || !strings.Contains(got, `"db"`) || strings.Contains(got, `"ssh"`) {
		t.Fatalf("sync after the server came back: %q", got)
	}
	testutil.Eventually(t, 10*time.Second, "watch says the server is back", func() bool {
		return strings.Contains(watch.stderr(), "server back at tcp://127.0.0.1:"+port)
	})
	if n := strings.Count(watch.stderr(), "server lost"); n != 1 {
		t.Errorf("server lost said %d times, want once:\n%s", n, watch.stderr())
	}
	watch.signal(syscall.SIGTERM)
	if code := watch.wait(); code != 0 {
		t.Errorf("watch exit %d", code)
	}
}

// TestWatchJSONEmpty: a sync with no entries is "entries":[], not null.
func TestWatchJSONEmpty(t *testing.T) {
	_, ep := startServer(t, nil)
	watch := start(t, nil, "watch", "--json", "--server", ep, "web")
	if got := watch.line(); got != `{"entries":[],"type":"sync"}` {
		t.Errorf("empty sync: %q", got)
	}
}

// TestRegisterWaits: register waits (up to --wait) for a server that is
// not up yet, then registers.
func TestRegisterWaits(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	reg := start(t, nil, "register", "--wait", "30s", "--port", port, "web", "10.0.0.5:8080")
	testutil.Eventually(t, 10*time.Second, "register says it waits", func() bool {
		return strings.Contains(reg.stderr(), "waiting up to 30s (--wait) for the server at tcp://127.0.0.1:"+port)
	})
	srv := start(t, nil, "--port", port)
	srv.line()
	if got := reg.line(); !strings.HasPrefix(got, "registered web tcp://10.0.0.5:8080 as instance ") {
		t.Fatalf("register: %q", got)
	}
	reg.signal(syscall.SIGTERM)
	if code := reg.wait(); code != 0 {
		t.Errorf("register exit %d: %s", code, reg.stderr())
	}
	// A server that is there at once: no "waiting" line, then or later.
	up := start(t, nil, "register", "--wait", "30s", "--port", port, "db", "10.0.0.6:5432")
	if got := up.line(); !strings.HasPrefix(got, "registered db ") {
		t.Fatalf("register against a live server: %q", got)
	}
	time.Sleep(1500 * time.Millisecond) // past the notice's second: it must not come
	if strings.Contains(up.stderr(), "waiting") {
		t.Errorf("register said it waits after it registered:\n%s", up.stderr())
	}
	up.signal(syscall.SIGTERM)
	up.wait()
	// --wait bounds the wait: then one line that says why.
	dead := strconv.Itoa(freePort(t))
	start := time.Now()
	code, _, errs := runCmd(testutil.Context(t, 20*time.Second), "register", "--wait", "1s", "--port", dead, "web", "10.0.0.5:8080")
	if code != 2 || time.Since(start) > 8*time.Second ||
		!strings.Contains(errs, "no hydra-server at tcp://127.0.0.1:"+dead+" (connection refused): is it running?") {
		t.Errorf("register --wait 1s against nothing: %d after %v: %q", code, time.Since(start), errs)
	}
}

// TestKeyFlagsTakeFiles: --server-key takes the Z85 text or a key file
// (KEY.pub, or the secret key file, whose public half is used), and
// --allow-clients takes keygen's KEY.pub content as well as Z85 lines.
func TestKeyFlagsTakeFiles(t *testing.T) {
	dir := t.TempDir()
	serverKey := filepath.Join(dir, "server.key")
	server, err := secure.Keygen(serverKey, false)
	if err != nil {
		t.Fatal(err)
	}
	aliceKey := filepath.Join(dir, "alice.key")
	if _, err := secure.Keygen(aliceKey, false); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(aliceKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	allow := filepath.Join(dir, "allowed.keys")
	if err := os.WriteFile(allow, append([]byte("# alice, as keygen wrote it\n"), pub...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, ep := startServer(t, nil, "--key-file", serverKey, "--curve", "--allow-clients", allow, "--service", "ssh=tcp://127.0.0.1:22")
	ctx := testutil.Context(t, 30*time.Second)
	for _, key := range []string{server.Public.String(), serverKey + ".pub", serverKey} {
		if code, out, errs := runCmd(ctx, "lookup", "ssh", "--server", ep, "--server-key", key, "--client-key", aliceKey); code != 0 || !strings.Contains(out, "127.0.0.1:22") {
			t.Errorf("--server-key %s: %d %q %q", key, code, out, errs)
		}
	}
	code, _, errs := runCmd(ctx, "lookup", "ssh", "--server", ep, "--server-key", filepath.Join(dir, "nope.pub"))
	errs = strings.ReplaceAll(errs, dir, "DIR")
	golden(t, "key-flag-no-file", "$ hydra-server lookup ssh --server tcp://… --server-key DIR/nope.pub\nexit "+strconv.Itoa(code)+"\n"+errs)
}

// TestRegisterOnceOutput: register --once prints exactly what its --help
// says, one line of JSON.
func TestRegisterOnceOutput(t *testing.T) {
	_, ep := startServer(t, nil, "--server-id", "srv-1")
	code, out, errs := runCmd(testutil.Context(t, 10*time.Second), "register", "--once", "--server", ep, "--ttl", "40s", "db", "10.0.0.9:5432")
	re := regexp.MustCompile(`^\{"instance":"[0-9a-f]+","token":"[0-9a-f]{32}","ttl":40,"version":1,"origin":"srv-1","created":true\}\n$`)
	if code != 0 || !re.MatchString(out) {
		t.Errorf("register --once: %d %q %q", code, out, errs)
	}
}

// TestServerKeyAgainstNull: --server-key against a server without --curve
// says to drop it, in one line.
func TestServerKeyAgainstNull(t *testing.T) {
	_, ep := startServer(t, nil)
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(testutil.Context(t, 10*time.Second), "list", "--server", ep, "--server-key", kp.Public.String())
	if code != 2 || errs != "hydra-server: the server at "+ep+" does not run CURVE: drop --server-key (or start it with --curve)\n" {
		t.Errorf("--server-key against a NULL server: %d %q %q", code, out, errs)
	}
}

// TestWatchUnderTerminal runs watch under a real pseudo-terminal (util-linux
// script(1)), as an operator would: the first sync, then "server lost:
// retrying" when the server stops, "server back" and a fresh sync when it
// returns, all on the terminal.
func TestWatchUnderTerminal(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	srv := start(t, nil, "--port", port, "--service", "ssh=tcp://127.0.0.1:22")
	srv.line()
	watch := startPty(t, nil, "watch", "--port", port)
	watch.waitFor(20*time.Second, "sync 1 entries", "ssh tcp://127.0.0.1:22 instance=static-")
	srv.signal(syscall.SIGTERM)
	srv.wait()
	watch.waitFor(20*time.Second, "hydra-server: server lost: retrying tcp://127.0.0.1:"+port+" (connection refused)")
	srv = start(t, nil, "--port", port, "--service", "db=tcp://127.0.0.1:5432")
	srv.line()
	watch.waitFor(20*time.Second, "hydra-server: server back at tcp://127.0.0.1:"+port+": a fresh sync follows",
		"db tcp://127.0.0.1:5432 instance=static-")
	watch.signal(os.Interrupt)
	if code := watch.wait(10 * time.Second); code != 0 {
		t.Errorf("watch after SIGINT: exit %d, want 0", code)
	}
}
