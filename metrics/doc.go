// Package metrics writes the Prometheus text exposition format (version
// 0.0.4, what every Prometheus scrapes) by hand: no client library, no
// registry of collectors, nothing kept between scrapes. Whoever serves
// /metrics reads its counters where they live (atomic counters of the
// registry, the tunnels, zmtp sockets) and writes them with a Writer on
// each scrape; Handler turns such a function into an http.Handler.
//
// Writer is a codec without I/O: it appends to a byte slice. Label values
// and help texts are escaped (a label value may be a peer's address or id,
// which the peer chose); metric and label names are the caller's own
// constants and are checked, a bad one reported by Err rather than written.
package metrics
