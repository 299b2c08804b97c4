package statuspage

import (
	"context"
)

// Status is what the page shows, as JSON (GET /v1/hydra/status and each
// event of /v1/hydra/events).
type Status struct {
	Server   string  `json:"server"`            // this server's id
	Version  string  `json:"version,omitempty"` // the software's
	Endpoint string  `json:"endpoint"`          // the ZMTP endpoint
	Security string  `json:"security"`          // the port's mechanism: NULL or CURVE
	Uptime   float64 `json:"uptime"`            // seconds
	Index    uint64  `json:"index"`             // the catalog's index: grows with every change

	Services []Service    `json:"services"`
	Joined   []JoinLink   `json:"joined"`
	Tunnels  []TunnelLink `json:"tunnels"`
	Counters []Counter    `json:"counters"`
	// Error says why part of the status is missing (the registry's loop
	// did not answer in time: joined servers and counters are then
	// absent).
	Error string `json:"error,omitempty"`
}

// Service is one name and its instances.
type Service struct {
	Name      string     `json:"name"`
	Instances []Instance `json:"instances"`
}

// Instance is one entry.
type Instance struct {
	Instance string            `json:"instance"`
	Address  string            `json:"address"` // proto://host:port
	Origin   string            `json:"origin"`  // the server it was registered with
	Kind     string            `json:"kind"`    // local, joined or tunnelled
	Meta     map[string]string `json:"meta,omitempty"`
}

// JoinLink is one link to a joined server.
type JoinLink struct {
	Peer  string  `json:"peer,omitempty"` // its server id, once known
	Addr  string  `json:"addr,omitempty"` // HOST:PORT of links this server dialled
	Dir   string  `json:"dir"`            // out or in
	State string  `json:"state"`
	Up    bool    `json:"up"`
	Lag   float64 `json:"lag"` // seconds since its beat was heard
	Error string  `json:"error,omitempty"`
}

// TunnelLink is one tunnel peer.
type TunnelLink struct {
	Name     string `json:"name"`
	Server   string `json:"server,omitempty"`
	State    string `json:"state"`
	Proxies  int    `json:"proxies"`
	Streams  int    `json:"streams"`
	BytesIn  int64  `json:"bytes_in"`
	BytesOut int64  `json:"bytes_out"`
	Error    string `json:"error,omitempty"`
}

// Counter is one of the main counters, by a human name.
type Counter struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Source is where the page's data comes from.
type Source interface {
	// Status is the server's state now; ctx bounds the wait for the
	// registry's loop.
	Status(ctx context.Context) Status
	// Changed is closed once the catalog's index passes after
	// (catalog.Catalog.Changed).
	Changed(after uint64) <-chan struct{}
}
