// Package bench is the ZMTP benchmark harness: it measures hydra's zmtp
// sockets side by side with go-zeromq/zmq4 and with libzmq in one run, so
// that figures, which drift from run to run, are compared as ratios.
//
// Every case runs as two processes over tcp://127.0.0.1 on a free port:
//
//   - push-pull: PULL binds, PUSH connects and sends N messages of one size;
//     the receiver times the first received message to the last and reports
//     msgs/s and MB/s (10^6 bytes).
//   - req-rep: REP binds and echoes, REQ does N round trips and reports the
//     mean round trip in µs (and round trips per second).
//
// Each process prints one JSON line (a [PeerResult]). The Go peers
// (hydra, zmq4) are the program in bench/peer, built once per run with
// `go build`; the libzmq peer is the C program in bench/libzmq, built per
// run with gcc against the system's libzmq. It is a baseline only: nothing
// in this module links libzmq or uses cgo.
//
// [Run] drives the cases and writes one JSON line per case ([Result]);
// [WriteTable] prints them for people, with hydra/libzmq and hydra/zmq4
// ratios. Nothing in the product imports this package; what
// `hydra-server bench` measures on its own is internal/selfbench. The
// command in bench/run is the usual front end:
//
//	go run ./bench/run          # full run, ~1-3 s per case and implementation
//	go run ./bench/run -quick   # small counts, for CI
package bench
