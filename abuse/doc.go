// Package abuse holds the hostile-load suite of issue 13: tests that run the
// real hydra-server binary as a separate process, attack it on loopback
// (clients that never read, slot floods from a few source addresses,
// stalled and trickling handshakes, thousands of idle sockets, duplicate
// snapshot requests, request floods) and check that the server's memory
// stays within its budget while a well-behaved client keeps being served.
//
// Each scenario of TestAbuse prints one line of figures (peak RSS, the
// well-behaved client's served requests per second and its p50/p99/max
// latency) next to a baseline without attack; TestSoak runs a mixed
// population of clients for HYDRA_SOAK (default 20s) and checks that no
// registration is lost and that the RSS stays flat. The package has no
// non-test code: it is imported by nothing.
//
// Attackers bind source addresses 127.0.0.2 to 127.0.0.9 (all of 127/8 is
// loopback on Linux) so that per-source caps can tell them apart from the
// well-behaved client on 127.0.0.1. The suite needs Linux (/proc) and skips
// elsewhere.
package abuse
