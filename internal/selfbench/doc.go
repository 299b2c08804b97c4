// Package selfbench measures Hydra itself, from any machine the
// hydra-server binary runs on: it is what `hydra-server bench` runs, and
// the registry load test. Unlike the harness in package bench, which
// compares hydra with libzmq, zmq4 and ssh in separate processes and needs
// outside programs, everything here is pure Go and needs nothing but the
// binary (and, for a bench across hosts, the same binary on the other
// host).
//
//   - ZMTP: push-pull, req-rep and pub-sub between zmtp sockets, through a
//     Responder (`hydra-server bench serve`) that receives and measures, or
//     echoes. Without a target, a Responder runs in this process on
//     127.0.0.1. The client and the responder speak a small control
//     protocol (JSON over a REQ/REP pair) to open data sockets, align their
//     clocks for one-way latency, and collect what arrived.
//   - Registry: lookups or registers per second against a hydra-server, or
//     a registry server in this process, from pipelining clients speaking
//     the raw protocol on DEALER sockets (pipeline.go).
//   - Tunnel: TCP streams through a Hydra tunnel between two servers in
//     this process (Noise, yamux, proxy listeners: the whole data path),
//     and the round trip of a small echo through it.
//   - LoadTest: the registry's load test (loadtest.go): many services
//     registered, many clients looking up while others register and
//     expire, every reply checked. cmd/hydra-server's TestLoad runs it
//     against a server process.
//
// Every bench returns a Result: throughput (msgs/s, MB/s) and a latency
// distribution (p50, p90, p99, max) from a log-linear Histogram, the one
// percentile calculation of the benches and the load test. A Report
// collects Results for WriteTable (people) or encoding/json (machines).
//
// The load generator and the benches are one package rather than
// selfbench plus selfbench/loadgen: the registry bench is the load
// generator's pipelined mode, and both record into the same Histogram,
// which a split would have to move to a third package.
package selfbench
