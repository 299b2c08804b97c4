package tunnel

import (
	"fmt"
	"net"
	"path"
	"strings"

	"github.com/hydra-net/hydra/registry"
)

// filter is an Export or Import list: names or path.Match globs, checked
// by Validate.
type filter []string

// match reports whether name matches one of f's patterns.
func (f filter) match(name string) bool {
	for _, p := range f {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// checkPatterns reports the first pattern path.Match cannot use, or an
// empty one (a stray comma in a flag).
func checkPatterns(pats []string) error {
	for _, p := range pats {
		if p == "" {
			return fmt.Errorf("empty pattern")
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("pattern %s: %v", quote(p), err)
		}
	}
	return nil
}

// exported says whether this server shares its entry e over its tunnels
// (Config.Export).
func (t *Tunnels) exported(e *registry.Entry) bool {
	if t.cfg.Export == nil {
		return !loopbackHost(e.Host)
	}
	return filter(t.cfg.Export).match(e.Name)
}

// imported says whether this server registers a proxy for a service the
// far side exports (Config.Import).
func (t *Tunnels) imported(name string) bool {
	return t.cfg.Import == nil || filter(t.cfg.Import).match(name)
}

// loopbackHost says whether host names this machine's loopback only: an
// IP literal of 127.0.0.0/8 or ::1, or "localhost" (and its subdomains,
// RFC 6761). Other names are not resolved here (no I/O on the watch path).
func loopbackHost(host string) bool {
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return ip.IsLoopback()
	}
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}
