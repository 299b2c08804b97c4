package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/hydra-net/hydra/node"
)

// derivedDefaults are flags whose default follows another flag's value, so
// the flag itself defaults to zero; the docs show the value it takes when
// that other flag is on its default.
var derivedDefaults = map[string]string{
	"join-timeout": "5s", // 5 × --join-interval
}

// serverFlagSet is the server's flag set, as --help prints it.
func serverFlagSet() *flag.FlagSet {
	var f serverFlags
	fs := flag.NewFlagSet("hydra-server", flag.ContinueOnError)
	f.define(fs)
	return fs
}

// sameValue reports whether v, set on a fresh copy of the flag, reads back
// as the flag's default (so "8M" matches 8388608 and "24h" matches 24h0m0s).
func sameValue(t *testing.T, name, v string) (ok bool, parsed string) {
	t.Helper()
	fs := serverFlagSet()
	fl := fs.Lookup(name)
	if err := fs.Set(name, v); err != nil {
		return false, "unparseable: " + err.Error()
	}
	want := fl.DefValue
	if d, ok := derivedDefaults[name]; ok {
		ref := serverFlagSet()
		ref.Set(name, d)
		want = ref.Lookup(name).Value.String()
	}
	return fl.Value.String() == want, fl.Value.String()
}

// TestFlagDefaultsWrittenOnce: each default is the flag's own default value
// (not words in its usage text), and README, deploy/hydra.conf and
// PROTOCOL.md section 9 state the same value as --help prints.
func TestFlagDefaultsWrittenOnce(t *testing.T) {
	fs := serverFlagSet()
	handWritten := regexp.MustCompile(`\(default:? [0-9]`)
	fs.VisitAll(func(fl *flag.Flag) {
		if handWritten.MatchString(fl.Usage) {
			t.Errorf("--%s: its usage text writes a default (%q): make it the flag's default value, which --help prints", fl.Name, fl.Usage)
		}
	})
	hasDefault := func(name string) bool {
		fl := fs.Lookup(name)
		if fl == nil {
			return false
		}
		_, derived := derivedDefaults[name]
		return derived || fl.DefValue != "" && fl.DefValue != "0" && fl.DefValue != "[]"
	}
	check := func(where, name, v string) {
		if !hasDefault(name) {
			return
		}
		if ok, got := sameValue(t, name, v); !ok {
			t.Errorf("%s: --%s %s (reads as %s), but the flag's default is %s", where, name, v, got, fs.Lookup(name).DefValue)
		}
	}
	read := func(path string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// deploy/hydra.conf: "#name value" lines of flags that have a default.
	confLine := regexp.MustCompile(`(?m)^#([a-z][a-z0-9-]*) (\S+)$`)
	for _, m := range confLine.FindAllStringSubmatch(read("deploy/hydra.conf"), -1) {
		check("deploy/hydra.conf", m[1], m[2])
	}

	// README: inline "`--name value`" and "`--name` (value)"; placeholders
	// (MIN-MAX, HOST) and choices (a|b) are not values.
	placeholder := regexp.MustCompile(`^[A-Z][A-Z-]*$|\|`)
	readme := read("README.md")
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile("`--([a-z][a-z0-9-]*) ([^` ]+)`"),
		regexp.MustCompile("`--([a-z][a-z0-9-]*)` \\(([^) ]+)\\)"),
	} {
		for _, m := range re.FindAllStringSubmatch(readme, -1) {
			if !placeholder.MatchString(m[2]) {
				check("README.md", m[1], m[2])
			}
		}
	}

	// PROTOCOL.md section 9: "| limit | default | --flag |" rows.
	proto := read("PROTOCOL.md")
	start := strings.Index(proto, "## 9. Limits")
	if start < 0 {
		t.Fatal("PROTOCOL.md has no section 9. Limits")
	}
	sec := proto[start:]
	if end := strings.Index(sec[3:], "\n## "); end > 0 {
		sec = sec[:end+3]
	}
	row := regexp.MustCompile("(?m)^\\| [^|]+ \\| ([^|]+) \\| `--([a-z-]+)`((?: / `--[a-z-]+`)?) \\|$")
	rows := row.FindAllStringSubmatch(sec, -1)
	if len(rows) < 5 {
		t.Fatalf("PROTOCOL.md section 9: %d rows with a flag column, want every limit with its flag", len(rows))
	}
	for _, m := range rows {
		vals := strings.Split(m[1], " / ")
		flags := []string{m[2]}
		if m[3] != "" {
			flags = append(flags, strings.Trim(strings.TrimPrefix(m[3], " / "), "`-"))
		}
		if len(vals) != len(flags) {
			t.Errorf("PROTOCOL.md section 9: %q: %d values for %d flags", m[0], len(vals), len(flags))
			continue
		}
		for i, fl := range flags {
			if fs.Lookup(fl) == nil {
				t.Errorf("PROTOCOL.md section 9 names --%s, which is not a flag", fl)
				continue
			}
			check("PROTOCOL.md section 9", fl, protocolValue(vals[i]))
		}
	}
}

// protocolValue turns a value as section 9 writes it ("100 000", "4096
// bytes", "30 s") into flag syntax.
func protocolValue(s string) string {
	s = strings.TrimSpace(s)
	for _, unit := range []string{" bytes", " entries"} {
		s = strings.TrimSuffix(s, unit)
	}
	if v, ok := strings.CutSuffix(s, " s"); ok {
		return strings.ReplaceAll(v, " ", "") + "s"
	}
	if v, ok := strings.CutSuffix(s, " h"); ok {
		return strings.ReplaceAll(v, " ", "") + "h"
	}
	return strings.ReplaceAll(s, " ", "")
}

// TestFlagErrorNamesFlags: node.Config problems come out in flag names.
func TestFlagErrorNamesFlags(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&node.ConfigError{Field: "Registry", Err: errors.New("registry: config: MinTTL 10s is above MaxTTL 1s")}, "--min-ttl 10s is above --max-ttl 1s"},
		{&node.ConfigError{Field: "Tunnel", Err: errors.New("tunnel: config: Mux.StreamWindow 1 outside [262144, 16777216]")}, "--tunnel-window 1 outside [262144, 16777216]"},
		{&node.ConfigError{Field: "Tunnel", Err: errors.New("tunnel: config: PortMin: proxy port range 9-1")}, "--tunnel-ports: proxy port range 9-1"},
		{&node.ConfigError{Field: "Curve", Err: errors.New("needs Keys (this server's key pair)")}, "--curve: needs --key-file (this server's key pair)"},
		{&node.ConfigError{Field: "Join", Err: errors.New(`join: config: Peers: join address "a b": bad`)}, `--join: join address "a b": bad`},
		{&node.ConfigError{Field: "HTTP", Err: errors.New(`Addr "x": want HOST:PORT`)}, `--http "x": want HOST:PORT`},
		{&node.ConfigError{Field: "HTTP.Addr", Err: errors.New("listen 127.0.0.1:8500: address already in use")}, "--http: listen 127.0.0.1:8500: address already in use"},
		{&node.ConfigError{Field: "HTTP.TokenFile", Err: errors.New("http token file: open /x: no such file")}, "--http-token-file: http token file: open /x: no such file"},
		{errors.New("plain"), "plain"},
	} {
		if got := flagError(c.err); got != c.want {
			t.Errorf("flagError(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	// Every path in flagOf is a field of node.Config.
	cfg := reflect.TypeOf(node.Config{})
	for path := range flagOf {
		typ := cfg
		for _, name := range strings.Split(path, ".") {
			f, ok := typ.FieldByName(name)
			if !ok {
				t.Errorf("flagOf names %s, which is not a field of node.Config", path)
				break
			}
			typ = f.Type
		}
	}
}
