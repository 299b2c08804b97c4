package main

import (
	"flag"

	"github.com/hydra-net/hydra/node"
)

// httpFlags are the HTTP listener's flags (serve.go defines them): the
// Consul agent API subset and whatever else node mounts there.
type httpFlags struct {
	addr        string
	tokenFile   string
	remoteReads bool
	maxConns    int
}

func (f *httpFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "http", node.DefaultHTTPAddr, "`HOST:PORT` of the HTTP listener: a Consul agent API subset (Consul's own address, so unmodified Consul clients find it); \"\" turns it off. If the default is taken the server warns and runs without HTTP; an address given here that fails is an error")
	fs.StringVar(&f.tokenFile, "http-token-file", "", "`file` of HTTP tokens (one a line, 16+ bytes; re-read on SIGHUP): beyond loopback, writes need one (X-Consul-Token header or ?token=), and each token is one client identity")
	fs.BoolVar(&f.remoteReads, "http-remote-reads", false, "let HTTP clients beyond loopback read without a token (writes still need one)")
	fs.IntVar(&f.maxConns, "http-max-conns-per-client", node.DefaultHTTPMaxConnsPerClient, "most HTTP connections one client address (IPv6 by /64, loopback included) holds open, blocking queries included; past it a connection is answered 429 Too Many Requests and closed (Consul's http_max_conns_per_client)")
}

// apply sets cfg.HTTP; fs tells whether --http was given (a default that
// is taken is only a warning).
func (f *httpFlags) apply(cfg *node.Config, fs *flag.FlagSet) {
	given := false
	fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == "http" })
	cfg.HTTP = node.HTTPConfig{Addr: f.addr, Optional: !given && f.addr == node.DefaultHTTPAddr,
		TokenFile: f.tokenFile, RemoteReads: f.remoteReads, MaxConnsPerClient: f.maxConns}
}
