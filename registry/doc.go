// Package registry is Hydra's service registry: the server that
// hydra-server runs, and the Go client.
//
// A service registers an entry {name, host, port, proto, metadata, TTL}
// with the server on its own machine and keeps it alive with heartbeats; a
// client looks a name up and gets every live instance, then connects to
// one directly. The server speaks ZMTP on a ROUTER socket (package zmtp),
// with JSON bodies, so that any ZeroMQ library is a client; PROTOCOL.md at
// the repository's root specifies the protocol.
//
// # Server
//
// NewServer takes a Config (every field documents its default; the zero
// Config is usable), Bind listens, Serve runs until its context ends or
// Close. One goroutine, Serve's, receives every request, owns all state
// (entries by instance and by name, owners by token, an expiry heap,
// watches by name and by peer) and sends every reply and event, without
// ever blocking on a peer: replies and events that a gone or full peer
// cannot take are dropped and counted. Bad requests get an ERR reply that
// says what is wrong; sizes and counts are bounded by Config.
//
// Entries are soft state: each lives for its TTL after the last REGISTER,
// UPDATE or HEARTBEAT of its owner (the holder of the token it was
// registered with), and a restarted server gets them back because clients
// register again. Each entry carries the id of the server it was registered
// with (Origin) and a Version that grows with every change, so that servers
// sharing entries (join, tunnels) can tell newer copies from older ones.
//
// # Who may do what
//
// Every verb needs a Role of the connection's Peer (its CURVE key, its
// address): SYNC RoleServer, JOIN and LEAVE RoleAdmin, PING and INFO any,
// the rest RoleClient. Config.Authorize decides (nil: DefaultAuthorize,
// clients anyone, servers nobody, admins loopback and ipc peers); a refused
// request gets forbidden, a refused SYNC also loses its connection, and
// Recheck closes the connections of peers refused every role (after key
// lists changed). Instance ids are derived from the token, so that after a
// restart only their owner can take them again; the per-client quota
// counts per key or address, since tokens are free.
//
// # Sharing entries with other servers
//
// The registry knows nothing of how servers share entries: a Replicator
// (package join) plugs in through Config.Replicator. The loop calls it,
// on the loop and never expecting it to block, with every change of the
// server's own entries, with SYNC messages (link traffic, not requests),
// the JOIN verb, a periodic tick and INFO's "join" object; it acts on the
// registry through a Host (set and remove other origins' copies, which the
// store shows one per instance, enumerate an origin's entries, send on the
// ROUTER). Goroutines of its own (links it dialled) hand work to the loop
// with Host.Post, the loop's one inbox, which Local uses too.
//
// # In-process entries
//
// Server.Local is the API for entries the server's own process owns
// (tunnel proxies): Register, Update, Deregister and Watch run on the loop
// like requests, return the same *Error values, need no heartbeats, and
// end with the server.
//
// # Client
//
// NewClient connects one DEALER socket to a server and pipelines requests
// on it. Register keeps the entry alive with heartbeats and registers it
// again (same instance id, or a new one if the server refuses that) when
// the server lost it; Watch delivers events
// on a channel, re-establishing the watch after a reconnect or a restart
// and starting each stream with a sync event holding the current entries;
// Pick and Dial choose among a name's instances (RoundRobin or Random) and
// Dial fails over across them.
//
// Neither server nor client logs unless given a *slog.Logger.
package registry
