package statuspage

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

//go:embed page.html
var pageHTML []byte

//go:embed page.js
var pageJS []byte

// Defaults of Config.
const (
	DefaultRefresh       = 2 * time.Second
	DefaultMaxStreams    = 64
	DefaultStatusTimeout = 2 * time.Second
	DefaultMinInterval   = 250 * time.Millisecond
)

// Paths the page is served at (Mount).
const (
	PathPage   = "/"
	PathStatus = "/v1/hydra/status"
	PathEvents = "/v1/hydra/events"
)

// Config configures a Page. The zero value is the defaults.
type Config struct {
	// Refresh is how often the event stream sends the status when the
	// catalog does not change (the counters move anyway). Default 2s.
	Refresh time.Duration
	// MaxStreams bounds the event streams open at once (each is a
	// goroutine and a connection); more get 503. Default 64.
	MaxStreams int
	// StatusTimeout bounds each Status call's wait for the registry.
	// Default 2s.
	StatusTimeout time.Duration
	// MinInterval spaces a stream's events: changes within it go out as
	// one event (a status of 1000 entries costs about 2 ms to make, per
	// stream). Default 250ms.
	MinInterval time.Duration
}

// Validate reports the first bad field of c by its Go name.
func (c Config) Validate() error {
	switch {
	case c.Refresh < 0:
		return fmt.Errorf("statuspage: config: Refresh %v is negative", c.Refresh)
	case c.MaxStreams < 0:
		return fmt.Errorf("statuspage: config: MaxStreams %d is negative", c.MaxStreams)
	case c.StatusTimeout < 0:
		return fmt.Errorf("statuspage: config: StatusTimeout %v is negative", c.StatusTimeout)
	case c.MinInterval < 0:
		return fmt.Errorf("statuspage: config: MinInterval %v is negative", c.MinInterval)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Refresh == 0 {
		c.Refresh = DefaultRefresh
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.StatusTimeout == 0 {
		c.StatusTimeout = DefaultStatusTimeout
	}
	if c.MinInterval == 0 {
		c.MinInterval = DefaultMinInterval
	}
	return c
}

// Page serves the status page, its JSON and its event stream.
type Page struct {
	src     Source
	cfg     Config
	html    []byte // the page with its script inlined
	csp     string
	streams atomic.Int32
}

// New returns the page of src.
func New(src Source, cfg Config) (*Page, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("statuspage: no Source")
	}
	p := &Page{src: src, cfg: cfg.withDefaults()}
	// The script goes inline (one request, nothing else to fetch) and the
	// policy allows exactly that script: an injected one would not run.
	sum := sha256.Sum256(pageJS)
	p.csp = "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	p.html = bytes.Replace(pageHTML, []byte("<script></script>"), append(append([]byte("<script>"), pageJS...), "</script>"...), 1)
	return p, nil
}

// Mount mounts the page's handlers with handle (Node.HandleHTTP).
func (p *Page) Mount(handle func(pattern string, h http.Handler)) {
	handle("GET "+PathPage+"{$}", http.HandlerFunc(p.servePage))
	handle("GET "+PathStatus, http.HandlerFunc(p.serveStatus))
	handle("GET "+PathEvents, http.HandlerFunc(p.serveEvents))
}

func (p *Page) servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(p.html)))
	_, _ = w.Write(p.html)
}

// status is the status as JSON, and its catalog index.
func (p *Page) status(ctx context.Context) ([]byte, uint64) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StatusTimeout)
	defer cancel()
	st := p.src.Status(ctx)
	b, err := json.Marshal(st) // escapes <, > and &: safe even inside HTML
	if err != nil {
		b, _ = json.Marshal(Status{Error: "status: " + err.Error()})
	}
	return b, st.Index
}

func (p *Page) serveStatus(w http.ResponseWriter, r *http.Request) {
	b, _ := p.status(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(append(b, '\n'))
}

// serveEvents streams the status: now, at every catalog change, and every
// Refresh, until the client goes or the server stops (the request's
// context ends).
func (p *Page) serveEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	if int(p.streams.Add(1)) > p.cfg.MaxStreams {
		p.streams.Add(-1)
		w.Header().Set("Retry-After", "10")
		http.Error(w, fmt.Sprintf("%d event streams are open, the limit: poll %s instead", p.cfg.MaxStreams, PathStatus), http.StatusServiceUnavailable)
		return
	}
	defer p.streams.Add(-1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	ctx := r.Context()
	tick := time.NewTicker(p.cfg.Refresh)
	defer tick.Stop()
	gap := time.NewTimer(0)
	defer gap.Stop()
	buf := fmt.Appendf(nil, "retry: %d\n", p.cfg.Refresh.Milliseconds())
	for {
		b, idx := p.status(ctx)
		buf = append(append(append(buf, "data: "...), b...), "\n\n"...) // JSON has no raw newline
		if _, err := w.Write(buf); err != nil {
			return
		}
		fl.Flush()
		buf = buf[:0]
		gap.Reset(p.cfg.MinInterval)
		select {
		case <-ctx.Done():
			return
		case <-gap.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-p.src.Changed(idx):
		case <-tick.C:
		}
	}
}
