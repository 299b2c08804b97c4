package consulapi_test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
)

// pythonConsul returns a python3 that imports Debian's python3-consul, or
// skips (fails under CI=true, where .ci/run installs it).
func pythonConsul(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		p, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(p, "-c", "import consul").Run() == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true: python3-consul must be installed (.ci/run installs it)")
	}
	t.Skip("no python3 with python3-consul")
	return ""
}

// py runs a python-consul snippet with c = consul.Consul(host, port) and
// returns what it prints (JSON).
func py(t *testing.T, python, addr, code string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	script := "import consul, json, sys\nc = consul.Consul(host='" + host + "', port=" + port + ")\n" + code
	out, err := exec.Command(python, "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -c %q: %v\n%s", code, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPythonConsul: Debian's python3-consul 0.7.1 (lower-case keys, GET
// for deregister and check updates) registers a service with a TTL check
// that is then found over ZMTP, reads a ZMTP registration through the
// catalog and health endpoints, waits in a blocking query, deregisters.
func TestPythonConsul(t *testing.T) {
	python := pythonConsul(t)
	n := start(t, node.Config{})
	addr, zc := n.HTTPAddr(), n.Client(t)

	out := py(t, python, addr, `
print(json.dumps([c.agent.service.register('pyweb', service_id='pyweb-1', address='10.0.0.5', port=8000, tags=['py'], check=consul.Check.ttl('10s')),
                  c.agent.check.ttl_pass('service:pyweb-1', 'fine')]))`)
	if out != "[true, true]" {
		t.Fatalf("register and ttl_pass: %s", out)
	}
	var es []registry.Entry
	testutil.Eventually(t, 5*time.Second, "pyweb over ZMTP", func() bool { es = lookup(t, zc, "pyweb"); return len(es) == 1 })
	if es[0].Host != "10.0.0.5" || es[0].Port != 8000 || es[0].Meta["tags"] != "py" {
		t.Fatalf("ZMTP entry %+v", es[0])
	}

	ctx := testutil.Context(t, 30*time.Second)
	if _, err := zc.Register(ctx, registry.Service{Name: "zdb", Host: "10.0.0.6", Port: 5432, Meta: map[string]string{"tags": "a"}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "zdb in the catalog", func() bool { return len(n.Catalog().Instances("zdb")) == 1 })
	out = py(t, python, addr, `
i, cs = c.catalog.service('zdb')
j, hs = c.health.service('zdb', passing=True)
print(json.dumps({'index': i, 'addr': cs[0]['ServiceAddress'], 'port': cs[0]['ServicePort'], 'tags': cs[0]['ServiceTags'],
                  'node': hs[0]['Node']['Node'], 'hport': hs[0]['Service']['Port']}))`)
	var got struct {
		Index string
		Addr  string
		Port  int
		Tags  []string
		Node  string
		HPort int
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Index == "" || got.Index == "0" || got.Addr != "10.0.0.6" || got.Port != 5432 || len(got.Tags) != 1 ||
		got.Node != n.Server().ID() || got.HPort != 5432 {
		t.Fatalf("python-consul read %+v", got)
	}

	// A blocking query: python waits on zdb's index; a second ZMTP
	// registration wakes it with both instances.
	cmd := exec.Command(python, "-c", "import consul, json\nc = consul.Consul(host='"+strings.Split(addr, ":")[0]+"', port="+strings.Split(addr, ":")[1]+")\n"+
		"i, hs = c.health.service('zdb', index='"+got.Index+"', wait='60s')\nprint(json.dumps([i, len(hs)]))")
	done := make(chan string, 1)
	go func() {
		b, err := cmd.CombinedOutput()
		if err != nil {
			b = append(b, []byte(err.Error())...)
		}
		done <- strings.TrimSpace(string(b))
	}()
	select {
	case out := <-done:
		t.Fatalf("the blocking query returned before the change: %s", out)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := zc.Register(ctx, registry.Service{Name: "zdb", Host: "10.0.0.7", Port: 5432}); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-done:
		var r []any
		if json.Unmarshal([]byte(out), &r) != nil || len(r) != 2 || r[1] != float64(2) || r[0] == got.Index {
			t.Fatalf("blocking query: %s", out)
		}
	case <-ctx.Done():
		t.Fatal("the blocking query did not return after the change, within its wait")
	}

	if out := py(t, python, addr, `print(json.dumps(c.agent.service.deregister('pyweb-1')))`); out != "true" {
		t.Fatalf("deregister: %s", out)
	}
	testutil.Eventually(t, 5*time.Second, "pyweb gone over ZMTP", func() bool { return len(lookup(t, zc, "pyweb")) == 0 })
}
