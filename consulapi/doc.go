// Package consulapi serves a subset of Consul's agent HTTP API from a
// node's catalog, so that clients without ZeroMQ (Prometheus's consul_sd,
// python-consul, the Go consul/api client, consul-template) find Hydra's
// services, and register their own.
//
// Reads (agent/services, catalog/services, catalog/service/:name,
// health/service/:name) answer from catalog snapshots, as blocking queries
// when asked (?index=&wait=): a query that must wait is parked off its
// handler (park.go) and answered by one dispatcher when what it covers
// changes. Writes (agent/service/register, deregister, check updates) keep
// the services registered over HTTP in agent.go: each is a registry.Local
// entry plus an optional TTL check; a critical check takes the entry out
// of the registry while this API still shows it, critical, as Consul does.
//
// The mapping between Hydra entries and Consul's fields, and what is not
// supported, are in README.md ("Consul HTTP API"); the codecs of request
// bodies and parameters are parse.go's Parse* functions, without I/O.
package consulapi
