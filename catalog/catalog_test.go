package catalog_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/catalog"
	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
)

// fakeWatch hands the catalog the events a test sends.
type fakeWatch struct{ ch chan registry.Event }

func (f fakeWatch) Watch(context.Context) (<-chan registry.Event, error) { return f.ch, nil }

func entry(name, inst string, port int) registry.Entry {
	return registry.Entry{Service: registry.Service{Name: name, Host: "10.0.0.1", Port: port, Proto: "tcp"},
		Instance: inst, Origin: "s1", Version: 1}
}

func run(t *testing.T, c *catalog.Catalog) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func waitIndex(t *testing.T, c *catalog.Catalog, after uint64) {
	t.Helper()
	select {
	case <-c.Changed(after):
	case <-time.After(10 * time.Second):
		t.Fatalf("index still %d, want > %d", c.Index(), after)
	}
}

func TestCatalogFollowsEvents(t *testing.T) {
	f := fakeWatch{make(chan registry.Event)}
	c := catalog.New(f)
	if c.Index() != 0 || c.Names() != nil {
		t.Fatalf("before sync: index %d names %v", c.Index(), c.Names())
	}
	run(t, c)
	f.ch <- registry.Event{Type: registry.EventSync, Entries: []registry.Entry{entry("web", "b", 2), entry("web", "a", 1), entry("db", "c", 3)}}
	waitIndex(t, c, 0)
	if got := c.Names(); len(got) != 2 || got[0] != "db" || got[1] != "web" {
		t.Fatalf("Names %v, want [db web]", got)
	}
	web := c.Instances("web")
	if len(web) != 2 || web[0].Instance != "a" || web[1].Instance != "b" {
		t.Fatalf("Instances(web) %v, want a, b", web)
	}
	s1 := c.Snapshot()
	dbIdx := s1.NameIndex("db")

	i := c.Index()
	f.ch <- registry.Event{Type: registry.EventRegister, Entry: entry("web", "0", 9)}
	waitIndex(t, c, i)
	if web := c.Instances("web"); len(web) != 3 || web[0].Instance != "0" {
		t.Fatalf("after register: %v", web)
	}
	if c.Snapshot().NameIndex("db") != dbIdx || c.Snapshot().NameIndex("web") <= dbIdx {
		t.Fatalf("name indexes db %d web %d, want db unchanged (%d), web above", c.Snapshot().NameIndex("db"), c.Snapshot().NameIndex("web"), dbIdx)
	}
	if len(s1.Instances("web")) != 2 {
		t.Fatal("an old snapshot changed")
	}

	i = c.Index()
	up := entry("web", "a", 1111)
	up.Version = 2
	f.ch <- registry.Event{Type: registry.EventUpdate, Entry: up}
	waitIndex(t, c, i)
	if web := c.Instances("web"); web[1].Port != 1111 {
		t.Fatalf("after update: %v", web)
	}

	// An update may rename an entry: it leaves its old name.
	i = c.Index()
	ren := entry("api", "b", 2)
	ren.Version = 2
	f.ch <- registry.Event{Type: registry.EventUpdate, Entry: ren}
	waitIndex(t, c, i)
	if web, api := c.Instances("web"), c.Instances("api"); len(web) != 2 || len(api) != 1 {
		t.Fatalf("after a rename web %v api %v, want 2 and 1", web, api)
	}
	i = c.Index()
	f.ch <- registry.Event{Type: registry.EventDeregister, Entry: ren}
	waitIndex(t, c, i)
	if c.Instances("api") != nil || len(c.Names()) != 2 {
		t.Fatalf("after deregistering the renamed entry: names %v", c.Names())
	}

	i = c.Index()
	f.ch <- registry.Event{Type: registry.EventExpire, Entry: entry("db", "c", 3)}
	waitIndex(t, c, i)
	if got := c.Names(); len(got) != 1 || got[0] != "web" || c.Instances("db") != nil {
		t.Fatalf("after expire: names %v db %v", got, c.Instances("db"))
	}
	if c.Snapshot().NameIndex("db") <= dbIdx {
		t.Fatal("db's index did not grow when its last instance went")
	}
	if all := c.All(); len(all) != 2 {
		t.Fatalf("All: %v", all)
	}

	// A resync that changes nothing for web leaves its index alone.
	i, webIdx := c.Index(), c.Snapshot().NameIndex("web")
	f.ch <- registry.Event{Type: registry.EventSync, Entries: c.All()}
	waitIndex(t, c, i)
	if c.Snapshot().NameIndex("web") != webIdx {
		t.Fatalf("an identical sync moved web's index %d -> %d", webIdx, c.Snapshot().NameIndex("web"))
	}
	i = c.Index()
	f.ch <- registry.Event{Type: registry.EventSync}
	waitIndex(t, c, i)
	if c.Names() != nil || c.Snapshot().NameIndex("web") <= webIdx {
		t.Fatalf("empty sync: names %v", c.Names())
	}
	// A deregister of an unknown instance is no change.
	f.ch <- registry.Event{Type: registry.EventDeregister, Entry: entry("nope", "x", 1)}
	f.ch <- registry.Event{Type: registry.EventKeepalive}
	if c.Index() != i+1 {
		t.Fatalf("index %d after no-op events, want %d", c.Index(), i+1)
	}
}

func TestCatalogRunEndsWithWatch(t *testing.T) {
	f := fakeWatch{make(chan registry.Event)}
	c := catalog.New(f)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	close(f.ch)
	if err := <-done; err != catalog.ErrWatchClosed {
		t.Fatalf("Run: %v, want ErrWatchClosed", err)
	}
}

// TestCatalogRegistry follows a real registry: ZMTP registrations and
// in-process ones, read concurrently (run with -race).
func TestCatalogRegistry(t *testing.T) {
	srv := nodetest.StartRegistry(t, registry.Config{}, "tcp://127.0.0.1:0")
	c := catalog.New(srv.Local())
	run(t, c)
	ctx := testutil.Context(t, 30*time.Second)
	cl := nodetest.RegistryClient(t, srv.Endpoint(), registry.ClientConfig{})
	reg, err := cl.Register(ctx, registry.Service{Name: "web", Host: "10.1.1.1", Port: 80, Meta: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	local, err := srv.Local().Register(ctx, registry.Service{Name: "web", Host: "10.1.1.2", Port: 81})
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := c.Snapshot()
				for _, n := range s.Names() {
					_ = s.Instances(n)
				}
				_ = c.All()
				<-c.Changed(c.Index() - 1)
			}
		}()
	}
	testutil.Eventually(t, 10*time.Second, "two web instances", func() bool { return len(c.Instances("web")) == 2 })
	for _, e := range c.Instances("web") {
		if e.Instance == reg.Instance() && (e.Host != "10.1.1.1" || e.Meta["k"] != "v") {
			t.Errorf("ZMTP entry %+v", e)
		}
	}
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "only the local instance", func() bool {
		es := c.Instances("web")
		return len(es) == 1 && es[0].Instance == local
	})
	close(stop)
	wg.Wait()
}

func BenchmarkInstances(b *testing.B) {
	f := fakeWatch{make(chan registry.Event)}
	c := catalog.New(f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	var es []registry.Entry
	for i := range 8 {
		es = append(es, entry("web", string(rune('a'+i)), i+1))
	}
	f.ch <- registry.Event{Type: registry.EventSync, Entries: es}
	<-c.Changed(0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if len(c.Snapshot().Instances("web")) != 8 {
				b.Fatal("wrong count")
			}
		}
	})
}
