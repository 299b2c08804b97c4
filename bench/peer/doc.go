// Command peer is one side of a ZMTP benchmark case for the Go
// implementations, hydra (github.com/hydra-net/hydra/zmtp) and zmq4
// (github.com/go-zeromq/zmq4). The harness (bench/run) starts two of them
// per case; its C twin for libzmq is bench/libzmq/zmqbench.c, with the same
// command line and output:
//
//	peer [-impl hydra|zmq4] [-hwm N] [-wait D] [-idle D] push|pull|req|rep ENDPOINT SIZE COUNT
//
// pull and rep bind ENDPOINT; push and req connect to it.
//
//   - pull receives COUNT messages of SIZE bytes and reports msgs/s and MB/s
//     (10^6 bytes) from the first received message to the last.
//   - push sends COUNT messages of SIZE bytes, reports its own send rate,
//     then closes, which flushes what is still queued.
//   - req does COUNT round trips of SIZE bytes; the first one warms the
//     connection up, the remaining COUNT-1 are timed: mean round trip in µs.
//   - rep echoes COUNT requests.
//
// The result is one JSON line on stdout (bench.PeerResult). A peer that
// waits longer than -wait for its first message, or -idle for any later
// one, reports what it got with "complete":false and exits, so that a lost
// message or a stuck peer never hangs the harness.
package main
