package registry_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

func TestRawREQ(t *testing.T) {
	srv := startServer(t, registry.Config{ServerID: "test-server"})
	req := rawSocket(t, srv, zmtp.REQ)

	p := mustOK(t, req, "PING", nil)
	if p["server"] != "test-server" || p["protocol"] != float64(1) {
		t.Fatalf("PING: %v", p)
	}
	reg := mustOK(t, req, "REGISTER", map[string]any{"id": 7, "name": "web", "host": "127.0.0.1", "port": 8080, "proto": "http", "meta": map[string]string{"v": "2"}})
	if reg["id"] != float64(7) || reg["created"] != true || reg["instance"] == "" || len(reg["token"].(string)) < 16 || reg["origin"] != "test-server" || reg["version"] != float64(1) {
		t.Fatalf("REGISTER: %v", reg)
	}
	lk := mustOK(t, req, "lookup", `{"name":"web","id":"abc"}`)
	es := lk["entries"].([]any)
	if lk["id"] != "abc" || len(es) != 1 {
		t.Fatalf("LOOKUP: %v", lk)
	}
	e := es[0].(map[string]any)
	if e["host"] != "127.0.0.1" || e["port"] != float64(8080) || e["proto"] != "http" || e["instance"] != reg["instance"] || e["meta"].(map[string]any)["v"] != "2" || e["ttl"] != float64(30) {
		t.Fatalf("entry: %v", e)
	}
	if _, ok := e["token"]; ok {
		t.Fatal("LOOKUP leaks the token")
	}
	// A verb alone (one frame) is a request with an empty body.
	if rep := roundTrip(t, req, []byte("PING")); string(rep[0]) != "OK" {
		t.Fatalf("one-frame PING: %q", rep)
	}
	hb := mustOK(t, req, "HEARTBEAT", map[string]any{"token": reg["token"]})
	if hb["renewed"] != float64(1) {
		t.Fatalf("HEARTBEAT: %v", hb)
	}
	d := mustOK(t, req, "DEREGISTER", map[string]any{"token": reg["token"], "instance": reg["instance"]})
	if d["removed"] != float64(1) {
		t.Fatalf("DEREGISTER: %v", d)
	}
	if es := mustOK(t, req, "LOOKUP", map[string]any{"name": "web"})["entries"].([]any); len(es) != 0 {
		t.Fatalf("after DEREGISTER: %v", es)
	}
	info := mustOK(t, req, "INFO", nil)
	if info["registered"] != float64(1) || info["deregistered"] != float64(1) || info["limits"].(map[string]any)["max_entries"] != float64(registry.DefaultMaxEntries) {
		t.Fatalf("INFO: %v", info)
	}
}

// TestDealer checks both DEALER styles: bare (no delimiter) and imitating
// REQ (empty delimiter first); replies come back the same way.
func TestDealer(t *testing.T) {
	srv := startServer(t, registry.Config{})
	d := rawSocket(t, srv, zmtp.DEALER)
	rep := roundTrip(t, d, []byte("PING"), []byte(`{"id":1}`))
	if len(rep) != 2 || string(rep[0]) != "OK" || !strings.HasPrefix(string(rep[1]), `{"id":1,`) {
		t.Fatalf("bare DEALER: %q", rep)
	}
	rep = roundTrip(t, d, []byte{}, []byte("PING"), []byte(`{"id":2}`))
	if len(rep) != 3 || len(rep[0]) != 0 || string(rep[1]) != "OK" {
		t.Fatalf("DEALER with delimiter: %q", rep)
	}
	// Pipelined: replies come back in order.
	for i := range 100 {
		if err := d.Send([]byte("LOOKUP"), fmt.Appendf(nil, `{"id":%d,"name":"x%d"}`, i, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		rep, err := d.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"id":%d,"name":"x%d"`, i, i); !strings.HasPrefix(string(rep[1]), want) {
			t.Fatalf("reply %d: %q", i, rep[1])
		}
	}
}
