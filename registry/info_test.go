package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// TestInfoAdditions: INFO says the port's mechanism, counts entries by
// kind, adds Config.Info's objects (never over its own keys), and a server
// without join answers LEAVE with bad_request.
func TestInfoAdditions(t *testing.T) {
	srv := startServer(t, registry.Config{ServerID: "info-1",
		Static: []registry.Service{{Name: "ssh", Host: "127.0.0.1", Port: 22}},
		Info:   func() map[string]any { return map[string]any{"version": "v9", "server": "not-this"} }})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := srv.Local().Register(ctx, registry.Service{Name: "proxy", Host: "127.0.0.1", Port: 9}); err != nil {
		t.Fatal(err)
	}
	s := rawSocket(t, srv, zmtp.DEALER)
	mustOK(t, s, registry.VerbRegister, map[string]any{"name": "web", "host": "10.0.0.1", "port": 80})
	m := mustOK(t, s, registry.VerbInfo, nil)
	kinds, _ := m["kinds"].(map[string]any)
	if m["server"] != "info-1" || m["version"] != "v9" || m["security"] != "NULL" ||
		kinds["clients"] != 1.0 || kinds["static"] != 1.0 || kinds["in_process"] != 1.0 || kinds["joined"] != 0.0 {
		t.Fatalf("INFO: %v", m)
	}
	st, e := call(t, s, registry.VerbLeave, map[string]any{"peer": "10.0.0.1"})
	if st != "ERR" || e["code"] != registry.CodeBadRequest {
		t.Fatalf("LEAVE without join: %s %v", st, e)
	}
}
