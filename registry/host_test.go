package registry_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// Hosts that clients would hand to a shell or a dialer as an option or a
// command, and hosts that are fine.
var (
	badHosts = []string{"-oProxyCommand=id", "$(id)", "a;b", "`reboot`", "a b", "a|b", "x&y", "a\tb",
		"fe80::1%$(id)", "-leading.example", "a..b", "host,other", "'quoted'", "a>b"}
	goodHosts = []string{"example.com", "example.com.", "10.0.0.1", "::1", "fe80::1%eth0", "my_host", "localhost", "xn--bcher-kva.example"}
)

// TestHostValidation: a host is a host name or an IP literal on every way
// in: REGISTER, UPDATE, static services, entries received from peers. Today
// "-oProxyCommand=id" and "$(id)" were stored and served.
func TestHostValidation(t *testing.T) {
	repl := newFakeRepl()
	srv := startServer(t, registry.Config{ServerID: "self", Replicator: repl})
	<-repl.started
	s := rawSocket(t, srv, zmtp.REQ)
	reg := mustOK(t, s, "REGISTER", map[string]any{"name": "web", "host": "10.0.0.1", "port": 80})
	for _, h := range badHosts {
		st, m := call(t, s, "REGISTER", map[string]any{"name": "web", "host": h, "port": 80})
		if st != "ERR" || m["code"] != registry.CodeBadRequest || !strings.Contains(m["error"].(string), "host") {
			t.Errorf("REGISTER host %q: %s %v, want bad_request naming the host", h, st, m)
		}
		st, m = call(t, s, "UPDATE", map[string]any{"token": reg["token"], "instance": reg["instance"], "host": h})
		if st != "ERR" || m["code"] != registry.CodeBadRequest || !strings.Contains(m["error"].(string), "host") {
			t.Errorf("UPDATE host %q: %s %v, want bad_request naming the host", h, st, m)
		}
		if _, err := registry.NewServer(registry.Config{Static: []registry.Service{{Name: "s", Host: h, Port: 1}}}); err == nil || !strings.Contains(err.Error(), "host") {
			t.Errorf("static service with host %q: %v, want an error naming the host", h, err)
		}
		raw, _ := json.Marshal(registry.Entry{Service: registry.Service{Name: "web", Host: h, Port: 80, Proto: "tcp"}, Instance: "i1", Origin: "O", Version: 1})
		repl.onLoop(t, func(hst *registry.Host) {
			if _, err := hst.ParseEntry(raw, "O"); err == nil {
				t.Errorf("an entry from a peer with host %q was accepted", h)
			}
		})
	}
	for _, h := range goodHosts {
		if st, m := call(t, s, "REGISTER", map[string]any{"name": "web", "host": h, "port": 81}); st != "OK" {
			t.Errorf("REGISTER host %q: %s %v", h, st, m)
		}
	}
	es := mustOK(t, s, "LOOKUP", map[string]any{"name": "web"})["entries"].([]any)
	for _, e := range es {
		h := e.(map[string]any)["host"].(string)
		for _, b := range badHosts {
			if h == b {
				t.Errorf("LOOKUP serves host %q", h)
			}
		}
	}
}

// TestWatchersToldOfShutdown: at Close every watch gets a "closing" event
// in sequence (today they got nothing and learned of it only when their
// keepalives stopped), and the Go client passes it on.
func TestWatchersToldOfShutdown(t *testing.T) {
	srv, err := registry.NewServer(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	t.Cleanup(func() { srv.Close() })

	raw := nodetest.RawSocket(t, srv.Endpoint(), zmtp.DEALER)
	if err := raw.Send([]byte("WATCH"), []byte(`{"name":"web"}`)); err != nil {
		t.Fatal(err)
	}
	if rep, err := raw.Recv(); err != nil || string(rep[0]) != "OK" {
		t.Fatalf("WATCH: %q %v", rep, err)
	}
	c := newClient(t, srv, registry.ClientConfig{})
	events, err := c.Watch(testutil.Context(t, 10*time.Second), "web")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Type != registry.EventSync {
		t.Fatalf("first event %v", ev.Type)
	}
	srv.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ev, err := raw.Recv()
	if err != nil || string(ev[0]) != "EVENT" || !strings.Contains(string(ev[1]), `"type":"closing"`) || !strings.Contains(string(ev[1]), `"seq":1`) {
		t.Fatalf("raw watcher at shutdown: %q %v, want a closing event with seq 1", ev, err)
	}
	select {
	case got := <-events:
		if got.Type != registry.EventClosing {
			t.Fatalf("Go client's watch at shutdown: %v, want closing", got.Type)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Go client's watch saw nothing of the shutdown")
	}
}
