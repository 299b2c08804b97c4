package abuse

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hydra-net/hydra/secure"
)

// tunnelSetup is a key pair for the attacked server, one for a legitimate
// tunnel peer, and the allow-list that lets the peer in.
type tunnelSetup struct {
	serverKey, peerKey, allow string
	serverPub                 string
}

func newTunnelSetup(t testing.TB) tunnelSetup {
	t.Helper()
	dir := t.TempDir()
	var ts tunnelSetup
	ts.serverKey = filepath.Join(dir, "server.key")
	skp, err := secure.Keygen(ts.serverKey, false)
	if err != nil {
		t.Fatal(err)
	}
	ts.peerKey = filepath.Join(dir, "peer.key")
	pkp, err := secure.Keygen(ts.peerKey, false)
	if err != nil {
		t.Fatal(err)
	}
	ts.allow = filepath.Join(dir, "allow-tunnels")
	if err := os.WriteFile(ts.allow, []byte(pkp.Public.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts.serverPub = skp.Public.String()
	return ts
}

// serverArgs are the attacked server's flags: it accepts the peer's
// tunnels on its shared port (first-byte sniffing, Noise).
func (ts tunnelSetup) serverArgs() []string {
	return []string{"--key-file", ts.serverKey, "--allow-tunnels", ts.allow}
}

// newTunnel starts a second server process that keeps a tunnel to s from
// 127.0.0.1 (on the calling test's goroutine: it may fail t) and returns
// a func that waits up to d for the tunnel to come up, returning how long
// it took (false: not within d).
func (ts tunnelSetup) newTunnel(t testing.TB, s *server) func(d time.Duration) (time.Duration, bool) {
	t.Helper()
	c := startServer(t, "--key-file", ts.peerKey, "--tunnel", s.addr, "--remote-key", ts.serverPub)
	return func(d time.Duration) (time.Duration, bool) { return c.waitLog("tunnel: up", d) }
}
