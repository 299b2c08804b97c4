package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/registry"
)

// TestSubcommands drives register, lookup, list and watch against a server
// process, as a script would.
func TestSubcommands(t *testing.T) {
	_, ep := startServer(t, nil, "--service", "ssh=tcp://127.0.0.1:22")
	port := portOf(t, ep)
	watch := start(t, []string{"HYDRA_PORT=" + port}, "watch", "--json", "web")
	var sync struct {
		Type    string
		Entries []registry.Entry
	}
	if err := json.Unmarshal([]byte(watch.line()), &sync); err != nil || sync.Type != "sync" || len(sync.Entries) != 0 {
		t.Fatalf("watch sync: %+v %v", sync, err)
	}
	reg := start(t, []string{"HYDRA_PORT=" + port}, "register", "web", "http://10.0.0.5:8080?zone=a", "--meta", "version=2", "--ttl", "2s")
	line := reg.line()
	m := regexp.MustCompile(`^registered web http://10.0.0.5:8080 as instance (\S+) \(ttl 2s\)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("register printed %q", line)
	}
	instance := m[1]
	var ev struct {
		Type  string
		Entry registry.Entry
	}
	if err := json.Unmarshal([]byte(watch.line()), &ev); err != nil || ev.Type != "register" || ev.Entry.Instance != instance ||
		ev.Entry.Meta["zone"] != "a" || ev.Entry.Meta["version"] != "2" {
		t.Fatalf("watch event: %+v %v", ev, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, out, errs := runCmd(ctx, "lookup", "web", "--port", port)
	if code != 0 || !strings.Contains(out, instance) || !strings.Contains(out, "10.0.0.5:8080") || !strings.Contains(out, "version=2,zone=a") {
		t.Fatalf("lookup: %d %q %q", code, out, errs)
	}
	code, out, _ = runCmd(ctx, "lookup", "--json", "--port", port, "web")
	var es []registry.Entry
	if err := json.Unmarshal([]byte(out), &es); code != 0 || err != nil || len(es) != 1 || es[0].Port != 8080 || es[0].Proto != "http" {
		t.Fatalf("lookup --json: %d %q %v", code, out, err)
	}
	if code, _, errs := runCmd(ctx, "lookup", "--port", port, "nothing"); code != 1 || !strings.Contains(errs, `no live instance of "nothing"`) {
		t.Fatalf("lookup nothing: %d %q", code, errs)
	}
	code, out, _ = runCmd(ctx, "list", "--port", port)
	if code != 0 || !regexp.MustCompile(`(?m)^ssh\s+1$`).MatchString(out) || !regexp.MustCompile(`(?m)^web\s+1$`).MatchString(out) {
		t.Fatalf("list: %d %q", code, out)
	}
	code, out, _ = runCmd(ctx, "list", "--json", "--port", port)
	var names []registry.NameCount
	if err := json.Unmarshal([]byte(out), &names); code != 0 || err != nil || !slices.Equal(names, []registry.NameCount{{Name: "ssh", Count: 1}, {Name: "web", Count: 1}}) {
		t.Fatalf("list --json: %d %q", code, out)
	}
	// register --once: the entry stays for its TTL without a process.
	code, out, _ = runCmd(ctx, "register", "--once", "--port", port, "db", "10.0.0.9:5432")
	var once struct{ Instance, Token string }
	if err := json.Unmarshal([]byte(out), &once); code != 0 || err != nil || once.Instance == "" || len(once.Token) < 16 {
		t.Fatalf("register --once: %d %q", code, out)
	}
	if code, out, _ := runCmd(ctx, "lookup", "--port", port, "db"); code != 0 || !strings.Contains(out, once.Instance) {
		t.Fatalf("lookup db: %d %q", code, out)
	}

	// Interrupting register deregisters; the watcher hears it.
	reg.signal(syscall.SIGINT)
	if code := reg.wait(); code != 0 {
		t.Fatalf("register exit %d: %s", code, reg.stderr())
	}
	if err := json.Unmarshal([]byte(watch.line()), &ev); err != nil || ev.Type != "deregister" || ev.Entry.Instance != instance {
		t.Fatalf("watch event: %+v %v", ev, err)
	}
	if code, _, _ := runCmd(ctx, "lookup", "--port", port, "web"); code != 1 {
		t.Fatalf("web still there after register was interrupted")
	}
	// In JSON too, none is an empty list and exit status 1.
	if code, out, _ := runCmd(ctx, "lookup", "--json", "--port", port, "web"); code != 1 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("lookup --json of a name with no instance: %d %q", code, out)
	}
	watch.signal(syscall.SIGTERM)
	if code := watch.wait(); code != 0 {
		t.Fatalf("watch exit %d", code)
	}
}

// TestIPC: the server binds a unix socket; clients reach it there.
func TestIPC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hydra.sock")
	p := start(t, nil, "--proto", "ipc", "--host", path)
	if l := p.line(); l != "[Hydra Server] Bound to ipc://"+path {
		t.Fatalf("banner %q", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code, out, errs := runCmd(ctx, "list", "--proto", "ipc", "--host", path); code != 0 || !strings.HasPrefix(out, "NAME") {
		t.Fatalf("list over ipc: %d %q %q", code, out, errs)
	}
	for _, list := range [][]string{{"list", "--json"}, {"list", "--entries", "--json"}} {
		if code, out, errs := runCmd(ctx, append(list, "--proto", "ipc", "--host", path)...); code != 0 || strings.TrimSpace(out) != "[]" {
			t.Fatalf("%q of an empty registry: %d %q %q", list, code, out, errs)
		}
	}
}

// TestRestartRecovery: a server process killed with SIGKILL and started
// again on the same port has every live registration back within about
// one heartbeat interval, with the same instance ids; a watch resumes.
func TestRestartRecovery(t *testing.T) {
	port := freePort(t)
	args := []string{"--port", itoa(port), "--min-ttl", "100ms"}
	srv := start(t, nil, args...)
	srv.line()
	ep := "tcp://127.0.0.1:" + itoa(port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ttl = 900 * time.Millisecond // heartbeats every 300ms
	const n = 50
	var clients []*registry.Client
	want := map[string]bool{}
	for i := range 5 {
		c, err := registry.NewClient(registry.ClientConfig{Endpoint: ep})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
		for j := range n / 5 {
			r, err := c.Register(ctx, registry.Service{Name: "svc", Host: "10.0.0.1", Port: 1000 + 10*i + j, TTL: ttl})
			if err != nil {
				t.Fatal(err)
			}
			want[r.Instance()] = true
		}
	}
	events, err := clients[0].Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Type != registry.EventSync || len(ev.Entries) != n {
		t.Fatalf("sync: %v %d", ev.Type, len(ev.Entries))
	}

	srv.signal(syscall.SIGKILL)
	srv.wait()
	time.Sleep(300 * time.Millisecond) // down for a heartbeat or so
	srv2 := start(t, nil, args...)
	srv2.line()
	up := time.Now()
	obs, err := registry.NewClient(registry.ClientConfig{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	var back time.Duration
	for {
		es, err := obs.Lookup(ctx, "svc")
		if err == nil && len(es) == n {
			back = time.Since(up)
			for _, e := range es {
				if !want[e.Instance] {
					t.Errorf("entry came back with a new instance id %s", e.Instance)
				}
			}
			break
		}
		if time.Since(up) > 10*time.Second {
			t.Fatalf("after 10s, %d of %d entries back (%v)", len(es), n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("all %d registrations back %v after the new server printed its banner (heartbeat interval %v)", n, back, ttl/3)
	// About one heartbeat interval, plus the client's reconnect backoff
	// (at most 500ms); generous, as machines are noisy.
	if back > ttl/3+500*time.Millisecond+2*time.Second {
		t.Errorf("registrations took %v to come back", back)
	}
	// The watch resumes: a sync with what is back by then, and events for
	// the rest.
	state := map[string]bool{}
	synced := false
	deadline := time.After(10 * time.Second)
	for !synced || len(state) != n {
		select {
		case ev := <-events:
			switch ev.Type {
			case registry.EventSync:
				synced, state = true, map[string]bool{}
				for _, e := range ev.Entries {
					state[e.Instance] = true
				}
			case registry.EventRegister, registry.EventUpdate:
				state[ev.Entry.Instance] = true
			case registry.EventExpire, registry.EventDeregister:
				delete(state, ev.Entry.Instance)
			}
		case <-deadline:
			t.Fatalf("watch after the restart: synced %v, %d of %d entries", synced, len(state), n)
		}
	}
}

// TestPyzmqExample runs PROTOCOL.md's worked example with Debian's
// python3-zmq against a server process.
func TestPyzmqExample(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import zmq").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s cannot import zmq (apt-get install python3-zmq): %v", py, err)
		}
		t.Skipf("%s cannot import zmq (apt-get install python3-zmq): %v", py, err)
	}
	doc, err := os.ReadFile("../../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- pyzmq-example:begin -->\n```python\n(.*?)```\n<!-- pyzmq-example:end -->").FindSubmatch(doc)
	if m == nil {
		t.Fatal("PROTOCOL.md has no pyzmq example between the markers")
	}
	script := filepath.Join(t.TempDir(), "example.py")
	if err := os.WriteFile(script, m[1], 0o600); err != nil {
		t.Fatal(err)
	}
	_, ep := startServer(t, nil)
	cmd := exec.Command(py, script)
	cmd.Env = append(os.Environ(), "HYDRA_ENDPOINT="+ep)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("example failed: %v\n%s", err, out)
	}
	got := regexp.MustCompile(`\b[0-9a-f]{16}(?:[0-9a-f]{8})?\b`).ReplaceAllString(string(out), "ID")
	want := `server ID protocol 1
registered ID ttl 10
watching OK 1 entries
instance http://10.0.0.5:8080 {'version': '2'}
instance http://10.0.0.6:8080 {}
renewed 2
event 1 register 10.0.0.6
event 2 deregister 10.0.0.6
error REGISTER: bad_request: port 70000 out of range 1-65535
removed 1
`
	if got != want {
		t.Fatalf("example printed:\n%s\nwant:\n%s", got, want)
	}
	// The output PROTOCOL.md shows is the same, ids aside.
	shown := regexp.MustCompile("(?s)It prints \\(the ids differ\\):\n\n```\n(.*?)```").FindSubmatch(doc)
	if shown == nil || regexp.MustCompile(`\b[0-9a-f]{16}(?:[0-9a-f]{8})?\b`).ReplaceAllString(string(shown[1]), "ID") != want {
		t.Fatalf("PROTOCOL.md shows a different output:\n%s", shown)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
