package main

import (
	"errors"
	"flag"
	"strings"
	"time"

	"github.com/hydra-net/hydra/dnsserver"
	"github.com/hydra-net/hydra/node"
)

// flagOf names the flag behind each node.Config field that flags set, by
// the field's path in node.Config: node's Validate names the part
// ("Registry") and the part's error names its own fields ("MinTTL").
var flagOf = map[string]string{
	"Endpoint":                     "--host/--port/--proto",
	"Registry.ServerID":            "--server-id",
	"Registry.MaxEntries":          "--max-entries",
	"Registry.MaxEntriesPerClient": "--max-entries-per-client",
	"Registry.MaxMetadataBytes":    "--max-metadata-bytes",
	"Registry.MaxRequestBytes":     "--max-request-bytes",
	"Registry.DefaultTTL":          "--default-ttl",
	"Registry.MinTTL":              "--min-ttl",
	"Registry.MaxTTL":              "--max-ttl",
	"Registry.MaxWatches":          "--max-watches",
	"Registry.MaxWatchesPerPeer":   "--max-watches-per-peer",
	"Registry.MaxListPage":         "--max-list-page",
	"Registry.MaxListBytes":        "--max-list-bytes",
	"Registry.WatchKeepalive":      "--watch-keepalive",
	"Registry.Static":              "--service",
	"Join.Peers":                   "--join",
	"Join.MaxPeers":                "the limit of joined servers",
	"Join.Interval":                "--join-interval",
	"Join.Timeout":                 "--join-timeout",
	"Join.Grace":                   "--join-grace",
	"JoinKeys":                     "--join-key",
	"Keys":                         "--key-file",
	"Access.Clients":               "--allow-clients",
	"Access.Servers":               "--allow-servers",
	"Access.Tunnels":               "--allow-tunnels",
	"Access.Admins":                "--allow-admins",
	"Access.ServerAddrs":           "--join-allow",
	"Curve":                        "--curve",
	"Tunnel.Remotes":               "--tunnel",
	"Tunnel.ProxyHost":             "--tunnel-bind",
	"Tunnel.Export":                "--tunnel-export",
	"Tunnel.Import":                "--tunnel-import",
	"Tunnel.PortMin":               "--tunnel-ports",
	"Tunnel.PortMax":               "--tunnel-ports",
	"Tunnel.Mux.StreamWindow":      "--tunnel-window",
	"Tunnel.Mux.MaxStreams":        "--tunnel-max-streams",
	"Tunnel.Mux.AcceptBacklog":     "--tunnel-backlog",
	"Tunnel.Mux.KeepAliveInterval": "--tunnel-keepalive",
	"Tunnel.Mux.LivenessTimeout":   "--tunnel-keepalive",
	"DNS.Addr":                     "--dns",
	"DNS.Domain":                   "--dns-domain",
	"DNS.TTL":                      "--dns-ttl",
	"HTTP.Addr":                    "--http",
	"HTTP.TokenFile":               "--http-token-file",
	"HTTP.RemoteReads":             "--http-remote-reads",
	"HTTP.MaxConnsPerClient":       "--http-max-conns-per-client",
	"Limits.HandshakesPerSource":   "--max-handshakes-per-source",
	"Limits.Handshakes":            "--max-handshakes",
	"Limits.ConnsPerSource":        "--max-conns-per-source",
	"Limits.Conns":                 "--max-conns",
	"Limits.PendingBytes":          "--max-pending-bytes",
	"Limits.PendingTotal":          "--max-pending-total",
	"Limits.WriteTimeout":          "--write-timeout",
}

// dnsFlags are --dns, --dns-domain and --dns-ttl (node.DNSConfig).
type dnsFlags struct {
	addr, domain string
	ttl          time.Duration
}

func (f *dnsFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "dns", dnsserver.DefaultAddr, "answer DNS on `HOST:PORT` (UDP and TCP): NAME.service.DOMAIN gives A/AAAA and SRV of every live instance (README: point systemd-resolved or dnsmasq at it); off (or '') turns it off. Left at its default, a port already taken is a warning and the server runs without DNS; given, it is an error")
	fs.StringVar(&f.domain, "dns-domain", dnsserver.DefaultDomain, "the `domain` DNS answers for (NAME.service.DOMAIN); other names are REFUSED")
	fs.DurationVar(&f.ttl, "dns-ttl", dnsserver.DefaultTTL, "TTL of DNS answers, whole seconds: how long resolvers may cache them (0s: not at all, a deregistered instance leaves the next answer)")
}

// apply sets cfg.DNS; fs tells whether --dns was given (flag, HYDRA_DNS or
// the config file) rather than left at its default.
func (f *dnsFlags) apply(cfg *node.Config, fs *flag.FlagSet) {
	if f.addr == "" || f.addr == "off" { // "off": what a config file or HYDRA_DNS can say
		return
	}
	given := false
	fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == "dns" })
	cfg.DNS = node.DNSConfig{Config: dnsserver.Config{Addr: f.addr, Domain: f.domain, TTL: f.ttl}, Optional: !given}
}

// flagError says a node.Config problem in the user's terms: the Go field
// names in it become the flags that set them ("--min-ttl 10s is above
// --max-ttl 1s", not "registry: config: MinTTL 10s is above MaxTTL 1s").
func flagError(err error) string {
	var ce *node.ConfigError
	if !errors.As(err, &ce) {
		return err.Error()
	}
	section, msg := ce.Field, stripPrefixes(ce.Err.Error())
	var b strings.Builder
	for len(msg) > 0 {
		n := identLen(msg)
		if n == 0 {
			b.WriteByte(msg[0])
			msg = msg[1:]
			continue
		}
		id := msg[:n]
		msg = msg[n:]
		flag := id
		for _, path := range []string{section + "." + id, section + ".Mux." + id, id} {
			if f, ok := flagOf[path]; ok {
				flag = f
				break
			}
		}
		b.WriteString(flag)
	}
	out := b.String()
	if f, ok := flagOf[section]; ok && !strings.HasPrefix(out, f) {
		return f + ": " + out
	}
	return out
}

// stripPrefixes drops the "pkg: " and "config: " prefixes a part's error
// starts with ("registry: config: ", "tunnel: config: ").
func stripPrefixes(msg string) string {
	for {
		word, rest, ok := strings.Cut(msg, ": ")
		if !ok || word == "" || strings.ContainsAny(word, " .\"") || strings.ToLower(word) != word {
			return msg
		}
		msg = rest
	}
}

// identLen is the length of the Go identifier path (MinTTL, Mux.StreamWindow)
// that starts msg with an upper-case letter, or 0.
func identLen(msg string) int {
	n := 0
	for n < len(msg) {
		if msg[n] < 'A' || msg[n] > 'Z' {
			break
		}
		n++
		for n < len(msg) && (msg[n] >= 'a' && msg[n] <= 'z' || msg[n] >= 'A' && msg[n] <= 'Z' || msg[n] >= '0' && msg[n] <= '9') {
			n++
		}
		if n+1 < len(msg) && msg[n] == '.' && msg[n+1] >= 'A' && msg[n+1] <= 'Z' {
			n++
			continue
		}
		break
	}
	return n
}
