// Command clockgaps says whether this machine pauses its CPUs: as many
// threads as CPUs (not pinned to one each) read the clock in a tight loop
// and count the gaps between two reads longer than -min. On a quiet machine
// there are none; on a shared virtual machine the host's scheduling (or
// another busy process here) shows up as gaps, and every benchmark run at
// the same time pays for it (a tail latency of a few milliseconds, a
// throughput that moves from run to run).
//
//	go run ./bench/clockgaps -duration 4s
package main
