package registry_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// bigServices are n services of about size bytes each (metadata), spread
// over a few names so that pages end inside a name.
func bigServices(n, size int) []registry.Service {
	svcs := make([]registry.Service, n)
	for i := range svcs {
		svcs[i] = registry.Service{Name: fmt.Sprintf("big-%02d", i%7), Host: "10.0.0.1", Port: 1 + i,
			Meta: map[string]string{"blob": strings.Repeat("x", size)}}
	}
	return svcs
}

// TestListPageBytes: LIST entries=true over entries totalling well over
// MaxListBytes (default 1 MiB) returns pages under the byte cap, each with
// a cursor but the last, and paging through returns every entry exactly
// once, in order.
func TestListPageBytes(t *testing.T) {
	const n = 600 // × ~3.5 KB: about 2.2 MB of entries
	srv := startServer(t, registry.Config{Static: bigServices(n, 3500)})
	req := rawSocket(t, srv, zmtp.REQ)
	after, pages := "", 0
	var got []registry.Entry
	for {
		body, _ := json.Marshal(map[string]any{"entries": true, "after": after})
		msg := roundTrip(t, req, []byte("LIST"), body)
		if len(msg) != 2 || string(msg[0]) != "OK" {
			t.Fatalf("LIST: %q", msg)
		}
		if len(msg[1]) > registry.DefaultMaxListBytes+4096 {
			t.Fatalf("page %d is %d bytes: want about %d at most", pages, len(msg[1]), registry.DefaultMaxListBytes)
		}
		var page struct {
			Entries []registry.Entry `json:"entries"`
			Next    *string          `json:"next"`
		}
		if err := json.Unmarshal(msg[1], &page); err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, page.Entries...)
		if page.Next == nil {
			break
		}
		if len(page.Entries) == 0 || pages > n {
			t.Fatalf("page %d: %d entries, next %q", pages, len(page.Entries), *page.Next)
		}
		after = *page.Next
	}
	if pages < 3 {
		t.Errorf("%d pages for about 2.2 MB of entries: want at least 3", pages)
	}
	seen := map[string]bool{}
	for i, e := range got {
		if seen[e.Instance] {
			t.Fatalf("entry %s twice", e.Instance)
		}
		seen[e.Instance] = true
		if i > 0 && (got[i-1].Name > e.Name || got[i-1].Name == e.Name && got[i-1].Instance >= e.Instance) {
			t.Fatalf("not sorted at %d", i)
		}
	}
	if len(got) != n {
		t.Fatalf("%d entries in %d pages, want %d", len(got), pages, n)
	}
	// The client's paging agrees.
	c := newClient(t, srv, registry.ClientConfig{})
	es, err := c.ListEntries(testutil.Context(t, 10*time.Second))
	if err != nil || len(es) != n {
		t.Fatalf("ListEntries: %d entries, %v", len(es), err)
	}
}

// TestListPageOneBigEntry: a page holds at least one entry, however large,
// so that paging always moves on.
func TestListPageOneBigEntry(t *testing.T) {
	srv := startServer(t, registry.Config{Static: bigServices(3, 3000), MaxListBytes: 1000})
	c := newClient(t, srv, registry.ClientConfig{})
	es, err := c.ListEntries(testutil.Context(t, 10*time.Second))
	if err != nil || len(es) != 3 {
		t.Fatalf("ListEntries: %d entries, %v", len(es), err)
	}
	req := rawSocket(t, srv, zmtp.REQ)
	p := mustOK(t, req, "LIST", map[string]any{"entries": true})
	if len(p["entries"].([]any)) != 1 || p["next"] == nil {
		t.Fatalf("first page: %d entries, next %v: want 1 and a cursor", len(p["entries"].([]any)), p["next"])
	}
}

// BenchmarkListEntries is a full LIST entries=true page (1000 entries of
// about 1 KB) over loopback, client and server in this process.
func BenchmarkListEntries(b *testing.B) {
	srv := startServer(b, registry.Config{Static: bigServices(1000, 1000)})
	req := rawSocket(b, srv, zmtp.REQ)
	body := []byte(`{"entries":true}`)
	b.ReportAllocs()
	for b.Loop() {
		msg := roundTrip(b, req, []byte("LIST"), body)
		if string(msg[0]) != "OK" {
			b.Fatalf("%q", msg)
		}
		b.SetBytes(int64(len(msg[1])))
	}
}
