// Command run is the ZMTP benchmark harness: it compares hydra's zmtp
// sockets with go-zeromq/zmq4 and libzmq side by side, every case as two
// processes over tcp://127.0.0.1.
//
// It prints one JSON line per case and implementation,
//
//	{"impl":"hydra","pattern":"push-pull","size":16,"msgs_per_sec":X,"mb_per_sec":Y,"rtt_us":0}
//
// then (unless -json-only) a table with the ratios hydra/libzmq and
// hydra/zmq4. Progress and warnings go to stderr. It exits 1 when a case
// failed. Run it from inside the module:
//
//	go run ./bench/run
//	go run ./bench/run -quick
//	go run ./bench/run -impls hydra,libzmq -sizes 16,4096 -duration 3s
//
// See bench/README.md.
package main
