package consulapi

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"

	"github.com/hydra-net/hydra/registry"
)

// Check states, Consul's.
const (
	StatusPassing  = "passing"
	StatusWarning  = "warning"
	StatusCritical = "critical"
)

// How Consul's service fields live in a Hydra entry's metadata (README,
// "Consul API"): Tags are the comma-separated value of TagsKey; the
// Consul service ID, when it is not the instance id, is IDKey; Meta is
// every other key except those starting reservedPrefix (Consul reserves
// "consul-" too); a Proto other than tcp shows as Meta["proto"].
const (
	TagsKey        = "tags"
	IDKey          = "consul-id"
	ProtoKey       = "proto"
	reservedPrefix = "consul-"
)

// The JSON shapes below are Consul's (api.AgentService, api.Node,
// api.CatalogService, api.HealthCheck, api.ServiceEntry), with the fields
// clients read.

type weights struct {
	Passing int
	Warning int
}

var defaultWeights = weights{Passing: 1, Warning: 1}

type agentService struct {
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	TaggedAddresses   map[string]any `json:",omitempty"`
	Weights           weights
	EnableTagOverride bool
	CreateIndex       uint64 `json:",omitempty"`
	ModifyIndex       uint64 `json:",omitempty"`
	Datacenter        string `json:",omitempty"`
}

type nodeJSON struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

type catalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceID                string
	ServiceName              string
	ServiceAddress           string
	ServiceTags              []string
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceWeights           weights
	ServiceEnableTagOverride bool
	CreateIndex              uint64
	ModifyIndex              uint64
}

type healthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Definition  struct{}
	CreateIndex uint64
	ModifyIndex uint64
}

type serviceEntry struct {
	Node    nodeJSON
	Service agentService
	Checks  []healthCheck
}

// view is one instance as the Consul API shows it: a registry entry, or
// a service of this agent whose check is critical (withdrawn from the
// registry, still shown here as Consul shows it).
type view struct {
	e      registry.Entry
	id     string // Consul service ID
	tags   []string
	meta   map[string]string
	check  *checkState // nil: no check of this agent
	origin string
}

// entryView maps an entry to Consul's fields.
func entryView(e registry.Entry) view {
	v := view{e: e, id: e.Instance, origin: e.Origin, tags: []string{}, meta: map[string]string{}}
	for k, val := range e.Meta {
		switch {
		case k == TagsKey:
			v.tags = splitTags(val)
		case k == IDKey:
			if val != "" {
				v.id = val
			}
		case strings.HasPrefix(k, reservedPrefix):
		default:
			v.meta[k] = val
		}
	}
	if e.Proto != "" && e.Proto != registry.DefaultProto {
		v.meta[ProtoKey] = e.Proto
	}
	return v
}

func splitTags(s string) []string {
	tags := []string{}
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// serviceOf is the registry service a registration makes.
func serviceOf(r Registration, host string) registry.Service {
	meta := maps.Clone(r.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	proto := registry.DefaultProto
	if p, ok := meta[ProtoKey]; ok {
		proto = p
		delete(meta, ProtoKey)
	}
	if len(r.Tags) > 0 {
		meta[TagsKey] = strings.Join(r.Tags, ",")
	}
	meta[IDKey] = r.ID
	if r.Address != "" {
		host = r.Address
	}
	return registry.Service{Name: r.Name, Host: host, Port: r.Port, Proto: proto, Meta: meta}
}

func hasTags(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// nodeID is a UUID-shaped id derived from a server id (Consul's node IDs
// are UUIDs; clients print them, none parses them).
func nodeID(server string) string {
	h := sha256.Sum256([]byte("hydra-node:" + server))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
