package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hydra-net/hydra/node"
)

const healthHelp = `
Asks the running server whether it is healthy: GET /healthz on its HTTP
listener (--http), which answers 200 when the registry's loop answers
within 2s. It reads the server's own flags, HYDRA_* variables and --config
file, so it follows a changed --http, and CURVE on the ZMTP port does not
matter (HTTP has no CURVE). --pid takes the server's command line from
/proc/PID/cmdline, for a process that cannot be given the server's flags:
the Containerfile's HEALTHCHECK runs 'hydra-server health --pid 1'.

Prints "ok" and the server's id. Exits with status 0 when healthy, 1 when
the server answers unhealthy or not at all (what Docker and systemd
expect), 2 on a usage error.`

func init() {
	addCommand(&command{name: "health", args: "[flags]", short: "check that the running server answers (GET /healthz); for HEALTHCHECK and process managers", run: healthCmd})
}

// unhealthyError is a server that is not healthy or not there: exit 1.
type unhealthyError struct{ msg string }

func (e unhealthyError) Error() string { return e.msg }

func healthCmd(ctx context.Context, io stdio, args []string) error {
	var c common
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	c.define(fs)
	fs.String("http", node.DefaultHTTPAddr, "the server's --http `HOST:PORT`, where /healthz is")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long: unhealthy")
	pid := fs.Int("pid", 0, "read the server's flags from /proc/`PID`/cmdline (1 in a container); flags given here win")
	// Not strict: the server's --config file, with all its other keys.
	pos, err := parse(fs, &c, args, false)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(io.out, "hydra-server health [flags]", healthHelp, fs)
		return err
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("health: unexpected argument %q", pos[0])
	}
	addr := fs.Lookup("http").Value.String()
	if *pid != 0 {
		if addr, err = pidHTTP(*pid); err != nil {
			return err
		}
		fs.Visit(func(f *flag.Flag) { // given here (or in HYDRA_HTTP, --config): wins
			if f.Name == "http" {
				addr = f.Value.String()
			}
		})
	}
	if addr == "" {
		return usagef("health: the server's HTTP listener is off (--http \"\"): health asks GET /healthz there; give the server an --http address")
	}
	url, err := healthURL(addr)
	if err != nil {
		return usagef("health: --http %q: %v", addr, err)
	}
	hostPort := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), node.PathHealth)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	code, status, body, err := httpGet(ctx, hostPort, node.PathHealth)
	if err != nil {
		return unhealthyError{fmt.Sprintf("unhealthy: no answer from %s: %v", url, err)}
	}
	var h struct{ Status, Server, Error string }
	_ = json.Unmarshal(body, &h)
	if code != http.StatusOK || h.Status != "ok" {
		why := h.Error
		if why == "" {
			why = strings.TrimSpace(string(body))
		}
		return unhealthyError{fmt.Sprintf("unhealthy: %s answered %s: %s", url, status, why)}
	}
	fmt.Fprintf(io.out, "ok %s\n", h.Server)
	return nil
}

// healthURL is /healthz at the HTTP listener addr; a wildcard host (the
// server binds every interface) is asked on loopback.
func healthURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	if _, err := strconv.Atoi(port); err != nil {
		return "", fmt.Errorf("port %q is not a number", port)
	}
	return "http://" + net.JoinHostPort(host, port) + node.PathHealth, nil
}

// pidHTTP is the --http of the server running as pid: its command line
// parsed as the server parses it (with its HYDRA_* and --config file).
func pidHTTP(pid int) (string, error) {
	args, err := serverArgs(pid)
	if err != nil {
		return "", err
	}
	var f serverFlags
	fs := flag.NewFlagSet("hydra-server", flag.ContinueOnError)
	f.define(fs)
	if _, err := parse(fs, &f.common, args, false); err != nil {
		return "", usagef("health: --pid %d: its command line: %v", pid, err)
	}
	return fs.Lookup("http").Value.String(), nil
}

// serverArgs are the flags of the server running as pid: its command line
// without the program's name.
func serverArgs(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, usagef("health: --pid %d: %v", pid, err)
	}
	parts := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	if len(parts) > 1 && !strings.HasPrefix(parts[1], "-") {
		return nil, usagef("health: --pid %d runs %q, not the server", pid, strings.Join(parts, " "))
	}
	return parts[1:], nil
}

// httpGet is GET path at hostPort over one HTTP/1.1 connection, the body
// read up to 4 KiB. Not http.Client: its transport (HTTP/2, proxies,
// pools) would add about 300 KB to a binary that only serves HTTP.
func httpGet(ctx context.Context, hostPort, path string) (code int, status string, body []byte, err error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", hostPort)
	if err != nil {
		return 0, "", nil, err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hydra-server-health\r\nConnection: close\r\n\r\n", path, hostPort); err != nil {
		return 0, "", nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, resp.Status, body, err
}
