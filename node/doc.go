// Package node builds one running Hydra server from one Config: the shared
// port (ZMTP clients and tunnels told apart by their first byte), the
// registry server, join replication, tunnels, and the keys each of them
// uses, and who may do what (Access: one key list per role, turned into
// the registry's Authorize, the CURVE port's and the tunnels' authorizers;
// Reload re-reads the lists and drops what removed keys had established).
// It is the one place features plug in; cmd/hydra-server fills a
// Config from flags, and the benches and tests that need a whole server
// start one here instead of wiring the parts by hand.
//
// The order things start and stop is node's job: the port is bound and the
// registry serves before tunnels start (tunnels register their proxies with
// the registry in-process, through registry.Server.Local), and tunnels stop
// first, so their proxies are withdrawn while the registry still tells its
// watchers and joined servers.
package node
