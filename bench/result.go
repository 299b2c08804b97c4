package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Implementation names, as accepted by -impls and printed in "impl".
const (
	ImplHydra  = "hydra"  // github.com/hydra-net/hydra/zmtp
	ImplZMQ4   = "zmq4"   // github.com/go-zeromq/zmq4
	ImplLibzmq = "libzmq" // the system's libzmq, through bench/libzmq/zmqbench.c
)

// Pattern names, as printed in "pattern".
const (
	PushPull = "push-pull"
	ReqRep   = "req-rep"
)

// Roles of a peer process: PULL and REP bind, PUSH and REQ connect.
const (
	RolePush = "push"
	RolePull = "pull"
	RoleReq  = "req"
	RoleRep  = "rep"
)

// PeerResult is the JSON line that one peer process prints on stdout when it
// is done. The Go peers and the C peer print the same fields.
type PeerResult struct {
	Impl     string `json:"impl"`
	Role     string `json:"role"`
	Size     int    `json:"size"`
	Count    int64  `json:"count"`    // messages (push, pull) or round trips (req, rep) handled
	Expected int64  `json:"expected"` // the COUNT asked for
	// ElapsedSec is the time measured: first to last message received for
	// pull, the whole send loop for push, the round trips after the first
	// one for req and rep.
	ElapsedSec float64 `json:"elapsed_s"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	RTTMicros  float64 `json:"rtt_us"` // req and rep only
	// Complete is false when the peer gave up waiting (or failed) before
	// handling Expected messages; the figures then cover what it handled.
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
}

// ParsePeerResult finds the last JSON line in a peer's stdout and decodes it.
func ParsePeerResult(stdout []byte) (PeerResult, error) {
	var r PeerResult
	lines := bytes.Split(bytes.TrimSpace(stdout), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		line := bytes.TrimSpace(lines[i])
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return r, fmt.Errorf("bad result line %q: %w", line, err)
		}
		return r, nil
	}
	return r, errors.New("no result line on stdout")
}

// Result is the outcome of one case for one implementation. Its JSON form
// is exactly the line the harness prints:
//
//	{"impl":"hydra","pattern":"push-pull","size":16,"msgs_per_sec":X,"mb_per_sec":Y,"rtt_us":0}
//
// For req-rep, MsgsPerSec counts round trips per second.
type Result struct {
	Impl       string  `json:"impl"`
	Pattern    string  `json:"pattern"`
	Size       int     `json:"size"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	RTTMicros  float64 `json:"rtt_us"`

	// Count is how many messages or round trips the figures cover, out of
	// Expected; Complete is false when some never arrived.
	Count    int64 `json:"-"`
	Expected int64 `json:"-"`
	Complete bool  `json:"-"`
	// Warnings are problems that did not spoil the figures, such as a
	// sender that hung while closing after its receiver was done.
	Warnings []string `json:"-"`
	// Err is set when the case produced no usable figures; such a case has
	// no JSON line.
	Err error `json:"-"`
}

// Case is one benchmark case, run for each implementation.
type Case struct {
	Pattern string
	Size    int
}

func (c Case) String() string { return fmt.Sprintf("%s %d B", c.Pattern, c.Size) }
