package zmtp

import (
	"fmt"
	"net"
	"strings"
)

// parseEndpoint splits "tcp://host:port" or "ipc:///path" into the network
// and address net.Listen and net.Dial take. "tcp://*:port" binds every
// interface, as in libzmq.
func parseEndpoint(ep string) (network, addr string, err error) {
	scheme, rest, ok := strings.Cut(ep, "://")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("%w: %q (want tcp://host:port or ipc://path)", ErrBadEndpoint, ep)
	}
	switch scheme {
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return "", "", fmt.Errorf("%w: %q: %v", ErrBadEndpoint, ep, err)
		}
		if host == "*" {
			host = ""
		}
		network := "tcp"
		if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
			// An IPv4 address means IPv4, as in libzmq: tcp://0.0.0.0:N
			// binds IPv4's any address (not a dual-stack [::]:N) and says so.
			network = "tcp4"
		}
		return network, net.JoinHostPort(host, port), nil
	case "ipc":
		return "unix", rest, nil
	}
	return "", "", fmt.Errorf("%w: %q: transport %q not supported (tcp, ipc)", ErrBadEndpoint, ep, scheme)
}

// endpointOf formats a listener's real address back as an endpoint.
func endpointOf(a net.Addr) string {
	if a.Network() == "unix" {
		return "ipc://" + a.String()
	}
	return "tcp://" + a.String()
}
