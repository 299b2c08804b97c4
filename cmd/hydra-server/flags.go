package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hydra-net/hydra/registry"
	"github.com/peterbourgon/ff/v3"
)

// common are the flags of every command: where the registry is, the
// config file, logging.
type common struct {
	host      string
	port      int
	proto     string
	config    string
	logLevel  string
	logFormat string
}

func (c *common) define(fs *flag.FlagSet) {
	fs.StringVar(&c.host, "host", "127.0.0.1", "the registry's `address`: the interface the server binds, the server clients connect to (or --server) (with --proto ipc: the socket's path)")
	fs.IntVar(&c.port, "port", 8420, "the registry's TCP `port` (0: the server picks a free one)")
	fs.StringVar(&c.proto, "proto", "tcp", "the registry's transport: tcp or ipc")
	fs.StringVar(&c.config, "config", "", "read flags from this `file`: one \"flag value\" per line (JSON if it ends in .json)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json (logs go to stderr)")
}

// endpoint is the ZMTP endpoint the flags name.
func (c *common) endpoint() (string, error) {
	if c.port < 0 || c.port > 65535 {
		return "", usagef("--port %d out of range 0-65535", c.port)
	}
	switch c.proto {
	case "tcp":
		// '[::1]' and '::1' name the same host: JoinHostPort adds the brackets.
		host := strings.TrimSuffix(strings.TrimPrefix(c.host, "["), "]")
		return "tcp://" + net.JoinHostPort(host, strconv.Itoa(c.port)), nil
	case "ipc":
		path := c.host
		if !strings.Contains(path, "/") {
			path = filepath.Join(os.TempDir(), fmt.Sprintf("hydra-%d.sock", c.port))
		}
		return "ipc://" + path, nil
	}
	return "", usagef("--proto %q: want tcp or ipc", c.proto)
}

// parse parses args (flags and positional arguments in any order), then,
// for a flag set with --config, the HYDRA_* environment and the config
// file. strict makes unknown keys in the config file an error (the
// server's own flags); client commands ignore the server's keys. Every
// mistake comes back as a usage error in --flag terms (usage.go).
func parse(fs *flag.FlagSet, c *common, args []string, strict bool) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if flagSetHook != nil {
		flagSetHook(fs) // completion.go collects the flags
	}
	var pos, tail []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, tail = args[:i], args[i+1:]
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, flagParseError(fs, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	pos = append(pos, tail...)
	if fs.Lookup("config") == nil {
		return pos, nil // flags only (keygen, version)
	}
	if err := parseEnv(fs); err != nil {
		return nil, err
	}
	opts := []ff.Option{
		ff.WithConfigFileFlag("config"),
		ff.WithConfigFileParser(configParser(fs, strict)),
		ff.WithIgnoreUndefined(!strict),
	}
	if err := ff.Parse(fs, nil, opts...); err != nil {
		if errors.As(err, new(usageError)) {
			return nil, err
		}
		return nil, configOpenError(err)
	}
	return pos, nil
}

// printUsage writes a command's help: synopsis, text, and every flag with
// its default and, for commands with --config, its environment variable.
func printUsage(w io.Writer, synopsis, text string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", synopsis, strings.TrimSpace(text))
	env := fs.Lookup("config") != nil
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	switch {
	case n == 0:
		return
	case env:
		fmt.Fprintln(w, "\nFlags (each also read from HYDRA_<FLAG> and the --config file; flags win):")
	default:
		fmt.Fprintln(w, "\nFlags:")
	}
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n      %s", line, usage)
		if def := f.DefValue; def != "" && def != "false" && def != "0s" && def != "[]" {
			fmt.Fprintf(w, " (default %s)", def)
		}
		if env && f.Name != "version" && f.Name != "help" {
			fmt.Fprintf(w, " [$%s]", envVar(f.Name))
		}
		fmt.Fprintln(w)
	})
}

// versionFlag documents --version; the command line is scanned for it
// before parsing, so that a HYDRA_VERSION variable meant for something
// else cannot turn it on (or fail the parse).
type versionFlag struct{}

func (versionFlag) String() string   { return "" }
func (versionFlag) Set(string) error { return nil }
func (versionFlag) IsBoolFlag() bool { return true }

func wantsVersion(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		switch a {
		case "-version", "--version", "-version=true", "--version=true":
			return true
		}
	}
	return false
}

// serviceList is the repeatable --service flag: static services in the
// form NAME=PROTO://HOST:PORT[?key=value&...].
type serviceList struct{ svcs []registry.Service }

func (l *serviceList) String() string {
	var parts []string
	for _, s := range l.svcs {
		parts = append(parts, s.Name+"="+s.Proto+"://"+net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, " ")
}

// Set adds one service, or several separated by whitespace.
func (l *serviceList) Set(v string) error {
	for _, f := range strings.Fields(v) {
		s, err := parseService(f)
		if err != nil {
			return err
		}
		l.svcs = append(l.svcs, s)
	}
	return nil
}

func parseService(v string) (registry.Service, error) {
	name, addr, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return registry.Service{}, fmt.Errorf("service %q: want NAME=PROTO://HOST:PORT[?key=value&...]", v)
	}
	s, err := parseAddr(addr)
	if err != nil {
		return registry.Service{}, fmt.Errorf("service %q: %w", v, err)
	}
	s.Name = name
	return s, nil
}

// parseAddr parses [PROTO://]HOST:PORT[?key=value&...] (proto tcp when
// omitted).
func parseAddr(addr string) (registry.Service, error) {
	var s registry.Service
	if !strings.Contains(addr, "://") {
		addr = "tcp://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return s, fmt.Errorf("address %q: %v", addr, err)
	}
	if u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return s, fmt.Errorf("address %q: want PROTO://HOST:PORT[?key=value&...]", addr)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port < 1 || port > 65535 {
		return s, fmt.Errorf("address %q: port out of range 1-65535", addr)
	}
	s.Proto, s.Host, s.Port = u.Scheme, u.Hostname(), port
	q := u.Query()
	if len(q) > 0 {
		s.Meta = map[string]string{}
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s.Meta[k] = q.Get(k)
		}
	}
	return s, nil
}

// metaList is the repeatable --meta key=value flag.
type metaList map[string]string

func (m metaList) String() string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (m metaList) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("meta %q: want key=value", v)
	}
	m[k] = val
	return nil
}
