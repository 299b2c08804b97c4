package node

import "net/http"

// What the external tests (package node_test) may reach beyond the API.

// ServeHealthForTest is GET /healthz's handler, for a node that does not
// run (its HTTP listener does not serve).
func (n *Node) ServeHealthForTest(w http.ResponseWriter, r *http.Request) { n.serveHealth(w, r) }

// HTTPConnsForTest are the HTTP connections held now and refused so far
// (HTTPConfig.MaxConnsPerClient).
func (n *Node) HTTPConnsForTest() (held int, refused int64) {
	held, _ = n.http.limit.lim.Held()
	return held, n.http.limit.Refused()
}
