// Package statuspage is the server's status page: one HTML page with its
// script and style inside (no external assets: it works on a machine
// without internet), a JSON snapshot of the server (Status) and a stream of
// them as server-sent events, so the page updates live: at once when the
// catalog changes, and every few seconds for the counters.
//
// The page puts every value into the DOM as text (textContent, never
// innerHTML): service names and metadata are chosen by whoever registers,
// and are shown, never interpreted. A Content-Security-Policy that allows
// only the page's own script (by its hash) backs that up.
//
// The package knows nothing of the registry: package node fills Status
// from it (node/observe.go) through a Source.
package statuspage
