package main

// Tests of what a server holds, seen from the command line: info,
// deregister, join --list and leave, and how join and tunnel failures are
// told. Expected outputs are plain string comparisons for now (the golden
// helper is another branch's; the integrator converts them).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
)

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// infoJSON runs info --json against port and decodes it.
func infoJSON(t *testing.T, port string) map[string]any {
	t.Helper()
	code, out, errs := runCmd(ctx10(t), "info", "--json", "--port", port)
	if code != 0 {
		t.Fatalf("info --json: exit %d %q", code, errs)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("info --json: %v\n%s", err, out)
	}
	return v
}

// path follows keys (and indexes, as numbers) into decoded JSON.
func path(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// TestInfoUnreachable: info, join, leave and deregister at a port where
// nothing listens exit 2 at once (not after --timeout) with one line that
// says what to do. Before: "unknown command" for info, and lookup-like
// waits of the whole timeout for the others.
func TestInfoUnreachable(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	want := "hydra-server: no hydra-server at tcp://127.0.0.1:" + port +
		" (connection refused): is it running? start it with `hydra-server`, or point --server at it\n"
	for _, args := range [][]string{
		{"info"}, {"info", "--json"}, {"join", "--list"}, {"leave", "10.0.0.1"},
		{"deregister", "--token", "t", "--instance", "i"},
	} {
		start := time.Now()
		code, out, errs := runCmd(ctx10(t), append(args, "--port", port, "--timeout", "30s")...)
		w := want
		if code != 2 || out != "" || errs != w {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q", args, code, out, errs, w)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%v took %v: a refused connection must not wait out --timeout", args, d)
		}
	}
}

// TestInfo: info shows identity, entries by kind, counters and join links,
// as a table and as JSON.
func TestInfo(t *testing.T) {
	_, bAddr := startJoin(t, "INFO-B", "--service", "ssh=tcp://10.0.0.9:22")
	_, aAddr := startJoin(t, "INFO-A", "--join", bAddr, "--service", "db=tcp://10.0.0.8:5432")
	_, port, _ := strings.Cut(aAddr, ":")
	register(t, client(t, aAddr), "web", "10.0.0.5", 8080)

	var v map[string]any
	testutil.Eventually(t, 10*time.Second, "A's INFO shows B's entry and a synced link", func() bool {
		v = infoJSON(t, port)
		return path(v, "kinds", "joined") == 1.0 && path(v, "join", "links", 0, "state") == "synced"
	})
	for _, c := range []struct {
		keys []any
		want any
	}{
		{[]any{"server"}, "INFO-A"},
		{[]any{"security"}, "NULL"},
		{[]any{"kinds", "clients"}, 1.0},
		{[]any{"kinds", "static"}, 1.0},
		{[]any{"kinds", "in_process"}, 0.0},
		{[]any{"join", "links", 0, "addr"}, bAddr},
		{[]any{"join", "links", 0, "peer"}, "INFO-B"},
		{[]any{"join", "links", 0, "dir"}, "out"},
	} {
		if got := path(v, c.keys...); got != c.want {
			t.Errorf("INFO %v = %v, want %v", c.keys, got, c.want)
		}
	}
	if s, _ := path(v, "version").(string); !strings.HasPrefix(s, "hydra-server ") {
		t.Errorf("INFO version %q", s)
	}

	code, out, errs := runCmd(ctx10(t), "info", "--port", port)
	if code != 0 {
		t.Fatalf("info: exit %d %q", code, errs)
	}
	for _, want := range []string{
		"server      INFO-A at tcp://127.0.0.1:" + port + "\n",
		"security    NULL\n",
		"entries     3: 1 clients', 1 static, 0 tunnelled, 1 joined (0 more copies hidden)\n",
		"join links:\nDIR  ADDR",
		"out  " + bAddr + "  INFO-B  synced",
		"entries from other servers: 1, from 1 origins\n",
		"\ntunnels: none\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("info lacks %q:\n%s", want, out)
		}
	}
}

// TestJoinCommandErrors: a join of a host that does not exist, of a port
// where nothing listens and of the server itself exit 2 with the cause
// (before: "joining ..." and exit 0), and the server stops dialling them;
// join --list shows the links; leave drops one (exit 1 if not joined).
func TestJoinCommandErrors(t *testing.T) {
	_, a := startJoin(t, "JE-A")
	_, b := startJoin(t, "JE-B")
	_, port, _ := strings.Cut(a, ":")
	dead := "127.0.0.1:" + strconv.Itoa(freePort(t))
	for _, c := range []struct{ peer, want string }{
		{"nonsense.invalid", "hydra-server: join nonsense.invalid:8420: connecting to nonsense.invalid:8420: dial tcp: lookup nonsense.invalid"},
		{dead, "hydra-server: join " + dead + ": connecting to " + dead + ": dial tcp4 " + dead + ": connect: connection refused; the server no longer dials it (to keep dialling a server not up yet: join --no-wait)\n"},
		{a, "hydra-server: join " + a + ": that is this server itself (the peer has its server id, JE-A): not joined\n"},
	} {
		code, out, errs := runCmd(ctx10(t), "join", "--port", port, c.peer)
		if code != 2 || out != "" || !strings.HasPrefix(errs, c.want) {
			t.Errorf("join %s: exit %d, stdout %q, stderr %q; want 2 and %q", c.peer, code, out, errs, c.want)
		}
	}
	code, out, errs := runCmd(ctx10(t), "join", "--port", port, b)
	if code != 0 || out != "joined "+b+" (server JE-B)\n" {
		t.Fatalf("join B: exit %d %q %q", code, out, errs)
	}

	code, out, _ = runCmd(ctx10(t), "join", "--list", "--port", port)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 || lines[0] != "join links:" ||
		!strings.HasPrefix(lines[2], "out  "+b+"  JE-B") || !strings.Contains(lines[3], "refused") ||
		!strings.Contains(lines[3], "that is this server itself") {
		t.Fatalf("join --list: exit %d\n%s", code, out)
	}

	code, out, errs = runCmd(ctx10(t), "leave", "--port", port, b)
	if code != 0 || out != "left "+b+"\n" {
		t.Fatalf("leave: exit %d %q %q", code, out, errs)
	}
	code, out, errs = runCmd(ctx10(t), "leave", "--port", port, b)
	if want := "hydra-server: leave " + b + ": this server does not join " + b + " (its links: hydra-server join --list)\n"; code != 1 || out != "" || errs != want {
		t.Fatalf("leave again: exit %d %q %q; want 1 and %q", code, out, errs, want)
	}
	if code, _, errs := runCmd(ctx10(t), "leave", "--port", port); code != 2 || !strings.Contains(errs, "want at least one HOST[:PORT]") {
		t.Fatalf("leave without peer: %d %q", code, errs)
	}
}

// TestJoinFlagCause: --join of a host that does not exist says so at WARN
// (before: "no answer from the peer", the cause at debug), once however
// often the redial fails, and INFO counts the failures.
func TestJoinFlagCause(t *testing.T) {
	p, a := startJoin(t, "JC-A", "--join", "nonsense.invalid")
	_, port, _ := strings.Cut(a, ":")
	testutil.Eventually(t, 20*time.Second, "three failed dials", func() bool {
		f, _ := path(infoJSON(t, port), "join", "links", 0, "failures").(float64)
		return f >= 3
	})
	var warns []string
	for _, l := range strings.Split(p.stderr(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "join:") {
			warns = append(warns, l)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], `msg="join: cannot reach the peer; dialling it again with backoff" peer=nonsense.invalid:8420 cause="connecting to nonsense.invalid:8420: dial tcp: lookup nonsense.invalid`) ||
		!strings.Contains(warns[0], "no such host") {
		t.Fatalf("want one WARN with the cause, got %d:\n%s", len(warns), strings.Join(warns, "\n"))
	}
}

// TestDeregisterCmd: deregister by --instance and --token, and from what
// register --once printed; exit 1 when there was nothing to remove.
func TestDeregisterCmd(t *testing.T) {
	_, ep := startServer(t, nil)
	port := portOf(t, ep)
	file := filepath.Join(t.TempDir(), "once.json")
	var once strings.Builder
	for _, addr := range []string{"10.0.0.5:8080", "10.0.0.6:8080"} {
		code, out, errs := runCmd(ctx10(t), "register", "--once", "--port", port, "web", addr)
		if code != 0 {
			t.Fatalf("register --once: %d %q", code, errs)
		}
		once.WriteString(out)
	}
	if err := os.WriteFile(file, []byte(once.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(ctx10(t), "deregister", "--from", file, "--port", port)
	if code != 0 || out != "deregistered 2 entries\n" || errs != "" {
		t.Fatalf("deregister --from: %d %q %q", code, out, errs)
	}
	var rec onceRecord
	_ = json.Unmarshal([]byte(strings.SplitN(once.String(), "\n", 2)[0]), &rec)
	code, out, errs = runCmd(ctx10(t), "deregister", "--instance", rec.Instance, "--token", rec.Token, "--port", port)
	want := fmt.Sprintf("hydra-server: deregister %s: no instance %s\nhydra-server: nothing was removed\n", rec.Instance, rec.Instance)
	if code != 1 || out != "deregistered 0 entries\n" || errs != want {
		t.Fatalf("deregister again: %d %q %q; want 1 and %q", code, out, errs, want)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"deregister"}, "hydra-server: deregister: want --token (with --instance for one entry), or --from FILE\n"},
		{[]string{"deregister", "--from", file, "--token", "x"}, "hydra-server: deregister: give --from, or --instance and --token, not both\n"},
		{[]string{"deregister", "--from", "/nonexistent"}, "hydra-server: deregister: --from /nonexistent: open /nonexistent: no such file or directory\n"},
	} {
		code, _, errs := runCmd(ctx10(t), append(c.args, "--port", port)...)
		if code != 2 || !strings.HasPrefix(errs, c.want) {
			t.Errorf("%v: %d %q; want 2 and %q", c.args, code, errs, c.want)
		}
	}
}

// TestTunnelRefusals: a wrong --remote-key and a key missing from the
// remote's allow file are said at WARN, once each however often the dial
// is repeated, with what to check (before: "tunnel: down, redialling
// err=...reading IK message 2: EOF" at every redial, at INFO); a tunnel
// that works shows in info as up, with its bytes.
func TestTunnelRefusals(t *testing.T) {
	dir := t.TempDir()
	keyA, kpA := tunnelKeys(t, dir, "a.key")
	keyB, kpB := tunnelKeys(t, dir, "b.key")
	_, kpC := tunnelKeys(t, dir, "c.key")
	pB, epB := startServer(t, nil, "--key-file", keyB, "--allow-tunnels", allowFile(t, dir, kpA.Public), "--server-id", "tr-b")
	pBnoA, epBnoA := startServer(t, nil, "--key-file", keyB, "--allow-tunnels", allowFile(t, dir, kpC.Public), "--server-id", "tr-b2")
	const refused = `msg="tunnel: cannot link to the remote; redialling with backoff" remote=%s in=`
	for _, c := range []struct {
		name, target, key string
		remote            *proc
		cause             string // the dialler's WARN, once
		remoteSays        string // the remote's log, once
	}{
		{"WrongRemoteKey", epB, kpC.Public.String(), pB,
			`cause="the remote closed the handshake unanswered: --remote-key is likely not its public key`,
			"IK message 1 does not decrypt (the initiator has a wrong key for us?)"},
		// The remote tells a key it does not allow so (tunnel.Refused).
		{"NotOnAllowFile", epBnoA, kpB.Public.String(), pBnoA,
			`cause="the remote refused this server's key (key not on the allow-list): add this server's public key to its allow file, then SIGHUP it"`,
			`msg="tunnel: refused a key not on the allow-list" err="unknown key ` + kpA.Public.String()},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := strings.TrimPrefix(c.target, "tcp://")
			p, epA := startServer(t, nil, "--key-file", keyA, "--tunnel", addr, "--remote-key", c.key)
			testutil.Eventually(t, 20*time.Second, "three failed dials", func() bool {
				f, _ := path(infoJSON(t, portOf(t, epA)), "tunnels", 0, "failures").(float64)
				return f >= 3
			})
			var warns []string
			for _, l := range strings.Split(p.stderr(), "\n") {
				if strings.Contains(l, "level=WARN") && strings.Contains(l, "tunnel:") {
					warns = append(warns, l)
				}
			}
			if len(warns) != 1 || !strings.Contains(warns[0], fmt.Sprintf(refused, addr)) || !strings.Contains(warns[0], c.cause) {
				t.Fatalf("want one WARN %s, got %d:\n%s", c.cause, len(warns), strings.Join(warns, "\n"))
			}
			if strings.Contains(p.stderr(), "tunnel: down, redialling") {
				t.Fatalf("a tunnel that never came up logged \"down, redialling\":\n%s", p.stderr())
			}
			if n := strings.Count(c.remote.stderr(), c.remoteSays); n != 1 {
				t.Fatalf("the remote logged %q %d times, want once:\n%s", c.remoteSays, n, c.remote.stderr())
			}
		})
	}
	t.Run("Up", func(t *testing.T) {
		_, epA := startServer(t, nil, "--key-file", keyA, "--tunnel", strings.TrimPrefix(epB, "tcp://"), "--remote-key", kpB.Public.String())
		port := portOf(t, epA)
		var v map[string]any
		testutil.Eventually(t, 20*time.Second, "the tunnel up in INFO", func() bool {
			v = infoJSON(t, port)
			n, _ := path(v, "tunnels", 0, "bytes_in").(float64)
			// The server id comes with the peer's Hello, which may follow
			// the first bytes (a mux window update) by a moment.
			return path(v, "tunnels", 0, "state") == "up" && n > 0 && path(v, "tunnels", 0, "server") != nil
		})
		if path(v, "tunnels", 0, "key") != kpB.Public.String() || path(v, "tunnels", 0, "server") != "tr-b" {
			t.Fatalf("tunnels: %v", path(v, "tunnels"))
		}
		code, out, _ := runCmd(ctx10(t), "info", "--port", port)
		if code != 0 || !strings.Contains(out, "tunnels:\nNAME") || !strings.Contains(out, kpB.Public.String()+"  tr-b    up") {
			t.Fatalf("info: %d\n%s", code, out)
		}
	})
}
