package statuspage_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/statuspage"
)

// fake is a Source whose services and index the test sets.
type fake struct {
	mu      sync.Mutex
	index   uint64
	names   []string
	changed chan struct{}
}

func newFake() *fake { return &fake{changed: make(chan struct{})} }

func (f *fake) set(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	f.names = names
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fake) Status(context.Context) statuspage.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := statuspage.Status{Server: "s1", Index: f.index}
	for _, n := range f.names {
		st.Services = append(st.Services, statuspage.Service{Name: n, Instances: []statuspage.Instance{{Instance: "i", Meta: map[string]string{"m": n}}}})
	}
	return st
}

func (f *fake) Changed(after uint64) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.index > after {
		c := make(chan struct{})
		close(c)
		return c
	}
	return f.changed
}

func serve(t *testing.T, src statuspage.Source, cfg statuspage.Config) *httptest.Server {
	p, err := statuspage.New(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	p.Mount(mux.Handle)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string) (*http.Response, string) {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return resp, b.String()
}

// The page is self-contained (nothing to fetch from elsewhere) and its
// policy allows its own inline script, by hash, and no other.
func TestPageSelfContained(t *testing.T) {
	ts := serve(t, newFake(), statuspage.Config{})
	resp, body := get(t, ts.URL+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if m := regexp.MustCompile(`(?i)(src|href)\s*=|https?://|@import|url\(`).FindString(body); m != "" {
		t.Errorf("the page refers to something outside itself: %q", m)
	}
	scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(body, -1)
	if len(scripts) != 1 || len(scripts[0][1]) < 100 {
		t.Fatalf("%d inline scripts, want 1 with the page's code", len(scripts))
	}
	sum := sha256.Sum256([]byte(scripts[0][1]))
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q does not pin the script", csp)
	}
	if resp, _ := get(t, ts.URL+"/other"); resp.StatusCode != 404 {
		t.Errorf("GET /other: %d, want 404 (the page is at / only)", resp.StatusCode)
	}
}

// The JSON escapes markup: a name with <script> never appears raw.
func TestStatusJSONEscapes(t *testing.T) {
	f := newFake()
	f.set("<script>alert(1)</script>")
	ts := serve(t, f, statuspage.Config{})
	_, body := get(t, ts.URL+statuspage.PathStatus)
	if strings.Contains(body, "<script>") || !strings.Contains(body, `\u003cscript\u003e`) {
		t.Fatalf("status JSON %s", body)
	}
}

// The event stream sends the status at once, again as soon as the source
// changes (long before Refresh), and refuses streams beyond MaxStreams.
func TestEventsFollowChanges(t *testing.T) {
	f := newFake()
	ts := serve(t, f, statuspage.Config{Refresh: time.Hour, MaxStreams: 1})
	ctx := testutil.Context(t, 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+statuspage.PathEvents, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() string {
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				return d
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return ""
	}
	if d := next(); !strings.Contains(d, `"index":0`) {
		t.Fatalf("first event %s", d)
	}
	if r2, _ := get(t, ts.URL+statuspage.PathEvents); r2.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a second stream beyond MaxStreams 1: %d, want 503", r2.StatusCode)
	}
	f.set("web")
	if d := next(); !strings.Contains(d, `"index":1`) || !strings.Contains(d, `"name":"web"`) {
		t.Fatalf("event after a change %s", d)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []statuspage.Config{{Refresh: -1}, {MaxStreams: -1}, {StatusTimeout: -1}, {MinInterval: -1}} {
		if _, err := statuspage.New(newFake(), c); err == nil {
			t.Errorf("New(%+v) worked", c)
		}
	}
	if _, err := statuspage.New(nil, statuspage.Config{}); err == nil {
		t.Error("New(nil) worked")
	}
}
