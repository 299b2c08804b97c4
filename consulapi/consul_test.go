package consulapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/join"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
)

// start runs a node with HTTP on a free loopback port.
func start(t *testing.T, cfg node.Config) *nodetest.Running {
	t.Helper()
	if cfg.HTTP.Addr == "" {
		cfg.HTTP.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = testutil.Logger(t)
	}
	return nodetest.Start(t, cfg)
}

func consulClient(t *testing.T, n *nodetest.Running) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: n.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func lookup(t *testing.T, cl *registry.Client, name string) []registry.Entry {
	t.Helper()
	es, err := cl.Lookup(testutil.Context(t, 5*time.Second), name)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// TestConsulRegisterThenZMTP: a service registered with the Go consul/api
// client is looked up over ZMTP once its TTL check passes (Consul's TTL
// checks start critical), with its address, port, tags and meta; it
// leaves on deregistration.
func TestConsulRegisterThenZMTP(t *testing.T) {
	n := start(t, node.Config{})
	c, zc := consulClient(t, n), n.Client(t)
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "10.0.0.7", Port: 8080,
		Tags: []string{"v1", "primary"}, Meta: map[string]string{"team": "a"}, Check: &api.AgentServiceCheck{TTL: "30s"}})
	if err != nil {
		t.Fatal(err)
	}
	if es := lookup(t, zc, "web"); len(es) != 0 {
		t.Fatalf("a service whose TTL check never passed is in the registry: %v", es)
	}
	svcs, err := c.Agent().Services()
	if err != nil || svcs["web-1"] == nil || svcs["web-1"].Port != 8080 {
		t.Fatalf("agent services %v, %v: want web-1 (critical, still the agent's)", svcs, err)
	}
	if err := c.Agent().PassTTL("service:web-1", "ok"); err != nil {
		t.Fatal(err)
	}
	var es []registry.Entry
	testutil.Eventually(t, 5*time.Second, "web over ZMTP", func() bool { es = lookup(t, zc, "web"); return len(es) == 1 })
	e := es[0]
	if e.Host != "10.0.0.7" || e.Port != 8080 || e.Meta["team"] != "a" || e.Meta["tags"] != "v1,primary" || e.Origin != n.Server().ID() {
		t.Fatalf("ZMTP entry %+v", e)
	}
	h, _, err := c.Health().Service("web", "primary", true, nil)
	if err != nil || len(h) != 1 || h[0].Service.ID != "web-1" || h[0].Node == nil || h[0].Node.Node != n.Server().ID() ||
		h[0].Checks.AggregatedStatus() != api.HealthPassing {
		t.Fatalf("health passing: %+v, %v", h, err)
	}
	if err := c.Agent().ServiceDeregister("web-1"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "web gone over ZMTP", func() bool { return len(lookup(t, zc, "web")) == 0 })
	if err := c.Agent().ServiceDeregister("web-1"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("deregistering an unknown id: %v, want 404", err)
	}
}

// TestZMTPThenConsul: an entry registered over ZMTP reads through every
// endpoint with Consul's fields (host -> Service.Address, metadata ->
// Meta and Tags, the origin server as Node).
func TestZMTPThenConsul(t *testing.T) {
	n := start(t, node.Config{})
	c, zc := consulClient(t, n), n.Client(t)
	ctx := testutil.Context(t, 10*time.Second)
	reg, err := zc.Register(ctx, registry.Service{Name: "db", Host: "10.0.0.9", Port: 5432, Proto: "postgres",
		Meta: map[string]string{"tags": "main, eu", "zone": "z1"}})
	if err != nil {
		t.Fatal(err)
	}
	var cs []*api.CatalogService
	var meta *api.QueryMeta
	testutil.Eventually(t, 5*time.Second, "db in the catalog", func() bool {
		cs, meta, err = c.Catalog().Service("db", "", nil)
		return err == nil && len(cs) == 1
	})
	s := cs[0]
	if s.ServiceID != reg.Instance() || s.ServiceAddress != "10.0.0.9" || s.ServicePort != 5432 || s.Node != n.Server().ID() ||
		!slices.Equal(s.ServiceTags, []string{"main", "eu"}) || s.ServiceMeta["zone"] != "z1" || s.ServiceMeta["proto"] != "postgres" ||
		s.ServiceMeta["tags"] != "" || meta.LastIndex == 0 || s.Datacenter != "dc1" {
		t.Fatalf("catalog service %+v, index %d", s, meta.LastIndex)
	}
	names, _, err := c.Catalog().Services(nil)
	if err != nil || !slices.Equal(names["db"], []string{"eu", "main"}) {
		t.Fatalf("catalog services %v, %v", names, err)
	}
	if cs, _, _ := c.Catalog().Service("db", "nope", nil); len(cs) != 0 {
		t.Fatalf("?tag=nope: %v", cs)
	}
	local, err := c.Agent().Services()
	if err != nil || local[reg.Instance()] == nil || local[reg.Instance()].Address != "10.0.0.9" {
		t.Fatalf("agent services %v, %v", local, err)
	}
	h, _, err := c.Health().Service("db", "", true, nil)
	if err != nil || len(h) != 1 || h[0].Node.Address == "" || h[0].Service.Port != 5432 {
		t.Fatalf("health %+v, %v", h, err)
	}
	leader, err := c.Status().Leader()
	if err != nil || leader == "" {
		t.Fatalf("status leader %q, %v", leader, err)
	}
	self, err := c.Agent().Self()
	if err != nil || self["Config"]["Datacenter"] != "dc1" {
		t.Fatalf("agent self %v, %v", self, err)
	}
}

// TestBlockingQuery: a blocking health query returns after a change it
// covers (and not before), before its wait ends, with a higher index; one
// about another name stays asleep; wait without index does not block.
func TestBlockingQuery(t *testing.T) {
	n := start(t, node.Config{})
	c, zc := consulClient(t, n), n.Client(t)
	_, meta, err := c.Health().Service("api", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if meta.LastIndex == 0 {
		t.Fatal("X-Consul-Index 0")
	}
	type result struct {
		es  []*api.ServiceEntry
		idx uint64
		err error
	}
	ask := func(name string) chan result {
		ch := make(chan result, 1)
		go func() {
			es, m, err := c.Health().Service(name, "", false, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
			r := result{es: es, err: err}
			if m != nil {
				r.idx = m.LastIndex
			}
			ch <- r
		}()
		return ch
	}
	apiQ, otherQ := ask("api"), ask("other")
	// Something the api query does not cover wakes nobody.
	ctx := testutil.Context(t, 20*time.Second)
	if _, err := zc.Register(ctx, registry.Service{Name: "unrelated", Host: "10.0.0.1", Port: 1}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "unrelated in the catalog", func() bool { return len(n.Catalog().Instances("unrelated")) == 1 })
	select {
	case r := <-apiQ:
		t.Fatalf("the api query returned on a change of another name: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := zc.Register(ctx, registry.Service{Name: "api", Host: "10.0.0.2", Port: 2}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-apiQ:
		if r.err != nil || len(r.es) != 1 || r.idx <= meta.LastIndex {
			t.Fatalf("woken query: %+v", r)
		}
	case <-ctx.Done():
		t.Fatal("the blocking query did not return after the change, within its wait")
	}
	select {
	case r := <-otherQ:
		t.Fatalf("the query about 'other' returned: %+v", r)
	default:
	}

	// wait without index answers at once.
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get("http://" + n.HTTPAddr() + "/v1/health/service/api?wait=120000ms&stale")
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		if resp.Header.Get("X-Consul-Index") == "0" || resp.Header.Get("X-Consul-Index") == "" {
			t.Errorf("X-Consul-Index %q", resp.Header.Get("X-Consul-Index"))
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("wait without index blocked")
	}
}

// TestTTLCheckExpires: a passing TTL check that is not renewed turns
// critical: the entry leaves the registry (ZMTP lookups, ?passing) but the
// agent still shows it, critical; a pass brings it back.
func TestTTLCheckExpires(t *testing.T) {
	n := start(t, node.Config{})
	c, zc := consulClient(t, n), n.Client(t)
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "job", Port: 9000,
		Check: &api.AgentServiceCheck{TTL: "300ms", Status: api.HealthPassing}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "job over ZMTP", func() bool { return len(lookup(t, zc, "job")) == 1 })
	if e := lookup(t, zc, "job"); len(e) == 1 && e[0].Host != "127.0.0.1" {
		t.Fatalf("a service registered without Address: host %q, want the node's 127.0.0.1", e[0].Host)
	}
	testutil.Eventually(t, 10*time.Second, "job gone over ZMTP after its TTL", func() bool { return len(lookup(t, zc, "job")) == 0 })
	h, _, err := c.Health().Service("job", "", false, nil)
	if err != nil || len(h) != 1 || h[0].Checks.AggregatedStatus() != api.HealthCritical {
		t.Fatalf("health of an expired check: %+v, %v", h, err)
	}
	var out string
	for _, ch := range h[0].Checks {
		if ch.CheckID == "service:job" {
			out = ch.Output
		}
	}
	if !strings.Contains(out, "TTL expired") {
		t.Fatalf("check output %q", out)
	}
	if h, _, _ := c.Health().Service("job", "", true, nil); len(h) != 0 {
		t.Fatalf("?passing shows a critical service: %+v", h)
	}
	if err := c.Agent().UpdateTTL("service:job", "back", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "job back over ZMTP", func() bool { return len(lookup(t, zc, "job")) == 1 })
	if err := c.Agent().WarnTTL("service:job", "slow"); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := c.Health().Service("job", "", true, nil); len(h) != 0 {
		t.Fatalf("?passing shows a warning service: %+v", h)
	}
	if es := lookup(t, zc, "job"); len(es) != 1 {
		t.Fatal("a warning service left the registry")
	}
	if err := c.Agent().FailTTL("service:job", "down"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "job failed: gone over ZMTP", func() bool { return len(lookup(t, zc, "job")) == 0 })
	if err := c.Agent().PassTTL("service:nope", ""); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("pass of an unknown check: %v", err)
	}
}

// TestJoinedEntriesAppear: an entry registered on A shows on B's Consul
// API with A as its Node.
func TestJoinedEntriesAppear(t *testing.T) {
	a := start(t, node.Config{Join: join.Config{Interval: 100 * time.Millisecond}})
	b := start(t, node.Config{Join: join.Config{Interval: 100 * time.Millisecond, Peers: []string{a.Addr()}}})
	ctx := testutil.Context(t, 20*time.Second)
	if _, err := a.Client(t).Register(ctx, registry.Service{Name: "far", Host: "10.9.9.9", Port: 99}); err != nil {
		t.Fatal(err)
	}
	c := consulClient(t, b)
	var h []*api.ServiceEntry
	testutil.Eventually(t, 15*time.Second, "far on B", func() bool {
		h, _, _ = c.Health().Service("far", "", true, nil)
		return len(h) == 1
	})
	if h[0].Node.Node != a.Server().ID() || h[0].Service.Address != "10.9.9.9" {
		t.Fatalf("joined entry on B: node %+v service %+v", h[0].Node, h[0].Service)
	}
	if svcs, _ := c.Agent().Services(); len(svcs) != 0 {
		t.Fatalf("B's agent services hold A's entry: %v", svcs)
	}
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func put(t *testing.T, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBadRequests: what is not supported or malformed gets Consul-style
// errors, never a wrong answer.
func TestBadRequests(t *testing.T) {
	n := start(t, node.Config{HTTP: node.HTTPConfig{MaxBodyBytes: 4096}})
	u := "http://" + n.HTTPAddr()
	for _, tc := range []struct {
		method, path, body string
		code               int
		says               string
	}{
		{"GET", "/v1/kv/foo", "", 404, "does not implement"},
		{"GET", "/v1/health/service/x?filter=Service.Port==1", "", 400, "filter"},
		{"GET", "/v1/catalog/service/x?dc=elsewhere", "", 500, "No path to datacenter"},
		{"GET", "/v1/health/service/x?index=abc", "", 400, "Invalid index"},
		{"GET", "/v1/health/service/x?index=1&wait=soon", "", 400, "Invalid wait"},
		{"PUT", "/v1/agent/service/register", "{", 400, "Request decode failed"},
		{"PUT", "/v1/agent/service/register", `{"Port": 1}`, 400, "Missing service name"},
		{"PUT", "/v1/agent/service/register", `{"Name": "x", "Port": 1, "Check": {"HTTP": "http://x/", "Interval": "10s"}}`, 400, "only TTL checks"},
		{"PUT", "/v1/agent/service/register", `{"Name": "x", "Port": 0}`, 400, "Invalid service"},
		{"PUT", "/v1/agent/service/register", `{"Name": "x", "Port": 1, "Tags": ["a,b"]}`, 400, "comma"},
		{"PUT", "/v1/agent/service/register", `{"Name": "x", "Port": 1, "Meta": {"consul-id": "y"}}`, 400, "reserved"},
		{"PUT", "/v1/agent/service/register", `{"Name": "x", "Connect": {"Native": true}}`, 400, "Connect"},
		{"PUT", "/v1/agent/service/register", `{"Name": "` + strings.Repeat("x", 5000) + `"}`, 413, "too large"},
		{"PUT", "/v1/agent/check/update/nope", `{"Status": "ok"}`, 400, "Invalid check status"},
		{"POST", "/v1/agent/service/register", `{}`, 405, ""},
	} {
		req, _ := http.NewRequest(tc.method, u+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.says) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.says)
		}
	}
}

// TestPrometheusShapes: what Prometheus's consul_sd decodes: agent/self
// as map[string]map[string]any, a Node object in every health entry.
func TestPrometheusShapes(t *testing.T) {
	n := start(t, node.Config{})
	ctx := testutil.Context(t, 10*time.Second)
	if _, err := n.Client(t).Register(ctx, registry.Service{Name: "p", Host: "10.0.0.3", Port: 3}); err != nil {
		t.Fatal(err)
	}
	u := "http://" + n.HTTPAddr()
	code, _, body := get(t, u+"/v1/agent/self")
	var self map[string]map[string]any
	if err := json.Unmarshal([]byte(body), &self); code != 200 || err != nil || self["Config"]["Datacenter"] != "dc1" {
		t.Fatalf("agent/self %d %v: %s", code, err, body)
	}
	var h []map[string]any
	testutil.Eventually(t, 5*time.Second, "p in health", func() bool {
		_, hdr, body := get(t, u+"/v1/health/service/p?stale&wait=120000ms")
		h = nil
		json.Unmarshal([]byte(body), &h)
		return hdr.Get("X-Consul-Index") != "0" && len(h) == 1
	})
	if _, ok := h[0]["Node"].(map[string]any); !ok {
		t.Fatalf("health entry without a Node object: %v", h[0])
	}
}

// TestLowerCaseKeys: python-consul 0.7.1's body (lower-case keys, a
// "check": {"ttl"}) registers, and its GET deregister works.
func TestLowerCaseKeys(t *testing.T) {
	n := start(t, node.Config{})
	u := "http://" + n.HTTPAddr()
	code, body := put(t, u+"/v1/agent/service/register", `{"name": "low", "id": "low-1", "port": 7, "address": "10.0.0.4", "tags": ["t"], "check": {"ttl": "10s"}}`)
	if code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	if code, _, body := get(t, u+"/v1/agent/check/pass/service:low-1"); code != 200 {
		t.Fatalf("GET check pass: %d %s", code, body)
	}
	zc := n.Client(t)
	testutil.Eventually(t, 5*time.Second, "low over ZMTP", func() bool { return len(lookup(t, zc, "low")) == 1 })
	if code, _, body := get(t, u+"/v1/agent/service/deregister/low-1"); code != 200 {
		t.Fatalf("GET deregister: %d %s", code, body)
	}
	testutil.Eventually(t, 5*time.Second, "low gone", func() bool { return len(lookup(t, zc, "low")) == 0 })
	_ = context.Background
}

// TestTunnelledEntriesAppear: A tunnels to B; B's service shows on A's
// Consul API with the address of A's proxy, not B's service's.
func TestTunnelledEntriesAppear(t *testing.T) {
	ka, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	kb, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	b := start(t, node.Config{Keys: &kb, Access: node.Access{Tunnels: secure.NewAllowList(ka.Public)}, Tunnel: tunnel.Config{Export: []string{"*"}}})
	a := start(t, node.Config{Keys: &ka, Tunnel: tunnel.Config{
		Remotes: []tunnel.Remote{{Addr: b.Addr(), Key: kb.Public}}, RedialMin: 50 * time.Millisecond}})
	ctx := testutil.Context(t, 30*time.Second)
	if _, err := b.Client(t).Register(ctx, registry.Service{Name: "echo", Host: "127.0.0.1", Port: 7}); err != nil {
		t.Fatal(err)
	}
	proxy := nodetest.TunnelProxy(t, a.Client(t), "echo")
	c := consulClient(t, a)
	var h []*api.ServiceEntry
	testutil.Eventually(t, 10*time.Second, "echo's proxy in A's health", func() bool {
		h, _, _ = c.Health().Service("echo", "", true, nil)
		for _, e := range h {
			if e.Service.Port == proxy.Port && e.Service.Address == proxy.Host {
				return true
			}
		}
		return false
	})
}

// TestDeregisterCriticalServiceAfter: a service whose check stays
// critical that long is deregistered from the agent too.
func TestDeregisterCriticalServiceAfter(t *testing.T) {
	n := start(t, node.Config{})
	c := consulClient(t, n)
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "tmp", Name: "tmp", Port: 1,
		Check: &api.AgentServiceCheck{TTL: "10s", DeregisterCriticalServiceAfter: "200ms"}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "tmp deregistered", func() bool {
		svcs, err := c.Agent().Services()
		return err == nil && svcs["tmp"] == nil
	})
	if err := c.Agent().PassTTL("service:tmp", ""); err == nil {
		t.Fatal("the check of a deregistered service still takes updates")
	}
}
