package consulapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrDecode is the sentinel of every body or parameter Parse* refuses;
// the handlers answer it with 400 and the message.
var ErrDecode = errors.New("bad request")

// Registration is a PUT /v1/agent/service/register body, Consul's
// AgentServiceRegistration reduced to what Hydra honours. Keys decode
// case-insensitively, as Consul does (python-consul 0.7.1 sends "name",
// "check": {"ttl": ...}).
type Registration struct {
	ID, Name, Address string
	Port              int
	Tags              []string
	Meta              map[string]string
	Check             *Check // nil: none
}

// Check is a service's TTL check.
type Check struct {
	CheckID, Name, Notes string
	TTL                  time.Duration
	Status               string // initial status; "" is Consul's default, critical
	DeregisterAfter      time.Duration
}

// wireRegistration is the JSON we decode; fields we cannot honour are
// decoded too so that they are refused, not ignored.
type wireRegistration struct {
	ID, Name, Address, Kind, SocketPath string
	Port                                int
	Tags                                []string
	Meta                                map[string]string
	Check                               *wireCheck
	Checks                              []*wireCheck
	Connect, Proxy                      json.RawMessage
	Namespace, Partition                string
}

type wireCheck struct {
	CheckID, ID, Name, Notes, TTL, Status, DeregisterCriticalServiceAfter string
	Interval, HTTP, TCP, UDP, GRPC, H2PING, DockerContainerID             string
	AliasNode, AliasService, Script                                       string
	ScriptArgs, Args                                                      []string
}

// MaxTags bounds a registration's tags.
const MaxTags = 64

// ParseRegistration decodes and checks a registration body.
func ParseRegistration(b []byte) (Registration, error) {
	var w wireRegistration
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&w); err != nil {
		return Registration{}, fmt.Errorf("%w: Request decode failed: %v", ErrDecode, err)
	}
	if dec.More() {
		return Registration{}, fmt.Errorf("%w: Request decode failed: data after the JSON object", ErrDecode)
	}
	switch {
	case w.Name == "":
		return Registration{}, fmt.Errorf("%w: Missing service name", ErrDecode)
	case w.Kind != "" || len(w.Connect) > 0 && string(w.Connect) != "null" || len(w.Proxy) > 0 && string(w.Proxy) != "null":
		return Registration{}, fmt.Errorf("%w: Connect, proxies and service kinds are not supported by hydra-server", ErrDecode)
	case w.SocketPath != "":
		return Registration{}, fmt.Errorf("%w: SocketPath is not supported by hydra-server: give Address and Port", ErrDecode)
	case w.Namespace != "" && w.Namespace != "default" || w.Partition != "" && w.Partition != "default":
		return Registration{}, fmt.Errorf("%w: namespaces and partitions are not supported by hydra-server", ErrDecode)
	case w.Port < 0 || w.Port > 65535:
		return Registration{}, fmt.Errorf("%w: Invalid Port %d", ErrDecode, w.Port)
	case len(w.Tags) > MaxTags:
		return Registration{}, fmt.Errorf("%w: %d tags, at most %d", ErrDecode, len(w.Tags), MaxTags)
	}
	for _, t := range w.Tags {
		if t == "" || strings.ContainsAny(t, ",\x00") {
			return Registration{}, fmt.Errorf("%w: tag %q: tags are stored comma-separated in Hydra metadata: no commas, not empty", ErrDecode, t)
		}
	}
	for k := range w.Meta {
		if k == TagsKey || strings.HasPrefix(k, reservedPrefix) {
			return Registration{}, fmt.Errorf("%w: Meta key %q is reserved (tags and consul-* keys)", ErrDecode, k)
		}
	}
	r := Registration{ID: w.ID, Name: w.Name, Address: w.Address, Port: w.Port, Tags: w.Tags, Meta: w.Meta}
	if r.ID == "" {
		r.ID = r.Name
	}
	checks := w.Checks
	if w.Check != nil {
		checks = append([]*wireCheck{w.Check}, checks...)
	}
	var real []*wireCheck
	for _, c := range checks {
		if c != nil {
			real = append(real, c)
		}
	}
	if len(real) > 1 {
		return Registration{}, fmt.Errorf("%w: at most one check per service (a TTL check)", ErrDecode)
	}
	if len(real) == 1 {
		c, err := parseCheck(real[0], r.ID)
		if err != nil {
			return Registration{}, err
		}
		r.Check = &c
	}
	return r, nil
}

func parseCheck(w *wireCheck, serviceID string) (Check, error) {
	if w.HTTP != "" || w.TCP != "" || w.UDP != "" || w.GRPC != "" || w.H2PING != "" || w.DockerContainerID != "" ||
		w.AliasNode != "" || w.AliasService != "" || w.Script != "" || len(w.ScriptArgs) > 0 || len(w.Args) > 0 || w.Interval != "" {
		return Check{}, fmt.Errorf("%w: only TTL checks are supported by hydra-server (no HTTP, TCP, UDP, gRPC, H2PING, script, Docker or alias checks)", ErrDecode)
	}
	if w.TTL == "" {
		return Check{}, fmt.Errorf("%w: a check needs a TTL (the only kind hydra-server runs)", ErrDecode)
	}
	ttl, err := ParseDuration(w.TTL)
	if err != nil || ttl <= 0 {
		return Check{}, fmt.Errorf("%w: invalid check TTL %q", ErrDecode, w.TTL)
	}
	c := Check{CheckID: w.CheckID, Name: w.Name, Notes: w.Notes, TTL: ttl}
	if c.CheckID == "" {
		c.CheckID = w.ID
	}
	if c.CheckID == "" {
		c.CheckID = "service:" + serviceID
	}
	if c.Name == "" {
		c.Name = "Service '" + serviceID + "' check"
	}
	switch w.Status {
	case "", StatusPassing, StatusWarning, StatusCritical:
		c.Status = w.Status
	default:
		return Check{}, fmt.Errorf("%w: invalid check status %q", ErrDecode, w.Status)
	}
	if w.DeregisterCriticalServiceAfter != "" {
		d, err := ParseDuration(w.DeregisterCriticalServiceAfter)
		if err != nil || d < 0 {
			return Check{}, fmt.Errorf("%w: invalid DeregisterCriticalServiceAfter %q", ErrDecode, w.DeregisterCriticalServiceAfter)
		}
		c.DeregisterAfter = d
	}
	return c, nil
}

// CheckUpdate is a PUT /v1/agent/check/update/:id body.
type CheckUpdate struct {
	Status, Output string
}

// ParseCheckUpdate decodes a check update body.
func ParseCheckUpdate(b []byte) (CheckUpdate, error) {
	var u CheckUpdate
	if err := json.Unmarshal(b, &u); err != nil {
		return u, fmt.Errorf("%w: Request decode failed: %v", ErrDecode, err)
	}
	switch u.Status {
	case StatusPassing, StatusWarning, StatusCritical:
	default:
		return u, fmt.Errorf("%w: Invalid check status: %q", ErrDecode, u.Status)
	}
	return u, nil
}

// ParseDuration parses a Consul duration: Go's syntax ("10s",
// "120000ms"), or a bare number of seconds as Consul's config accepts.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty duration", ErrDecode)
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	return d, nil
}

// Blocking-query bounds, Consul's.
const (
	DefaultWait = 5 * time.Minute
	MaxWait     = 10 * time.Minute
)

// Query is what a GET's parameters ask for.
type Query struct {
	Index   uint64        // 0: answer at once
	Wait    time.Duration // with Index: at most this long (jitter not added)
	Passing bool
	Tags    []string // every one must be present
}

// unsupportedParams are answered with 400 rather than ignored: ignoring
// them would be a wrong answer.
var unsupportedParams = []string{"filter", "near", "node-meta", "peer", "sameness-group", "merge-central-config"}

// ParseQuery reads the parameters of a read: index, wait, passing, tag;
// dc must be datacenter or absent; stale, consistent, cached and token are
// accepted.
func ParseQuery(v url.Values, datacenter string) (Query, error) {
	var q Query
	for _, p := range unsupportedParams {
		if v.Has(p) {
			return q, fmt.Errorf("%w: the %q parameter is not supported by hydra-server", ErrDecode, p)
		}
	}
	if ns := v.Get("ns"); ns != "" && ns != "default" {
		return q, fmt.Errorf("%w: namespaces are not supported by hydra-server", ErrDecode)
	}
	if dc := v.Get("dc"); dc != "" && dc != datacenter {
		return q, fmt.Errorf("%w: %q", ErrNoDatacenter, dc)
	}
	if s := v.Get("index"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, fmt.Errorf("%w: Invalid index", ErrDecode)
		}
		q.Index = n
	}
	q.Wait = DefaultWait
	if s := v.Get("wait"); s != "" {
		d, err := ParseDuration(s)
		if err != nil || d < 0 {
			return q, fmt.Errorf("%w: Invalid wait time", ErrDecode)
		}
		q.Wait = min(d, MaxWait)
	}
	if v.Has("passing") {
		switch strings.ToLower(v.Get("passing")) {
		case "", "1", "true":
			q.Passing = true
		case "0", "false":
		default:
			return q, fmt.Errorf("%w: Invalid value for passing", ErrDecode)
		}
	}
	q.Tags = v["tag"]
	return q, nil
}

// ErrNoDatacenter is a dc other than ours: Consul's 500 "No path to
// datacenter".
//
//lint:ignore ST1005 Consul's own text, which its clients show
var ErrNoDatacenter = errors.New("No path to datacenter")
