package zmtp

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/hydra-net/hydra/zmtp/inproc"
)

// parseEndpoint splits "tcp://host:port", "ipc:///path" or "inproc://name"
// into the network and address net.Listen and net.Dial (or package inproc)
// take. "tcp://*:port" binds every interface, as in libzmq.
func parseEndpoint(ep string) (network, addr string, err error) {
	scheme, rest, ok := strings.Cut(ep, "://")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("%w: %q (want tcp://host:port, ipc://path or inproc://name)", ErrBadEndpoint, ep)
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
	case "inproc":
		return "inproc", rest, nil
	}
	return "", "", fmt.Errorf("%w: %q: transport %q not supported (tcp, ipc, inproc)", ErrBadEndpoint, ep, scheme)
}

// dial connects to what parseEndpoint returned.
func dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	if network == "inproc" {
		return inproc.Dial(ctx, addr)
	}
	return d.DialContext(ctx, network, addr)
}

// endpointOf formats a listener's real address back as an endpoint.
func endpointOf(a net.Addr) string {
	switch a.Network() {
	case "unix":
		return "ipc://" + a.String()
	case "inproc":
		return "inproc://" + a.String()
	}
	return "tcp://" + a.String()
}
