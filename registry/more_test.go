package registry_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

func TestListPaging(t *testing.T) {
	srv := startServer(t, registry.Config{MaxListPage: 7})
	ctx := testutil.Context(t, 10*time.Second)
	c := newClient(t, srv, registry.ClientConfig{})
	for i := range 30 {
		if _, err := c.Register(ctx, registry.Service{Name: fmt.Sprintf("n%02d", i%12), Host: "h", Port: 1 + i}); err != nil {
			t.Fatal(err)
		}
	}
	names, err := c.List(ctx)
	if err != nil || len(names) != 12 || names[0].Name != "n00" || names[0].Count != 3 || names[11].Name != "n11" || names[11].Count != 2 {
		t.Fatalf("names: %v %v", names, err)
	}
	es, err := c.ListEntries(ctx)
	if err != nil || len(es) != 30 {
		t.Fatalf("entries: %d %v", len(es), err)
	}
	seen := map[string]bool{}
	for i, e := range es {
		if seen[e.Instance] {
			t.Fatalf("entry %s twice", e.Instance)
		}
		seen[e.Instance] = true
		if i > 0 && (es[i-1].Name > e.Name || es[i-1].Name == e.Name && es[i-1].Instance > e.Instance) {
			t.Fatalf("not sorted at %d", i)
		}
	}
	// One page, by hand.
	req := rawSocket(t, srv, zmtp.REQ)
	p := mustOK(t, req, "LIST", map[string]any{"limit": 5})
	if len(p["names"].([]any)) != 5 || p["next"] != "n04" {
		t.Fatalf("page: %v", p)
	}
}

// TestZmq4Client: go-zeromq/zmq4, another ZeroMQ implementation, as a REQ
// client.
func TestZmq4Client(t *testing.T) {
	srv := startServer(t, registry.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := zmq4.NewReq(ctx)
	defer req.Close()
	if err := req.Dial(srv.Endpoint()); err != nil {
		t.Fatal(err)
	}
	roundtrip := func(frames ...string) []string {
		t.Helper()
		var bs [][]byte
		for _, f := range frames {
			bs = append(bs, []byte(f))
		}
		if err := req.Send(zmq4.NewMsgFrom(bs...)); err != nil {
			t.Fatal(err)
		}
		m, err := req.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range m.Frames {
			out = append(out, string(f))
		}
		return out
	}
	if rep := roundtrip("REGISTER", `{"name":"zmq4","host":"10.0.0.1","port":5555,"proto":"zmtp"}`); rep[0] != "OK" {
		t.Fatalf("REGISTER: %q", rep)
	}
	rep := roundtrip("LOOKUP", `{"name":"zmq4"}`)
	if rep[0] != "OK" || !strings.Contains(rep[1], `"port":5555`) || !strings.Contains(rep[1], `"proto":"zmtp"`) {
		t.Fatalf("LOOKUP: %q", rep)
	}
	if rep := roundtrip("LOOKUP", `{"name":""}`); rep[0] != "ERR" || !strings.Contains(rep[1], "name is missing or empty") {
		t.Fatalf("bad LOOKUP: %q", rep)
	}
}

// TestSlowWatcher: a consumer that falls behind WatchBuffer events gets a
// sync event with the full picture instead of an unbounded queue.
func TestSlowWatcher(t *testing.T) {
	srv := startServer(t, registry.Config{})
	ctx := testutil.Context(t, 10*time.Second)
	w := newClient(t, srv, registry.ClientConfig{WatchBuffer: 4})
	events, err := w.Watch(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	<-events // the first sync
	c := newClient(t, srv, registry.ClientConfig{})
	for i := range 20 {
		if _, err := c.Register(ctx, registry.Service{Name: "s", Host: "h", Port: 1 + i}); err != nil {
			t.Fatal(err)
		}
	}
	// Applying the events gives the full picture, however many were
	// dropped on the way.
	state := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for len(state) != 20 {
		select {
		case ev := <-events:
			switch ev.Type {
			case registry.EventSync:
				state = map[string]bool{}
				for _, e := range ev.Entries {
					state[e.Instance] = true
				}
			case registry.EventRegister:
				state[ev.Entry.Instance] = true
			}
		case <-deadline:
			t.Fatalf("state has %d entries, want 20", len(state))
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  registry.Config
		says string
	}{
		{registry.Config{MinTTL: time.Minute, MaxTTL: time.Second}, "MinTTL"},
		{registry.Config{DefaultTTL: time.Hour, MaxTTL: time.Minute}, "DefaultTTL"},
		{registry.Config{MaxEntries: 10, MaxEntriesPerClient: 20}, "MaxEntriesPerClient"},
		{registry.Config{ServerID: "a b"}, `ServerID "a b"`},
		{registry.Config{MaxWatches: -1}, "negative"},
		{registry.Config{MaxRequestBytes: 4096, MaxMetadataBytes: 8192}, "MaxMetadataBytes"},
		{registry.Config{Static: []registry.Service{{Name: "x", Host: "h", Port: 0}}}, "port 0"},
	} {
		_, err := registry.NewServer(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.says)
		}
	}
	if err := (registry.Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
}

// TestNoGoroutineLeft: servers and clients leave no goroutine behind.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv, err := registry.NewServer(registry.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { srv.Serve(context.Background()); close(done) }()
		c, err := registry.NewClient(registry.ClientConfig{Endpoint: srv.Endpoint()})
		if err != nil {
			t.Fatal(err)
		}
		ctx := testutil.Context(t, 10*time.Second)
		if _, err := c.Register(ctx, registry.Service{Name: "a", Host: "h", Port: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Watch(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		c.Close()
		srv.Close()
		<-done
		// A server that never served closes too.
		idle, _ := registry.NewServer(registry.Config{})
		idle.Bind("tcp://127.0.0.1:0")
		idle.Close()
		if err := idle.Serve(context.Background()); err != registry.ErrClosed {
			t.Errorf("Serve after Close: %v", err)
		}
	}()
	testutil.Eventually(t, 5*time.Second, "goroutines back to the start", func() bool { return runtime.NumGoroutine() <= before })
}

// TestCloseRacingServe: Close from one goroutine as Serve starts in
// another returns, whichever goes first (Close waited for ever when it
// closed the socket, then Serve took the server, then Close tested it).
func TestCloseRacingServe(t *testing.T) {
	for i := range 300 {
		srv, err := registry.NewServer(registry.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(context.Background()) }()
		if i%2 == 0 {
			runtime.Gosched()
		}
		closed := make(chan struct{})
		go func() { srv.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close still waits for a Serve that never ran", i)
		}
		if err := <-served; err != nil && err != registry.ErrClosed {
			t.Fatalf("round %d: Serve: %v", i, err)
		}
		// A second Close (node.Run closes once to stop, once to clean up)
		// returns too, also when Serve never ran.
		again := make(chan struct{})
		go func() { srv.Close(); close(again) }()
		select {
		case <-again:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a second Close waits for ever", i)
		}
	}
}

// TestServeContext: cancelling Serve's context stops it.
func TestServeContext(t *testing.T) {
	srv, err := registry.NewServer(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	req := rawSocket(t, srv, zmtp.REQ)
	mustOK(t, req, "PING", nil)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	srv.Close()
}
