package node

import "net/http"

// What the external tests (package node_test) may reach beyond the API.

// ServeHealthForTest is GET /healthz's handler, for a node that does not
// run (its HTTP listener does not serve).
func (n *Node) ServeHealthForTest(w http.ResponseWriter, r *http.Request) { n.serveHealth(w, r) }
