package consulapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/catalog"
	"github.com/hydra-net/hydra/registry"
)

// Loopback is the client identity of a request from a loopback address:
// it may change every service.
const Loopback = "loopback"

// Defaults of Config.
const (
	DefaultDatacenter  = "dc1"
	DefaultMaxServices = 4096
	// ConsulVersion is the Consul version agent/self reports: the API
	// level this subset follows (clients gate features on it).
	ConsulVersion = "1.20.0"
)

// Config is what the API answers from and with.
type Config struct {
	// Catalog is the read model of the registry (node.Catalog()). Required.
	Catalog *catalog.Catalog
	// Local is where HTTP registrations go (registry.Server.Local()).
	// Required.
	Local Registrar
	// ServerID is this server's id: the Node of its entries. Required.
	ServerID string
	// Datacenter is the datacenter every answer names; ?dc= anything else
	// is Consul's "No path to datacenter". Default "dc1".
	Datacenter string
	// NodeAddr is this node's address (Node.Address of its entries, the
	// Address of a service registered without one). Default "127.0.0.1".
	NodeAddr string
	// Leader is status/leader's answer and status/peers' one peer.
	// Default NodeAddr:8300 (Consul's server port).
	Leader string
	// Version is hydra-server's version, shown in agent/self.
	Version string
	// Identity says who a request is: Loopback, another identity (a token
	// holder), or ok false (anonymous, beyond loopback: no writes). Nil:
	// every request is Loopback (tests).
	Identity func(*http.Request) (id string, ok bool)
	// Resume hands a connection back to the HTTP server after a parked
	// blocking query was answered on it (resume.Listener.Resume). Nil:
	// blocking queries wait in their handlers.
	Resume func(net.Conn)
	// MaxParked bounds the blocking queries parked at once; more wait in
	// their handlers. Default 65536.
	MaxParked int
	// MaxServices bounds the services registered over HTTP. Default 4096.
	MaxServices int
	// Logger. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Datacenter == "" {
		c.Datacenter = DefaultDatacenter
	}
	if c.NodeAddr == "" {
		c.NodeAddr = "127.0.0.1"
	}
	if c.Leader == "" {
		c.Leader = net.JoinHostPort(c.NodeAddr, "8300")
	}
	if c.Identity == nil {
		c.Identity = func(*http.Request) (string, bool) { return Loopback, true }
	}
	if c.MaxParked == 0 {
		c.MaxParked = 65536
	}
	if c.MaxServices == 0 {
		c.MaxServices = DefaultMaxServices
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first problem of c, naming its fields.
func (c Config) Validate() error {
	switch {
	case c.Catalog == nil:
		return errors.New("consulapi: config: Catalog is required")
	case c.Local == nil:
		return errors.New("consulapi: config: Local is required")
	case c.ServerID == "":
		return errors.New("consulapi: config: ServerID is required")
	case c.MaxParked < 0:
		return fmt.Errorf("consulapi: config: MaxParked %d is negative", c.MaxParked)
	case c.MaxServices < 0:
		return fmt.Errorf("consulapi: config: MaxServices %d is negative", c.MaxServices)
	case strings.ContainsAny(c.Datacenter, " /?#"):
		return fmt.Errorf("consulapi: config: Datacenter %q: no spaces, '/', '?' or '#'", c.Datacenter)
	}
	return nil
}

// API is the Consul agent API subset. Mount it, Close it when the node
// stops.
type API struct {
	cfg   Config
	cat   *catalog.Catalog
	agent *agent
	node  string // this node's UUID-shaped id
	// routes are the endpoints again, asked by unsupported whether a
	// path exists for another method (405, not 404).
	routes *http.ServeMux
	// waiting counts the blocking queries parked now.
	waiting atomic.Int64

	renderMu sync.Mutex
	render   map[renderKey]*rendered
	// renderBytes is the bytes of the answers in render (about: an
	// answer rendered after a clear still counts).
	renderBytes int

	parked    parking
	closeOnce sync.Once
}

// Waiting is the number of blocking queries waiting now (a gauge for
// metrics and agent/self's Stats).
func (a *API) Waiting() int64 { return a.waiting.Load() }

// New checks cfg and returns the API.
func New(cfg Config) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consulapi: config: %w", err)
	}
	cfg = cfg.withDefaults()
	return &API{cfg: cfg, cat: cfg.Catalog, agent: newAgent(cfg.Local, cfg.Logger, cfg.MaxServices), node: nodeID(cfg.ServerID),
		render: map[renderKey]*rendered{}, parked: parking{byName: map[string]map[*parkedQuery]struct{}{}, stop: make(chan struct{})}}, nil
}

// Close answers the blocking queries at once and stops the TTL timers.
func (a *API) Close() {
	a.closeOnce.Do(func() {
		a.closeParked()
		a.agent.close()
	})
}

// Mount registers the endpoints with handle (node.Node.HandleHTTP).
func (a *API) Mount(handle func(pattern string, h http.Handler)) {
	a.routes = http.NewServeMux()
	h := func(p string, f http.HandlerFunc) { handle(p, f); a.routes.Handle(p, f) }
	h("GET /v1/agent/self", a.self)
	h("GET /v1/agent/services", a.agentServices)
	h("GET /v1/agent/service/{id...}", a.agentService)
	h("PUT /v1/agent/service/register", a.register)
	// python-consul 0.7.1 uses GET for these writes.
	for _, m := range []string{"PUT", "GET"} {
		h(m+" /v1/agent/service/deregister/{id...}", a.deregister)
		h(m+" /v1/agent/check/pass/{id...}", a.checkStatus(StatusPassing))
		h(m+" /v1/agent/check/warn/{id...}", a.checkStatus(StatusWarning))
		h(m+" /v1/agent/check/fail/{id...}", a.checkStatus(StatusCritical))
	}
	h("PUT /v1/agent/check/update/{id...}", a.checkUpdate)
	h("GET /v1/catalog/services", a.catalogServices)
	h("GET /v1/catalog/service/{name}", a.catalogService)
	h("GET /v1/health/service/{name}", a.healthService)
	h("GET /v1/status/leader", a.leader)
	h("GET /v1/status/peers", a.peers)
	h("/v1/", a.unsupported)
}

// Supported lists the endpoints, for the 404 of the others.
const Supported = "agent/self, agent/services, agent/service/:id, agent/service/register, agent/service/deregister/:id, " +
	"agent/check/pass|warn|fail|update/:id, catalog/services, catalog/service/:name, health/service/:name, status/leader, status/peers"

func (a *API) unsupported(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{"GET", "PUT"} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host}
		if _, p := a.routes.Handler(probe); p != "/v1/" && p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		fail(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed", r.Method))
		return
	}
	fail(w, http.StatusNotFound, fmt.Sprintf("hydra-server does not implement %s %s (Consul agent API subset: %s)", r.Method, r.URL.Path, Supported))
}

// fail writes a Consul-style error: plain text, the status code.
func fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, msg)
}

// failErr maps an error to Consul's status codes.
func failErr(w http.ResponseWriter, err error) {
	var re *registry.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large: at most %d bytes", mbe.Limit))
	case errors.Is(err, ErrNoDatacenter):
		fail(w, http.StatusInternalServerError, err.Error())
	case errors.Is(err, ErrDecode):
		fail(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrDecode.Error()+": "))
	case errors.Is(err, ErrUnknownService), errors.Is(err, ErrUnknownCheck):
		fail(w, http.StatusNotFound, capitalise(err.Error()))
	case errors.Is(err, ErrPermission):
		fail(w, http.StatusForbidden, err.Error())
	case errors.Is(err, ErrLimit):
		fail(w, http.StatusTooManyRequests, err.Error())
	case errors.As(err, &re) && (errors.Is(err, registry.ErrBadRequest)):
		fail(w, http.StatusBadRequest, "Invalid service: "+re.Message)
	case errors.As(err, &re):
		fail(w, http.StatusServiceUnavailable, re.Message)
	case errors.Is(err, registry.ErrClosed):
		fail(w, http.StatusServiceUnavailable, "the registry is stopping")
	default:
		fail(w, http.StatusInternalServerError, err.Error())
	}
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// reply writes v as JSON with Consul's headers; idx is never 0 (clients
// such as Prometheus ignore such answers).
func reply(w http.ResponseWriter, idx uint64, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	replyBytes(w, idx, append(b, '\n'))
}

func replyBytes(w http.ResponseWriter, idx uint64, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Consul-Index", strconv.FormatUint(max(idx, 1), 10))
	h.Set("X-Consul-Knownleader", "true")
	h.Set("X-Consul-Lastcontact", "0")
	h.Set("X-Consul-Effective-Consistency", "leader")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// renderKey names one answer: the same key is the same body, since idx
// covers everything a name's answer shows.
type renderKey struct {
	kind    byte // 'h' health, 'c' catalog
	name    string
	idx     uint64
	passing bool
	tags    string
}

type rendered struct {
	once sync.Once
	body []byte
}

// maxRendered and maxRenderedBytes bound the render cache (answers and
// their bytes); past either, the cache starts over.
const (
	maxRendered      = 512
	maxRenderedBytes = 16 << 20
)

// cached renders each answer once however many queries want it: the
// thousands of blocking queries a change wakes share one body.
func (a *API) cached(k renderKey, render func() any) []byte {
	a.renderMu.Lock()
	r := a.render[k]
	if r == nil {
		if len(a.render) >= maxRendered || a.renderBytes > maxRenderedBytes {
			clear(a.render)
			a.renderBytes = 0
		}
		r = &rendered{}
		a.render[k] = r
	}
	a.renderMu.Unlock()
	r.once.Do(func() {
		b, err := json.Marshal(render())
		if err != nil {
			b = []byte("null") // our own structs: cannot happen
		}
		r.body = append(b, '\n')
		a.renderMu.Lock()
		a.renderBytes += len(r.body)
		a.renderMu.Unlock()
	})
	return r.body
}

// write checks that the caller may write and returns its identity.
func (a *API) write(w http.ResponseWriter, r *http.Request) (string, bool) {
	who, ok := a.cfg.Identity(r)
	if !ok {
		fail(w, http.StatusForbidden, "Permission denied: writes from beyond loopback need a token (X-Consul-Token, from --http-token-file)")
		return "", false
	}
	return who, true
}

// synced waits (briefly) for the catalog's first sync, so that the first
// answers after a start are not empty.
func (a *API) synced(ctx context.Context) {
	if a.cat.Index() > 0 {
		return
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-a.cat.Changed(0):
	case <-t.C:
	case <-ctx.Done():
	}
}

// ready computes the index of what q covers (name's services, or
// everything for ""), and whether to answer now: not a blocking query, a
// change past the client's index, or an index from before a restart (ours
// went back: Consul's clients then start over). changed closes at the
// agent's next change (the snapshot's Changed is the catalog's).
func (a *API) ready(q Query, name string) (s *catalog.Snapshot, idx uint64, ready bool, changed <-chan struct{}) {
	return a.readyAt(a.cat.Snapshot(), q, name)
}

func (a *API) readyAt(s *catalog.Snapshot, q Query, name string) (*catalog.Snapshot, uint64, bool, <-chan struct{}) {
	gen, all, agentCh := a.agent.state(name)
	idx, global := s.Index()+all, s.Index()+all
	if name != "" {
		idx = s.NameIndex(name) + gen
	}
	return s, idx, q.Index == 0 || idx > q.Index || q.Index > global, agentCh
}

// blocking answers a read that may block: at once when ready, else when
// something it covers changes past q.Index, its wait (plus Consul's
// jitter, up to wait/16) ends, or the server stops. It parks the
// connection when it can (park.go), else waits in the handler.
func (a *API) blocking(w http.ResponseWriter, r *http.Request, name string, rd render) {
	q, err := ParseQuery(r.URL.Query(), a.cfg.Datacenter)
	if err != nil {
		failErr(w, err)
		return
	}
	ctx := r.Context()
	a.synced(ctx)
	s, idx, ready, agentCh := a.ready(q, name)
	if ready {
		replyBytes(w, idx, rd(q, s, idx))
		return
	}
	if a.canPark(w, r) && a.park(w, q, name, rd) {
		return
	}
	a.waiting.Add(1)
	defer a.waiting.Add(-1)
	d := q.Wait + rand.N(q.Wait/16+1)
	timer := time.NewTimer(d)
	defer timer.Stop()
	for !ready {
		select {
		case <-s.Changed(s.Index()):
		case <-agentCh:
		case <-timer.C:
			ready = true
		case <-ctx.Done(): // the client left, or the server stops
			ready = true
		case <-a.parked.stop:
			ready = true
		}
		var r2 bool
		s, idx, r2, agentCh = a.ready(q, name)
		ready = ready || r2
	}
	replyBytes(w, idx, rd(q, s, idx))
}

// views returns name's instances as this agent shows them: the registry's
// (with this agent's check states) and this agent's withdrawn ones,
// filtered by q's tags and passing.
func (a *API) views(s *catalog.Snapshot, name string, q Query) []view {
	es := s.Instances(name)
	out := make([]view, 0, len(es))
	for _, e := range es {
		v := entryView(e)
		if e.Origin == a.cfg.ServerID {
			if st, ok := a.agent.byInst(e.Instance); ok {
				v.check = st.check
			}
		}
		out = append(out, v)
	}
	for _, st := range a.agent.withdrawn(name) {
		v := entryView(registry.Entry{Service: st.svc, Instance: st.id, Origin: a.cfg.ServerID})
		v.check = st.check
		out = append(out, v)
	}
	return slices.DeleteFunc(out, func(v view) bool {
		return !hasTags(v.tags, q.Tags) || q.Passing && v.status() != StatusPassing
	})
}

func (v view) status() string {
	if v.check == nil {
		return StatusPassing
	}
	return v.check.status
}

func (a *API) nodeOf(v view, idx uint64) nodeJSON {
	n := nodeJSON{ID: nodeID(v.origin), Node: v.origin, Address: v.e.Host, Datacenter: a.cfg.Datacenter,
		TaggedAddresses: map[string]string{}, Meta: map[string]string{}, CreateIndex: 1, ModifyIndex: 1}
	if v.origin == a.cfg.ServerID {
		n.ID, n.Address = a.node, a.cfg.NodeAddr
		n.TaggedAddresses["lan"], n.TaggedAddresses["wan"] = a.cfg.NodeAddr, a.cfg.NodeAddr
	}
	return n
}

func (a *API) agentServiceOf(v view, idx uint64) agentService {
	return agentService{ID: v.id, Service: v.e.Name, Tags: v.tags, Meta: v.meta, Port: v.e.Port, Address: v.e.Host,
		Weights: defaultWeights, CreateIndex: idx, ModifyIndex: idx, Datacenter: a.cfg.Datacenter}
}

func (a *API) self(w http.ResponseWriter, r *http.Request) {
	if _, err := ParseQuery(r.URL.Query(), a.cfg.Datacenter); err != nil {
		failErr(w, err)
		return
	}
	host, port, _ := net.SplitHostPort(a.cfg.Leader)
	p, _ := strconv.Atoi(port)
	// Every top-level value is an object: Prometheus decodes agent/self
	// as map[string]map[string]any.
	reply(w, a.cat.Index(), map[string]any{
		"Config": map[string]any{
			"Datacenter": a.cfg.Datacenter, "PrimaryDatacenter": a.cfg.Datacenter, "NodeName": a.cfg.ServerID,
			"NodeID": a.node, "Server": true, "Revision": "hydra", "Version": ConsulVersion, "BuildDate": "",
			"Hydra": a.cfg.Version,
		},
		"DebugConfig": map[string]any{},
		"Coord":       map[string]any{"Vec": []float64{0, 0, 0, 0, 0, 0, 0, 0}, "Error": 1.5, "Adjustment": 0, "Height": 1e-5},
		"Member": map[string]any{"Name": a.cfg.ServerID, "Addr": host, "Port": p, "Status": 1,
			"Tags": map[string]string{"role": "consul", "dc": a.cfg.Datacenter, "build": ConsulVersion + ":hydra"}},
		"Stats": map[string]any{"hydra": map[string]any{"services": len(a.cat.Snapshot().Names()), "blocking_queries": a.Waiting()}},
		"Meta":  map[string]any{},
		"xDS":   map[string]any{},
	})
}

// local returns this agent's services: every registry entry this server
// originates (ZMTP registrations, tunnel proxies, HTTP registrations) and
// its withdrawn ones.
func (a *API) local(s *catalog.Snapshot) []view {
	var out []view
	for _, e := range s.All() {
		if e.Origin != a.cfg.ServerID {
			continue
		}
		v := entryView(e)
		if st, ok := a.agent.byInst(e.Instance); ok {
			v.check = st.check
		}
		out = append(out, v)
	}
	for _, st := range a.agent.withdrawn("") {
		v := entryView(registry.Entry{Service: st.svc, Instance: st.id, Origin: a.cfg.ServerID})
		v.check = st.check
		out = append(out, v)
	}
	return out
}

func (a *API) agentServices(w http.ResponseWriter, r *http.Request) {
	a.blocking(w, r, "", func(_ Query, s *catalog.Snapshot, idx uint64) []byte {
		return a.cached(renderKey{kind: 'a', idx: idx}, func() any {
			m := map[string]agentService{}
			for _, v := range a.local(s) {
				m[v.id] = a.agentServiceOf(v, idx)
			}
			return m
		})
	})
}

func (a *API) agentService(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q, err := ParseQuery(r.URL.Query(), a.cfg.Datacenter)
	if err != nil {
		failErr(w, err)
		return
	}
	a.synced(r.Context())
	s, idx, _, _ := a.ready(q, "")
	for _, v := range a.local(s) {
		if v.id == id {
			reply(w, idx, a.agentServiceOf(v, idx))
			return
		}
	}
	fail(w, http.StatusNotFound, fmt.Sprintf("unknown service ID: %s", id))
}

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	who, ok := a.write(w, r)
	if !ok {
		return
	}
	if _, err := ParseQuery(r.URL.Query(), a.cfg.Datacenter); err != nil {
		failErr(w, err)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		failErr(w, err)
		return
	}
	reg, err := ParseRegistration(body)
	if err != nil {
		failErr(w, err)
		return
	}
	if err := a.agent.register(reg, a.cfg.NodeAddr, who); err != nil {
		failErr(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *API) deregister(w http.ResponseWriter, r *http.Request) {
	who, ok := a.write(w, r)
	if !ok {
		return
	}
	if err := a.agent.deregister(r.PathValue("id"), who); err != nil {
		failErr(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *API) checkStatus(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, ok := a.write(w, r)
		if !ok {
			return
		}
		if err := a.agent.update(r.PathValue("id"), status, r.URL.Query().Get("note"), who); err != nil {
			failErr(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

func (a *API) checkUpdate(w http.ResponseWriter, r *http.Request) {
	who, ok := a.write(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		failErr(w, err)
		return
	}
	u, err := ParseCheckUpdate(body)
	if err != nil {
		failErr(w, err)
		return
	}
	if err := a.agent.update(r.PathValue("id"), u.Status, u.Output, who); err != nil {
		failErr(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *API) catalogServices(w http.ResponseWriter, r *http.Request) {
	a.blocking(w, r, "", func(_ Query, s *catalog.Snapshot, idx uint64) []byte {
		return a.cached(renderKey{kind: 's', idx: idx}, func() any { return a.serviceTags(s) })
	})
}

// serviceTags is catalog/services' answer: every name with its tags.
func (a *API) serviceTags(s *catalog.Snapshot) map[string][]string {
	m := make(map[string][]string, len(s.Names()))
	add := func(v view) {
		tags := m[v.e.Name]
		if tags == nil {
			tags = []string{}
		}
		for _, t := range v.tags {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		slices.Sort(tags)
		m[v.e.Name] = tags
	}
	for _, e := range s.All() {
		add(entryView(e))
	}
	for _, st := range a.agent.withdrawn("") {
		add(entryView(registry.Entry{Service: st.svc}))
	}
	return m
}

func (a *API) catalogService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	a.blocking(w, r, name, func(q Query, s *catalog.Snapshot, idx uint64) []byte {
		q.Passing = false // not a health query
		return a.cached(renderKey{'c', name, idx, false, strings.Join(q.Tags, "\x00")}, func() any {
			vs := a.views(s, name, q)
			out := make([]catalogService, 0, len(vs))
			for _, v := range vs {
				n := a.nodeOf(v, idx)
				out = append(out, catalogService{ID: n.ID, Node: n.Node, Address: n.Address, Datacenter: n.Datacenter,
					TaggedAddresses: n.TaggedAddresses, NodeMeta: n.Meta, ServiceID: v.id, ServiceName: v.e.Name,
					ServiceAddress: v.e.Host, ServiceTags: v.tags, ServiceMeta: v.meta, ServicePort: v.e.Port,
					ServiceWeights: defaultWeights, CreateIndex: idx, ModifyIndex: idx})
			}
			return out
		})
	})
}

func (a *API) healthService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	a.blocking(w, r, name, func(q Query, s *catalog.Snapshot, idx uint64) []byte {
		return a.cached(renderKey{'h', name, idx, q.Passing, strings.Join(q.Tags, "\x00")}, func() any {
			vs := a.views(s, name, q)
			out := make([]serviceEntry, 0, len(vs))
			for _, v := range vs {
				n := a.nodeOf(v, idx)
				checks := []healthCheck{{Node: n.Node, CheckID: "serfHealth", Name: "Serf Health Status", Status: StatusPassing,
					Output: "Agent alive and reachable", ServiceTags: []string{}, CreateIndex: 1, ModifyIndex: 1}}
				if c := v.check; c != nil {
					checks = append(checks, healthCheck{Node: n.Node, CheckID: c.id, Name: c.name, Status: c.status, Notes: c.notes,
						Output: c.output, ServiceID: v.id, ServiceName: v.e.Name, ServiceTags: v.tags, Type: "ttl",
						CreateIndex: idx, ModifyIndex: idx})
				}
				out = append(out, serviceEntry{Node: n, Service: a.agentServiceOf(v, idx), Checks: checks})
			}
			return out
		})
	})
}

func (a *API) leader(w http.ResponseWriter, r *http.Request) { reply(w, a.cat.Index(), a.cfg.Leader) }

func (a *API) peers(w http.ResponseWriter, r *http.Request) {
	reply(w, a.cat.Index(), []string{a.cfg.Leader})
}
