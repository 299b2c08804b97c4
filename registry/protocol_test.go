package registry_test

import (
	"strings"
	"testing"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// TestProtocolTextHolds checks the PROTOCOL.md promises a client written
// from the text alone relies on, at their edges.
func TestProtocolTextHolds(t *testing.T) {
	srv := startServer(t, registry.Config{})
	req := rawSocket(t, srv, zmtp.REQ)

	// 2.4: a string id of 128 bytes (the limit counts the string, not its
	// quotes) is accepted and echoed; so is one whose escapes unescape to 128.
	for _, id := range []string{`"` + strings.Repeat("i", 128) + `"`, `"` + strings.Repeat(`\u0069`, 128) + `"`} {
		rep := roundTrip(t, req, []byte("PING"), []byte(`{"id":`+id+`}`))
		if string(rep[0]) != "OK" || !strings.HasPrefix(string(rep[1]), `{"id":`+id+`,`) {
			t.Fatalf("PING with a 128-byte string id: %q", rep)
		}
	}
	// 2.4: "v":1 is version 1.
	mustOK(t, req, "PING", map[string]any{"v": 1})

	// 5 LIST: "after":"" is the first page, as if absent.
	mustOK(t, req, "REGISTER", map[string]any{"name": "a", "host": "h", "port": 1})
	if got := mustOK(t, req, "LIST", map[string]any{"after": ""}); len(got["names"].([]any)) != 1 {
		t.Fatalf(`LIST "after":"": %v, want the first page`, got)
	}
	// 2.3: a WATCH from a REQ socket is refused; a DEALER's is not.
	rep := roundTrip(t, req, []byte("WATCH"), []byte(`{}`))
	if string(rep[0]) != "ERR" || !strings.Contains(string(rep[1]), "WATCH needs a DEALER socket") {
		t.Fatalf("WATCH on a REQ socket: %q, want ERR bad_request", rep)
	}
	mustOK(t, rawSocket(t, srv, zmtp.DEALER), "WATCH", nil)

	// 4: "proto":"" is the default, tcp.
	got := mustOK(t, req, "REGISTER", map[string]any{"name": "b", "host": "h", "port": 1, "proto": ""})
	if rep := mustOK(t, req, "LOOKUP", map[string]any{"name": "b"}); !strings.Contains(mustJSON(t, rep), `"proto":"tcp"`) {
		t.Fatalf(`REGISTER "proto":"" then LOOKUP: %v (register: %v), want proto tcp`, rep, got)
	}
}
