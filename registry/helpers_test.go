package registry_test

import (
	"encoding/json"
	"testing"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// startServer runs a server on a free loopback port until the test ends.
func startServer(t testing.TB, cfg registry.Config) *registry.Server {
	t.Helper()
	return startServerAt(t, cfg, "tcp://127.0.0.1:0")
}

func startServerAt(t testing.TB, cfg registry.Config, endpoint string) *registry.Server {
	t.Helper()
	return nodetest.StartRegistry(t, cfg, endpoint)
}

func newClient(t testing.TB, srv *registry.Server, cfg registry.ClientConfig) *registry.Client {
	t.Helper()
	return nodetest.RegistryClient(t, srv.Endpoint(), cfg)
}

// rawSocket returns a zmtp socket of type typ connected to srv.
func rawSocket(t testing.TB, srv *registry.Server, typ zmtp.SocketType) *zmtp.Socket {
	t.Helper()
	return nodetest.RawSocket(t, srv.Endpoint(), typ)
}

// roundTrip sends frames on s and returns the reply's frames.
func roundTrip(t testing.TB, s *zmtp.Socket, frames ...[]byte) [][]byte {
	t.Helper()
	if err := s.Send(frames...); err != nil {
		t.Fatalf("send: %v", err)
	}
	msg, err := s.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return msg
}

// call sends verb and body (marshalled unless []byte or string) on a REQ
// socket and decodes the reply: status and body as a map.
func call(t testing.TB, s *zmtp.Socket, verb string, body any) (string, map[string]any) {
	t.Helper()
	var b []byte
	switch x := body.(type) {
	case nil:
	case []byte:
		b = x
	case string:
		b = []byte(x)
	default:
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	rep := roundTrip(t, s, []byte(verb), b)
	if len(rep) != 2 {
		t.Fatalf("%s: reply has %d frames: %q", verb, len(rep), rep)
	}
	var m map[string]any
	if err := json.Unmarshal(rep[1], &m); err != nil {
		t.Fatalf("%s: reply body %q: %v", verb, rep[1], err)
	}
	return string(rep[0]), m
}

func mustOK(t testing.TB, s *zmtp.Socket, verb string, body any) map[string]any {
	t.Helper()
	st, m := call(t, s, verb, body)
	if st != "OK" {
		t.Fatalf("%s %v: %s %v", verb, body, st, m)
	}
	return m
}
