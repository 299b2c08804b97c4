package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/metrics/metricstest"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/secure/noise"
	"github.com/hydra-net/hydra/statuspage"
	"github.com/hydra-net/hydra/tunnel"
	"github.com/hydra-net/hydra/zmtp"
	"github.com/hydra-net/hydra/zmtp/curve"
)

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testutil.Context(t, 10*time.Second), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func scrape(t testing.TB, n *nodetest.Running) metricstest.Families {
	t.Helper()
	code, body := httpGet(t, "http://"+n.HTTPAddr()+node.PathMetrics)
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	fs, err := metricstest.Parse(body)
	if err != nil {
		t.Fatalf("GET /metrics does not parse: %v\n%s", err, body)
	}
	return fs
}

func metric(t testing.TB, fs metricstest.Families, name string, labels ...string) float64 {
	t.Helper()
	v, ok := fs.Value(name, labels...)
	if !ok {
		t.Fatalf("no %s%v", name, labels)
	}
	return v
}

// TestMetricsMove: /metrics parses with Prometheus's parser, and its values
// follow what happens: a registration moves the local entries gauge, a
// lookup the LOOKUP counter, a bad handshake the handshake failures.
func TestMetricsMove(t *testing.T) {
	n := nodetest.Start(t, node.Config{HTTP: node.HTTPConfig{Addr: "127.0.0.1:0"}})
	c := n.Client(t)
	ctx := testutil.Context(t, 20*time.Second)
	if _, err := c.Lookup(ctx, "web"); err != nil { // the client is connected: the server serves
		t.Fatal(err)
	}
	before := scrape(t, n)
	if v := metric(t, before, "hydra_registry_responsive"); v != 1 {
		t.Fatalf("hydra_registry_responsive %v", v)
	}
	for _, name := range []string{"hydra_entries", "hydra_requests_total", "hydra_handshake_failures_total", "hydra_watchers",
		"hydra_slow_consumers_total", "hydra_join_links_up", "hydra_tunnel_links", "go_goroutines", "go_memstats_heap_alloc_bytes", "hydra_build_info"} {
		if before[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if _, err := c.Register(ctx, registry.Service{Name: "web", Host: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	events, err := c.Watch(wctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range events {
		}
	}()
	testutil.Eventually(t, 10*time.Second, "the watch counted", func() bool { return n.Server().Stats().Watches == 1 })
	nc, err := net.Dial("tcp", n.Addr()) // not ZMTP
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	defer nc.Close()
	testutil.Eventually(t, 10*time.Second, "the greeting failure counted", func() bool {
		v, _ := scrape(t, n).Value("hydra_handshake_failures_total", "proto", "zmtp", "reason", "greeting")
		return v == 1
	})
	after := scrape(t, n)
	if b, a := metric(t, before, "hydra_entries", "kind", "local"), metric(t, after, "hydra_entries", "kind", "local"); b != 0 || a != 1 {
		t.Errorf("local entries %v then %v, want 0 then 1", b, a)
	}
	if b, a := metric(t, before, "hydra_requests_total", "verb", "LOOKUP", "result", "ok"),
		metric(t, after, "hydra_requests_total", "verb", "LOOKUP", "result", "ok"); a != b+1 {
		t.Errorf("LOOKUP ok %v then %v, want one more", b, a)
	}
	if a := metric(t, after, "hydra_requests_total", "verb", "REGISTER", "result", "ok"); a != 1 {
		t.Errorf("REGISTER ok %v", a)
	}
	if a := metric(t, after, "hydra_watchers"); a != 1 {
		t.Errorf("watchers %v, want 1", a)
	}
	if a := metric(t, after, "hydra_registered_total"); a != 1 {
		t.Errorf("registered %v", a)
	}
}

func curveNode(t *testing.T, allow ...secure.PublicKey) (*nodetest.Running, secure.KeyPair) {
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	n := nodetest.Start(t, node.Config{Keys: &kp, Curve: true, Access: node.Access{Clients: secure.NewAllowList(allow...)},
		HTTP: node.HTTPConfig{Addr: "127.0.0.1:0"}})
	return n, kp
}

// TestMetricsCurveRefusals: a client whose key is not allowed counts as a
// security failure, a NULL client at a CURVE port as a greeting failure;
// /healthz answers 200 on a CURVE server all the same.
func TestMetricsCurveRefusals(t *testing.T) {
	n, srvKeys := curveNode(t)
	stranger, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	s, err := zmtp.NewSocket(zmtp.DEALER, zmtp.Config{Linger: -1, Security: curve.Client(stranger, srvKeys.Public)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Connect(n.Endpoint()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "a security failure counted", func() bool {
		v, _ := scrape(t, n).Value("hydra_handshake_failures_total", "proto", "zmtp", "reason", "security")
		return v >= 1
	})
	s.Close()
	nodetest.RawSocket(t, n.Endpoint(), zmtp.DEALER) // NULL
	testutil.Eventually(t, 10*time.Second, "a greeting failure counted", func() bool {
		v, _ := scrape(t, n).Value("hydra_handshake_failures_total", "proto", "zmtp", "reason", "greeting")
		return v >= 1
	})
	code, body := httpGet(t, "http://"+n.HTTPAddr()+node.PathHealth)
	if code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("GET /healthz on a CURVE server: %d %s", code, body)
	}
}

// TestHealth: 200 with the server's id while the loop answers; 503 when it
// does not in time (a node built but not running: its loop never starts).
func TestHealth(t *testing.T) {
	n := nodetest.Start(t, node.Config{HTTP: node.HTTPConfig{Addr: "127.0.0.1:0"}})
	code, body := httpGet(t, "http://"+n.HTTPAddr()+node.PathHealth)
	var h struct{ Status, Server string }
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 || h.Status != "ok" || h.Server != n.Server().ID() {
		t.Fatalf("GET /healthz: %d %s (%v)", code, body, err)
	}

	idle, err := node.New(node.Config{Endpoint: "tcp://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := idle.Health(ctx); err == nil {
		t.Fatal("Health of a node whose loop does not run: nil")
	}
	rec := httptest.NewRecorder()
	idle.ServeHealthForTest(rec, httptest.NewRequestWithContext(ctx, "GET", node.PathHealth, nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"status":"unavailable"`) {
		t.Fatalf("healthz of a stuck loop: %d %s", rec.Code, rec.Body.String())
	}
}

// TestMetricsJoinAndTunnels: a joined server's entry counts as joined and
// its link as up with a lag; a tunnel's proxy as tunnelled, its link as up,
// its bytes move when a connection goes through it; a stranger's tunnel
// handshake counts as a noise failure; the status page's JSON shows them.
func TestMetricsJoinAndTunnels(t *testing.T) {
	echo := testutil.EchoServer(t)
	kp := func() secure.KeyPair {
		k, err := secure.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ka, kb, stranger := kp(), kp(), kp()
	b := nodetest.Start(t, node.Config{Keys: &kb, Access: node.Access{Tunnels: secure.NewAllowList(ka.Public)},
		Join: join.Config{Interval: 100 * time.Millisecond}, Tunnel: tunnel.Config{Export: []string{"*"}}})
	a := nodetest.Start(t, node.Config{Keys: &ka, HTTP: node.HTTPConfig{Addr: "127.0.0.1:0"},
		Join:   join.Config{Interval: 100 * time.Millisecond, Peers: []string{b.Addr()}},
		Tunnel: tunnel.Config{Remotes: []tunnel.Remote{{Addr: b.Addr(), Key: kb.Public}}, RedialMin: 50 * time.Millisecond}})
	ctx := testutil.Context(t, 30*time.Second)
	if _, err := b.Client(t).Register(ctx, registry.Service{Name: "echo", Host: "127.0.0.1", Port: echo.Port}); err != nil {
		t.Fatal(err)
	}
	proxy := nodetest.TunnelProxy(t, a.Client(t), "echo")
	var fs metricstest.Families
	testutil.Eventually(t, 20*time.Second, "the joined entry and the link up", func() bool {
		fs = scrape(t, a)
		j, _ := fs.Value("hydra_entries", "kind", "joined")
		up, _ := fs.Value("hydra_join_links_up")
		return j == 1 && up == 1
	})
	if v := metric(t, fs, "hydra_entries", "kind", "tunnelled"); v != 1 {
		t.Errorf("tunnelled entries %v, want 1 (the proxy)", v)
	}
	if v := metric(t, fs, "hydra_entries", "kind", "local"); v != 0 {
		t.Errorf("local entries %v, want 0", v)
	}
	if _, ok := fs.Value("hydra_join_link_lag_seconds", "link", b.Addr(), "dir", "out"); !ok {
		t.Errorf("no lag for the link to %s:\n%v", b.Addr(), fs["hydra_join_link_lag_seconds"])
	}
	if v := metric(t, fs, "hydra_tunnel_links", "state", "up"); v != 1 {
		t.Errorf("tunnel links up %v", v)
	}
	link := b.Addr()
	before := metric(t, fs, "hydra_tunnel_bytes_total", "link", link, "direction", "out")
	if got, err := testutil.EchoRoundTrip(proxy.Addr(), []byte("through the tunnel")); err != nil || string(got) != "through the tunnel" {
		t.Fatalf("echo through the proxy: %q %v", got, err)
	}
	testutil.Eventually(t, 10*time.Second, "the tunnel's bytes counted", func() bool {
		v, _ := scrape(t, a).Value("hydra_tunnel_bytes_total", "link", link, "direction", "out")
		return v > before
	})

	// A stranger's tunnel handshake at B (B accepts tunnels, from A only):
	// Noise finishes it, so that the stranger can be told it is refused.
	if c, err := noiseDial(ctx, b.Addr(), stranger, kb.Public); err == nil {
		defer c.Close()
	}
	testutil.Eventually(t, 10*time.Second, "the refused tunnel counted at B", func() bool {
		for _, f := range b.Tunnels().HandshakeFailures() { // what B's /metrics shows as proto="noise"
			if f.Count > 0 {
				return f.Reason == "unauthorized"
			}
		}
		return false
	})

	_, body := httpGet(t, "http://"+a.HTTPAddr()+"/v1/hydra/status")
	var st statuspage.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, s := range st.Services {
		for _, i := range s.Instances {
			kinds[i.Kind] = true
		}
	}
	if !kinds["joined"] || !kinds["tunnelled"] || len(st.Joined) != 1 || !st.Joined[0].Up || len(st.Tunnels) != 1 || st.Tunnels[0].State != "up" {
		t.Errorf("status: kinds %v, joined %+v, tunnels %+v", kinds, st.Joined, st.Tunnels)
	}
}

// noiseDial makes a tunnel handshake to addr as kp, pinning remote.
func noiseDial(ctx context.Context, addr string, kp secure.KeyPair, remote secure.PublicKey) (net.Conn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := noise.Initiate(ctx, nc, noise.Config{Static: kp, RemoteKey: remote})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// BenchmarkScrape: one GET /metrics over HTTP (keep-alive) of a node
// holding 1000 entries, and one of the status page's JSON.
func BenchmarkScrape(b *testing.B) {
	n := nodetest.Start(b, node.Config{HTTP: node.HTTPConfig{Addr: "127.0.0.1:0"}})
	c := n.Client(b)
	ctx := testutil.Context(b, time.Minute)
	for i := range 1000 {
		if _, err := c.Register(ctx, registry.Service{Name: fmt.Sprintf("svc-%d", i%100), Host: "10.0.0.1", Port: 1000 + i}); err != nil {
			b.Fatal(err)
		}
	}
	testutil.Eventually(b, 20*time.Second, "the catalog holds them", func() bool { return len(n.Catalog().All()) == 1000 })
	for _, path := range []string{node.PathMetrics, "/v1/hydra/status"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			url := "http://" + n.HTTPAddr() + path
			var size int
			for b.Loop() {
				resp, err := http.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				size = len(body)
			}
			b.ReportMetric(float64(size), "body-bytes")
		})
	}
}

// TestOutputLimitsReachRegistry: Limits' byte budgets and write timeout
// are the registry's (INFO's limits say so), defaults included.
func TestOutputLimitsReachRegistry(t *testing.T) {
	for _, tc := range []struct {
		limits       node.Limits
		bytes, total int64
		timeout      float64
	}{
		{node.Limits{}, node.DefaultPendingBytes, node.DefaultPendingTotal, node.DefaultWriteTimeout.Seconds()},
		{node.Limits{PendingBytes: 1 << 20, PendingTotal: 2 << 20, WriteTimeout: 3 * time.Second}, 1 << 20, 2 << 20, 3},
	} {
		n := nodetest.Start(t, node.Config{Limits: tc.limits})
		in, err := n.Server().Local().Info(testutil.Context(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if l := in.Limits; l.MaxPendingBytes != tc.bytes || l.MaxPendingTotal != tc.total || l.WriteTimeout != tc.timeout {
			t.Errorf("Limits %+v: INFO limits %+v", tc.limits, l)
		}
	}
}
