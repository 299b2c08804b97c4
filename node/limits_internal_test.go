package node

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/metrics"
	"github.com/hydra-net/hydra/secure"
)

// TestLimitsReachThePortAndTunnels: Limits.HandshakesPerSource and
// Handshakes are the shared port's first-byte caps and the tunnels' Noise
// handshake caps.
func TestLimitsReachThePortAndTunnels(t *testing.T) {
	kp, peer := newKey(t), newKey(t)
	cfg := Config{Endpoint: "tcp://127.0.0.1:0", Keys: &kp, Access: Access{Tunnels: secure.NewAllowList(peer.Public)},
		Limits: Limits{HandshakesPerSource: 2, Handshakes: 8}}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if tc := n.cfg.tunnelConfig("id"); tc.MaxHandshakesPerSource != 2 || tc.MaxHandshakes != 8 {
		t.Fatalf("tunnel config: %d per source, %d in all; want 2 and 8", tc.MaxHandshakesPerSource, tc.MaxHandshakes)
	}
	if d := (Config{Keys: &kp}).tunnelConfig("id"); d.MaxHandshakesPerSource != DefaultHandshakesPerSource || d.MaxHandshakes != DefaultHandshakes {
		t.Fatalf("default tunnel config: %d per source, %d in all", d.MaxHandshakesPerSource, d.MaxHandshakes)
	}
	for range 3 { // silent, from one source
		nc, err := net.Dial("tcp", n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	testutil.Eventually(t, 5*time.Second, "the third refused on the port", func() bool { return n.share.Stats().SourceFull == 1 })
	var w metrics.Writer
	n.writeMetrics(context.Background(), &w)
	if want := `hydra_handshake_failures_total{proto="port",reason="source_busy"} 1`; !strings.Contains(string(w.B), want+"\n") {
		t.Errorf("/metrics lacks %s", want)
	}
}
