// Package netaddr parses the HOST[:PORT] addresses users give for other
// Hydra servers (--join, --tunnel, run-time JOIN), with Hydra's port as the
// default, in one place.
package netaddr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPort is Hydra's port: the registry's ZMTP port, which tunnels share.
const DefaultPort = 8420

// DefaultHost is where a server binds and a client looks when not told.
const DefaultHost = "127.0.0.1"

// DefaultEndpoint is the ZMTP endpoint of a server on its defaults:
// DefaultHost and DefaultPort (a test keeps them in step).
const DefaultEndpoint = "tcp://127.0.0.1:8420"

// ErrEmpty is returned for an empty address.
var ErrEmpty = errors.New("address is empty")

// ParseHostPort returns "HOST:PORT" (IPv6 in brackets) for HOST, HOST:PORT,
// [IPv6]:PORT, [IPv6], a bare IPv6 address or tcp://HOST[:PORT], with
// DefaultPort when no port is given. HOST must be a host name or an IP
// literal; errors say what was wrong with s, and callers add what s was for.
func ParseHostPort(s string) (string, error) {
	in := s
	if s == "" {
		return "", ErrEmpty
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if scheme != "tcp" {
			return "", fmt.Errorf("%q: only tcp:// is supported", in)
		}
		s = rest
	}
	host, port := s, strconv.Itoa(DefaultPort)
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	} else if strings.Count(s, ":") == 1 {
		return "", fmt.Errorf("%q: want HOST[:PORT] with a port 1-65535", in)
	}
	if err := CheckHost(host); err != nil {
		return "", fmt.Errorf("%q: %w", in, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q: port %q: want 1-65535", in, port)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// CheckHost reports whether h is an IP literal (an IPv6 zone being an
// interface name) or a host name (labels of letters, digits, '-' and '_',
// separated by dots, at most 253 bytes).
func CheckHost(h string) error {
	if h == "" {
		return errors.New("host is empty")
	}
	if a, err := netip.ParseAddr(h); err == nil {
		// netip takes any zone ("fe80::1%$(id)"): only an interface name.
		for i := 0; i < len(a.Zone()); i++ {
			c := a.Zone()[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				return fmt.Errorf("host %q: the zone after %% is not an interface name", h)
			}
		}
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("host of %d bytes: at most 253", len(h))
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q: not a host name or an IP address", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok || (c == '-' && (i == 0 || i == len(label)-1)) {
				return fmt.Errorf("host %q: not a host name or an IP address", h)
			}
		}
	}
	return nil
}
