package registry_test

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
)

// TestFailFast: with FailFast a request to a port nobody listens on ends
// at the refused connection, with ErrUnreachable and the cause, long
// before its timeout; without it, it waits for the server, and a server
// that comes up in time answers.
func TestFailFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := "tcp://" + ln.Addr().String()
	ln.Close()
	ctx := testutil.Context(t, 30*time.Second)

	fast := nodetest.RegistryClient(t, ep, registry.ClientConfig{FailFast: true, Timeout: 20 * time.Second})
	start := time.Now()
	_, _, err = fast.Ping(ctx)
	if !errors.Is(err, registry.ErrUnreachable) || !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > 5*time.Second {
		t.Fatalf("FailFast ping of nothing: %v after %v", err, time.Since(start))
	}
	// The next one too, at once.
	if _, err := fast.Lookup(ctx, "web"); !errors.Is(err, registry.ErrUnreachable) {
		t.Fatalf("FailFast lookup of nothing: %v", err)
	}

	slow := nodetest.RegistryClient(t, ep, registry.ClientConfig{Timeout: 20 * time.Second})
	done := make(chan error, 1)
	go func() {
		_, _, err := slow.Ping(ctx)
		done <- err
	}()
	// Its attempts are refused meanwhile, as the FailFast client's are.
	if _, err := fast.Lookup(ctx, "web"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("FailFast lookup of nothing: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("a client without FailFast gave up: %v", err)
	default:
	}
	nodetest.StartRegistry(t, registry.Config{}, ep)
	if err := <-done; err != nil {
		t.Fatalf("a client without FailFast, once the server is up: %v", err)
	}
	// And the FailFast client reaches it now.
	testutil.Eventually(t, 10*time.Second, "the FailFast client reaches the server", func() bool {
		_, _, err := fast.Ping(ctx)
		return err == nil
	})
}
