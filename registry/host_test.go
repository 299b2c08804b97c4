package registry_test

import (
	"encoding/json"
	"strings"
	"testing"

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
