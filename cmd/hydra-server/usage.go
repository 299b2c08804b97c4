package main

// The one place where mistakes in flags, HYDRA_* variables and config
// files become messages: Go's flag package and ff say "-port" and "parse
// error"; these say "--port "x": not a number", name the file and line of
// a config file, and suggest the flag that was probably meant.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// flagParseError rewrites an error of fs.Parse (Go's flag package) in
// --flag terms. Its messages are fixed formats, matched here and nowhere
// else.
func flagParseError(fs *flag.FlagSet, err error) error {
	s := err.Error()
	if name, ok := strings.CutPrefix(s, "flag provided but not defined: -"); ok {
		if m := removedFlag(fs, strings.TrimPrefix(name, "-")); m != "" { // curve.go
			return usagef("%s", m)
		}
		return usagef("unknown flag --%s%s", name, suggestFlag(fs, name, "--"))
	}
	if name, ok := strings.CutPrefix(s, "flag needs an argument: -"); ok {
		return usagef("--%s needs a value%s", name, valueHint(fs.Lookup(name)))
	}
	if arg, ok := strings.CutPrefix(s, "bad flag syntax: "); ok {
		return usagef("bad flag syntax %q: want --name or --name=value", arg)
	}
	if rest, ok := strings.CutPrefix(s, "invalid value "); ok {
		// invalid value "VALUE" for flag -NAME: ERR
		if q, rest, ok := strings.Cut(rest, " for flag -"); ok {
			if v, err := strconv.Unquote(q); err == nil {
				if name, inner, ok := strings.Cut(rest, ": "); ok {
					if f := fs.Lookup(name); f != nil {
						return usagef("%s", valueError(f, "--"+name, v, inner))
					}
				}
			}
		}
	}
	if rest, ok := strings.CutPrefix(s, "invalid boolean value "); ok {
		// invalid boolean value "VALUE" for -NAME: ERR
		if q, name, ok := strings.Cut(rest, " for -"); ok {
			name, _, _ = strings.Cut(name, ": ")
			return usagef("--%s=%s: want true or false (or --%s alone for true)", name, q, name)
		}
	}
	// Anything else: at least say --flag, not -flag.
	return usagef("%s", dashes(s))
}

// dashes turns the " -name" of Go's flag messages into " --name".
func dashes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '-' && (i == 0 || s[i-1] == ' ') && i+1 < len(s) && s[i+1] >= 'a' && s[i+1] <= 'z' {
			b.WriteByte('-')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// valueHint is " (--port PORT)" for a flag whose usage names its value.
func valueHint(f *flag.Flag) string {
	if f == nil {
		return ""
	}
	name, _ := flag.UnquoteUsage(f)
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" (--%s %s)", f.Name, strings.ToUpper(name))
}

// kinder is a custom flag.Value that parses like a built-in kind ("int",
// "float", "duration"), so that its errors read like theirs.
type kinder interface{ kind() string }

// flagKind is the kind of value f takes: bool, int, uint, float, duration,
// string, or value (a custom flag.Value with its own messages).
func flagKind(f *flag.Flag) string {
	if k, ok := f.Value.(kinder); ok {
		return k.kind()
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return "bool"
	}
	name, _ := flag.UnquoteUsage(&flag.Flag{Value: f.Value})
	return name
}

// valueError says why value does not suit f, which the user spelled
// display ("--port", "port", "HYDRA_PORT"): `--port "eighty": not a
// number`. inner is what f.Value.Set said.
func valueError(f *flag.Flag, display, value, inner string) string {
	var why string
	switch flagKind(f) {
	case "int", "uint":
		why = "not a number"
		if _, err := strconv.ParseFloat(value, 64); err == nil {
			why = "out of range"
			if strings.ContainsAny(value, ".eE") {
				why = "not a whole number"
			}
		}
	case "float":
		why = "not a number"
	case "duration":
		why = "not a duration (such as 500ms, 30s, 5m, 1h30m)"
		if _, err := strconv.ParseFloat(value, 64); err == nil {
			why = "a duration needs a unit (such as " + value + "s)"
		}
	case "bool":
		why = "want true or false"
	default:
		// The value's own message, which usually starts by quoting the
		// value ("size \"x\": want ..."): keep what follows the quote.
		q := strconv.Quote(value)
		if i := strings.Index(inner, q); i >= 0 {
			rest := strings.TrimPrefix(inner[i+len(q):], ": ")
			if rest == "" {
				rest = "invalid value"
			}
			return fmt.Sprintf("%s %s: %s", display, q, rest)
		}
		why = inner
	}
	return fmt.Sprintf("%s %q: %s", display, value, why)
}

// suggestFlag is ` (did you mean --proto?)` when name is a likely typo of
// one of fs's flags (as written with prefix: "--" or `"` for config keys),
// or "".
func suggestFlag(fs *flag.FlagSet, name, prefix string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(name, f.Name)
		if strings.HasPrefix(f.Name, name) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestD || d == bestD && best != "" && f.Name < best {
			best, bestD = f.Name, d
		}
	})
	if best == "" || bestD > max(1, len(name)/3) {
		return ""
	}
	suffix := ""
	if prefix == `"` {
		suffix = `"`
	}
	return " (did you mean " + prefix + best + suffix + "?)"
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envVar is the HYDRA_* variable of flag name: --log-level is HYDRA_LOG_LEVEL.
func envVar(name string) string {
	return "HYDRA_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// parseEnv sets each flag of fs not set on the command line from its
// HYDRA_* variable, if that is not empty.
func parseEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		key := envVar(f.Name)
		v := os.Getenv(key)
		if v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = usagef("%s", valueError(f, key, v, serr.Error()))
		}
	})
	return err
}

// configError is a mistake in a config file, at a line: "hydra.conf:3:
// unknown option "prot" (did you mean "proto"?)". It is a usage error
// (exit status 2) without the --help hint, which would not help.
func configError(path string, line int, format string, args ...any) error {
	return usageError{msg: fmt.Sprintf("%s:%d: ", path, line) + fmt.Sprintf(format, args...), noHint: true}
}

// configParser is the parser of --config files for fs: "name value"
// lines (or a JSON object when path ends in .json) whose mistakes name the
// file, the line and the value. strict refuses options fs does not define
// (the server's); otherwise they are skipped (client commands read the
// server's file for --host and --port).
func configParser(fs *flag.FlagSet, strict bool) func(r io.Reader, set func(name, value string) error) error {
	return func(r io.Reader, set func(name, value string) error) error {
		path := fs.Lookup("config").Value.String()
		setLine := func(line int, name, value string) error {
			name = strings.TrimLeft(name, "-")
			f := fs.Lookup(name)
			switch {
			case name == "config":
				return configError(path, line, `"config" cannot be set in a config file (give it on the command line or in HYDRA_CONFIG)`)
			case f == nil && strict && removedFlags[name] != "": // curve.go
				return configError(path, line, "%s", removedFlags[name])
			case f == nil && strict:
				return configError(path, line, "unknown option %q%s", name, suggestFlag(fs, name, `"`))
			case f == nil:
				return nil
			}
			if err := set(name, value); err != nil {
				inner := err
				if u := errors.Unwrap(err); u != nil {
					inner = u
				}
				return configError(path, line, "%s", valueError(f, name, value, inner.Error()))
			}
			return nil
		}
		if strings.HasSuffix(path, ".json") {
			return parseJSONConfig(r, path, setLine)
		}
		return parsePlainConfig(r, setLine)
	}
}

// parsePlainConfig reads "name value" lines: blank lines and lines
// starting with # are skipped, as is the rest of a line after " #"; a name
// alone sets a boolean to true (as ff.PlainParser, with line numbers).
func parsePlainConfig(r io.Reader, set func(line int, name, value string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			name, value, ok = strings.Cut(line, "\t")
		}
		if !ok {
			value = "true"
		}
		value = strings.TrimSpace(value)
		if i := strings.Index(value, " #"); i >= 0 {
			value = strings.TrimSpace(value[:i])
		}
		if err := set(n, name, value); err != nil {
			return err
		}
	}
	return sc.Err()
}

// parseJSONConfig reads one JSON object of options: strings, numbers,
// booleans, and arrays of them for repeatable flags.
func parseJSONConfig(r io.Reader, path string, set func(line int, name, value string) error) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	jsonErr := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return configError(path, lineAt(se.Offset), "not valid JSON: %v", err)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return configError(path, lineAt(int64(len(data))), "not valid JSON: unexpected end of the file")
		}
		return configError(path, lineAt(d.InputOffset()), "not valid JSON: %v", err)
	}
	if t, err := d.Token(); err != nil {
		return jsonErr(err)
	} else if t != json.Delim('{') {
		return configError(path, 1, "want a JSON object of options, {\"port\": 8420, ...}")
	}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return jsonErr(err)
		}
		name, _ := t.(string)
		line := lineAt(d.InputOffset())
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return jsonErr(err)
		}
		var vals []any
		var v any
		dd := json.NewDecoder(bytes.NewReader(raw))
		dd.UseNumber()
		_ = dd.Decode(&v)
		if a, ok := v.([]any); ok {
			vals = a
		} else {
			vals = []any{v}
		}
		for _, v := range vals {
			var s string
			switch v := v.(type) {
			case string:
				s = v
			case json.Number:
				s = v.String()
			case bool:
				s = strconv.FormatBool(v)
			default:
				return configError(path, line, "%q: want a string, number, boolean or a list of them, not %s", name, raw)
			}
			if err := set(line, name, s); err != nil {
				return err
			}
		}
	}
	if _, err := d.Token(); err != nil {
		return jsonErr(err)
	}
	return nil
}

// configOpenError rewrites ff's failure to open the --config file.
func configOpenError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) && pe.Op == "open" {
		return usagef("--config %s: %v", pe.Path, pe.Err)
	}
	return err
}

// kind makes blankZero's errors read like the built-in kinds'.
func (b blankZero[T]) kind() string {
	switch any(b.p).(type) {
	case *float64:
		return "float"
	}
	return "int"
}
