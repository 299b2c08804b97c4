package main

import (
	"errors"
	"regexp"

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
	"Registry.WatchKeepalive":      "--watch-keepalive",
	"Registry.Static":              "--service",
	"Join.Peers":                   "--join",
	"Join.MaxPeers":                "the limit of joined servers",
	"Join.Interval":                "--join-interval",
	"Join.Timeout":                 "--join-timeout",
	"Join.Grace":                   "--join-grace",
	"JoinKeys":                     "--join-key",
	"Keys":                         "--key-file",
	"Allow":                        "--allow-file",
	"Curve":                        "--curve",
	"Tunnel.Remotes":               "--tunnel",
	"Tunnel.PortMin":               "--tunnel-ports",
	"Tunnel.PortMax":               "--tunnel-ports",
	"Tunnel.Mux.StreamWindow":      "--tunnel-window",
	"Tunnel.Mux.MaxStreams":        "--tunnel-max-streams",
	"Tunnel.Mux.AcceptBacklog":     "--tunnel-backlog",
	"Tunnel.Mux.KeepAliveInterval": "--tunnel-keepalive",
	"Tunnel.Mux.LivenessTimeout":   "--tunnel-keepalive",
}

var (
	goIdent   = regexp.MustCompile(`\b[A-Z][A-Za-z]*(\.[A-Z][A-Za-z]*)*\b`)
	pkgPrefix = regexp.MustCompile(`^(?:[a-z]+: )+(?:(?:client )?config: )?`)
)

// flagError says a node.Config problem in the user's terms: the Go field
// names in it become the flags that set them ("--min-ttl 10s is above
// --max-ttl 1s", not "registry: config: MinTTL 10s is above MaxTTL 1s").
func flagError(err error) string {
	var ce *node.ConfigError
	if !errors.As(err, &ce) {
		return err.Error()
	}
	section, msg := ce.Field, ce.Err.Error()
	// Strip the part's "pkg: config: " (and a nested "mux: ") prefixes.
	msg = pkgPrefix.ReplaceAllString(msg, "")
	named := false
	msg = goIdent.ReplaceAllStringFunc(msg, func(id string) string {
		for _, path := range []string{section + "." + id, section + ".Mux." + id, id} {
			if f, ok := flagOf[path]; ok {
				named = true
				return f
			}
		}
		return id
	})
	if !named {
		if f, ok := flagOf[section]; ok {
			return f + ": " + msg
		}
	}
	return msg
}
