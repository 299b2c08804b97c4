// Package dnsserver answers DNS for the services a registry holds, so that
// every program on a machine finds them without a ZeroMQ library:
// NAME.service.DOMAIN. gives A/AAAA with every live instance (shuffled),
// NAME.service.DOMAIN. and _NAME._tcp.service.DOMAIN. (or _udp) give SRV
// whose targets resolve to each instance's own address (HEX.addr.DOMAIN.,
// in the additional section), unknown names NXDOMAIN with the SOA,
// names outside DOMAIN REFUSED. An instance whose host is a name rather
// than an IP address is left out of A/AAAA (a CNAME cannot stand beside
// the other instances' records) and is an SRV record targeting that name.
//
// Respond is the I/O-free core (a request's bytes in, the reply's bytes
// out); Server runs it on one UDP and one TCP socket. It reads a Catalog,
// never the registry's loop: the catalog keeps its own copy of the entries.
package dnsserver
