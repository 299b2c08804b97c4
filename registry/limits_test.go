package registry_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// Config.ConnsPerSource reaches the server's socket: past it, a client's
// connection is closed (after the ZMTP ERROR that says why) and counted as
// a limit failure; the ones before it are served.
func TestConnsPerSourceRefused(t *testing.T) {
	srv := startServer(t, registry.Config{ConnsPerSource: 2})
	for range 2 {
		c := dialRawNull(t, srv.Endpoint())
		c.send([]byte("PING"))
		if rep, err := c.recv(); err != nil || len(rep) == 0 || string(rep[0]) != "OK" {
			t.Fatalf("PING within the cap: %q, %v", rep, err)
		}
	}
	c := dialRawNull(t, srv.Endpoint())
	var ne net.Error
	if _, err := c.recv(); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a third connection from one address stays open (read: %v)", err)
	}
	testutil.Eventually(t, 5*time.Second, "the refusal counted", func() bool {
		return srv.HandshakeFailures()[zmtp.FailLimit] == 1
	})
}
