package metrics_test

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hydra-net/hydra/metrics"
	"github.com/hydra-net/hydra/metrics/metricstest"
)

func sample() *metrics.Writer {
	var w metrics.Writer
	w.Family("hydra_requests_total", metrics.Counter, "Requests answered, by verb and result.")
	w.Sample(3, "verb", "LOOKUP", "result", "ok")
	w.Sample(1, "verb", "REGISTER", "result", "error")
	w.One("hydra_entries", metrics.Gauge, `Entries now (a "help" with \ and a newline
inside).`, 7)
	w.Family("hydra_peer_lag_seconds", metrics.Gauge, "Lag.")
	w.Sample(0.25, "peer", "evil\"}\nname\\ x")
	w.Sample(math.Inf(1), "peer", "inf")
	w.One("go_goroutines", metrics.Gauge, "Goroutines.", 12)
	return &w
}

func TestWriterParses(t *testing.T) {
	w := sample()
	if w.Err() != nil {
		t.Fatal(w.Err())
	}
	fs, err := metricstest.Parse(string(w.B))
	if err != nil {
		t.Fatalf("%v\n%s", err, w.B)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"hydra_requests_total", []string{"verb", "LOOKUP", "result", "ok"}, 3},
		{"hydra_requests_total", []string{"result", "error", "verb", "REGISTER"}, 1},
		{"hydra_entries", nil, 7},
		{"hydra_peer_lag_seconds", []string{"peer", "evil\"}\nname\\ x"}, 0.25},
		{"hydra_peer_lag_seconds", []string{"peer", "inf"}, math.Inf(1)},
		{"go_goroutines", nil, 12},
	} {
		if v, ok := fs.Value(c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v, %v; want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if h := fs["hydra_entries"].GetHelp(); h != "Entries now (a \"help\" with \\ and a newline\ninside)." {
		t.Errorf("help %q", h)
	}
}

// Every prefix of an exposition that ends at a line's end is an exposition
// too: a scrape cut short is never misread as other values.
func TestWriterTruncatedPrefixes(t *testing.T) {
	b := sample().B
	for i := 0; i <= len(b); i++ {
		if i > 0 && b[i-1] != '\n' {
			continue
		}
		if _, err := metricstest.Parse(string(b[:i])); err != nil && !strings.Contains(err.Error(), "TYPE") {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
}

func TestWriterBadNames(t *testing.T) {
	for _, f := range []func(w *metrics.Writer){
		func(w *metrics.Writer) { w.One("", metrics.Gauge, "x", 1) },
		func(w *metrics.Writer) { w.One("9lives", metrics.Gauge, "x", 1) },
		func(w *metrics.Writer) { w.One("a-b", metrics.Gauge, "x", 1) },
		func(w *metrics.Writer) { w.One("a", metrics.Gauge, "x", 1); w.One("a", metrics.Gauge, "x", 1) },
		func(w *metrics.Writer) { w.Family("a", metrics.Gauge, "x"); w.Sample(1, "a:b", "v") },
		func(w *metrics.Writer) { w.Family("a", metrics.Gauge, "x"); w.Sample(1, "odd") },
	} {
		var w metrics.Writer
		f(&w)
		if !errors.Is(w.Err(), metrics.ErrName) {
			t.Errorf("%q: err %v", w.B, w.Err())
		}
		if _, err := metricstest.Parse(string(w.B)); err != nil {
			t.Errorf("what was written before the bad name does not parse: %v\n%s", err, w.B)
		}
	}
}

func TestHandler(t *testing.T) {
	h := metrics.Handler(func(_ *http.Request, w *metrics.Writer) { w.One("x_total", metrics.Counter, "X.", 1) })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != metrics.ContentType || !strings.Contains(rec.Body.String(), "x_total 1\n") {
		t.Fatalf("%d %q %q", rec.Code, rec.Header(), rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
	bad := metrics.Handler(func(_ *http.Request, w *metrics.Writer) { w.One("x y", metrics.Counter, "X.", 1) })
	rec = httptest.NewRecorder()
	bad.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 500 {
		t.Fatalf("bad name: %d", rec.Code)
	}
}

// FuzzWriter: whatever a peer puts in a label value or the help text, the
// exposition parses and the value reads back as written (invalid UTF-8
// replaced).
func FuzzWriter(f *testing.F) {
	f.Add("peer-1", "help", 1.5)
	f.Add("a\"b\\c\nd}", "x\\n\ny", math.Copysign(0, -1))
	f.Add("\xff\xfe", "\x00", math.NaN())
	f.Fuzz(func(t *testing.T, label, help string, v float64) {
		var w metrics.Writer
		w.Family("hydra_fuzz", metrics.Gauge, help)
		w.Sample(v, "l", label)
		fs, err := metricstest.Parse(string(w.B))
		if err != nil {
			t.Fatalf("%v\n%q", err, w.B)
		}
		want := []rune(label) // each bad byte one U+FFFD

		m := fs["hydra_fuzz"].Metric[0]
		if got := m.Label[0].GetValue(); got != string(want) {
			t.Fatalf("label %q read back as %q", want, got)
		}
		if got := m.Gauge.GetValue(); got != v && !(math.IsNaN(v) && math.IsNaN(got)) {
			t.Fatalf("value %v read back as %v", v, got)
		}
	})
}
