// Package join is server-to-server replication for Hydra's registry: the
// servers that join share their entries (PROTOCOL.md, "Join (server
// sync)").
//
// Every server is the origin of the entries registered with it and numbers
// the changes of its entries with a counter of its own, seq. A link between
// two servers is one ZMTP connection, a DEALER of the server that joined to
// the ROUTER of the other, carrying SYNC messages both ways. It starts with
// a hello from each side (what each holds: a digest of origin → seq), then
// each sends the snapshots of the origins the other lacks or holds older,
// and from then on only changes, each stamped (origin, seq, prev). A server
// applies a change only on top of prev and forwards what it applied to its
// other links: a change crosses each link at most once in each direction,
// never loops, and a gap (a message dropped) makes it ask for a snapshot.
//
// Liveness is per origin too: each server's beat, a counter it raises every
// interval, travels in the digest each link carries every interval. An
// origin whose beat has not risen for the grace period is gone: its entries
// expire on every server that stopped hearing it, whatever the path.
//
// With a Signer, each server signs what its origin asserts (changes,
// snapshot parts, beats, its leave) and relays others' records as their
// origin made them; an origin id is its signing key (OriginID), and a
// record is taken only with a valid signature of a key TrustOrigin
// accepts (PROTOCOL.md, "Signed records"). Counters implausibly far ahead
// are refused, so none can wedge an origin. On Depart (SIGTERM) a server
// sends its leave: its entries go at once everywhere.
//
// A *Join is a registry.Replicator: set it as registry.Config.Replicator.
// Its state is owned by the server's loop, like the registry's; the
// goroutines of links this server dialled only read and write their socket
// and post what they received to the loop. The entries themselves live in
// the registry (registry.Host sets and removes other origins' copies); join
// holds what replication needs: per origin its seq, beat and when it was
// heard, and per link what the peer holds.
//
// Files: config.go (Config, ParseAddr), msg.go (the SYNC message codec),
// sign.go (what signatures cover, origin ids, checks),
// join.go (the Replicator, origins, ticks, stats and INFO), link.go (the
// link protocol, its states and its two transports), dial.go (the links
// this server dials).
package join
