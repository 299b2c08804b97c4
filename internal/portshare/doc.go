// Package portshare splits one listening port between ZMTP peers and
// tunnels by the first byte each connection sends: a ZMTP greeting starts
// with 0xFF, a tunnel's preamble with 'H' (noise.PreambleMagic). The
// first byte is awaited off the accept goroutine and under a deadline,
// then replayed to whichever half takes the connection. Connections still
// awaiting it are capped per source address and in total
// (internal/admission, with eviction of the heaviest source's oldest), so
// a flood of silent connections from a few addresses cannot shut others
// out.
package portshare
