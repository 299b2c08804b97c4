// Package catalog is a read model of a registry: every visible entry
// (local, joined and tunnelled), grouped by name, kept current from
// registry.Local.Watch, for the parts that answer reads at high rates (the
// Consul HTTP API, DNS, the status page).
//
// Run follows the watch; readers never wait for it. Each change publishes
// a new immutable Snapshot (copy-on-write: the names that did not change
// share their slices with the previous one), so a read is one atomic load
// and no lock. Index grows with every change; Changed gives a channel that
// closes when it passes a value, which is what blocking queries wait on.
package catalog
