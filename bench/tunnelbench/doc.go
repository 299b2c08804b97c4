// Command tunnelbench measures one bulk TCP stream through a Hydra tunnel
// (two hydra-server processes on loopback) next to raw TCP and OpenSSH
// `ssh -L` (chacha20-poly1305 and aes128-gcm; sshd started here on
// loopback with a throwaway key and config in a temp dir), in the same
// run, and prints MB/s and ratios. With -rtt it repeats the comparison
// over a delaying TCP relay (internal/testutil.Relay, since this kernel has
// no netem), where the stream window decides.
//
//	go build -o /tmp/hydra-server ./cmd/hydra-server
//	go run ./bench/tunnelbench -hydra /tmp/hydra-server -rtt 100ms
//
// bench/tunnel.sh does both.
package main
