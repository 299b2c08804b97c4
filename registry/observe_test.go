package registry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

func verbCount(s *registry.Server, verb string) registry.VerbCount {
	for _, v := range s.Requests() {
		if v.Verb == verb {
			return v
		}
	}
	return registry.VerbCount{}
}

// Requests counts each answered request under its verb and result; an
// unknown verb under "other", whatever it is.
func TestRequestsByVerb(t *testing.T) {
	srv := startServer(t, registry.Config{})
	c := newClient(t, srv, registry.ClientConfig{})
	ctx := testutil.Context(t, 10*time.Second)
	if _, err := c.Lookup(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, registry.Service{Name: "web", Host: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	raw := rawSocket(t, srv, zmtp.DEALER)
	roundTrip(t, raw, []byte("LOOKUP"), []byte(`{"name":"bad name"}`))
	roundTrip(t, raw, []byte("FROBNICATE"), []byte("{}"))
	roundTrip(t, raw, []byte("BOGUS"))
	if got := verbCount(srv, registry.VerbLookup); got.OK < 1 || got.Errors != 1 {
		t.Errorf("LOOKUP %+v, want OK >= 1 and 1 error", got)
	}
	if got := verbCount(srv, registry.VerbRegister); got.OK != 1 || got.Errors != 0 {
		t.Errorf("REGISTER %+v", got)
	}
	if got := verbCount(srv, "other"); got.Errors != 2 || got.OK != 0 {
		t.Errorf("other %+v", got)
	}
	if n := len(srv.Requests()); n != 13 {
		t.Errorf("%d verbs counted, want a fixed set of 13", n)
	}
	var sum int64
	for _, v := range srv.Requests() {
		sum += v.OK + v.Errors
	}
	if st := srv.Stats(); sum != st.Requests {
		t.Errorf("by verb %d requests, Stats %d", sum, st.Requests)
	}
}

// Ping and Info answer from the loop; before Serve they wait (a health
// check then fails by its deadline), after Close they say ErrClosed.
func TestLocalPingInfo(t *testing.T) {
	srv := startServer(t, registry.Config{})
	l := srv.Local()
	ctx := testutil.Context(t, 10*time.Second)
	if err := l.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	in, err := l.Info(ctx)
	if err != nil || in.Server != srv.ID() {
		t.Fatalf("Info %+v, %v", in.Server, err)
	}

	idle, err := registry.NewServer(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := idle.Local().Ping(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping of a server not serving: %v, want a deadline error", err)
	}
	idle.Close()
	if err := idle.Local().Ping(ctx); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("Ping after Close: %v, want ErrClosed", err)
	}
}
