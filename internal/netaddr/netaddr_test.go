package netaddr

import (
	"net"
	"strconv"
	"testing"
)

func TestDefaultEndpointIsDefaultHostAndPort(t *testing.T) {
	if want := "tcp://" + net.JoinHostPort(DefaultHost, strconv.Itoa(DefaultPort)); DefaultEndpoint != want {
		t.Fatalf("DefaultEndpoint %q, want %q", DefaultEndpoint, want)
	}
}

func TestParseHostPort(t *testing.T) {
	good := map[string]string{
		"10.0.0.7":            "10.0.0.7:8420",
		"10.0.0.7:9000":       "10.0.0.7:9000",
		"tcp://gw.example:1":  "gw.example:1",
		"tcp://gw.example":    "gw.example:8420",
		"::1":                 "[::1]:8420",
		"[::1]":               "[::1]:8420",
		"[::1]:65535":         "[::1]:65535",
		"localhost":           "localhost:8420",
		"fe80::1%eth0":        "[fe80::1%eth0]:8420",
		"host_1.example.org.": "host_1.example.org.:8420",
	}
	for in, want := range good {
		got, err := ParseHostPort(in)
		if err != nil || got != want {
			t.Errorf("ParseHostPort(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "udp://a:1", "a:0", "a:65536", "a:x", "*", "a b", "a/b",
		"-oProxyCommand=id", "$(id)", "a;b", "`reboot`", ":8420", "[::1", "a..b"} {
		if got, err := ParseHostPort(in); err == nil {
			t.Errorf("ParseHostPort(%q) = %q, want an error", in, got)
		}
	}
}

// TestCheckHostZone: an IPv6 zone is an interface name; netip takes any
// zone, so "fe80::1%$(id)" passed as an IP literal.
func TestCheckHostZone(t *testing.T) {
	for _, h := range []string{"fe80::1%eth0", "fe80::1%en0.100", "fe80::1%wg_0"} {
		if err := CheckHost(h); err != nil {
			t.Errorf("CheckHost(%q): %v", h, err)
		}
	}
	for _, h := range []string{"fe80::1%$(id)", "fe80::1%a;b", "fe80::1%`x`", "fe80::1%a b"} {
		if err := CheckHost(h); err == nil {
			t.Errorf("CheckHost(%q) accepted", h)
		}
	}
}
