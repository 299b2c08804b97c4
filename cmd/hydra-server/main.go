// Command hydra-server runs the Hydra service registry, and talks to one.
//
//	hydra-server [flags]              run the server (127.0.0.1:8420 by default)
//	hydra-server register NAME ADDR   register a service and keep it alive
//	hydra-server lookup NAME          print a name's live instances
//	hydra-server list                 print every name (or entry)
//	hydra-server watch [NAME]         print events as they happen
//	hydra-server info                 print the running server's state
//	hydra-server health               exit 0 if the running server answers GET /healthz
//	hydra-server deregister           remove entries by instance and token
//	hydra-server join HOST[:PORT]     make the running server join another
//	hydra-server join --list | leave HOST[:PORT]   list or drop its links
//	hydra-server keygen               write a Curve25519 key pair
//	hydra-server bench zmtp|registry|tunnel|all|serve   measure it
//	hydra-server completion bash|zsh|fish   print a shell completion script
//	hydra-server version | help [COMMAND]
//
// Every flag can also be set by a HYDRA_<FLAG> environment variable
// (--log-level: HYDRA_LOG_LEVEL) and by a line of the file given with
// --config, flags winning over the environment, the environment over the
// file; their mistakes are said in usage.go, in --flag terms, exit status 2. See `hydra-server --help` and `hydra-server help COMMAND`. The
// running server itself is assembled by package node; this command turns
// flags into its Config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/hydra-net/hydra/zmtp"
)

// version is set at release builds with -ldflags "-X main.version=v1.2.3".
var version = ""

// stdio is where a command reads and writes; tests replace it.
type stdio struct {
	out, err io.Writer
}

// command is one subcommand of hydra-server. Other files add theirs to
// commands in init (keygen, bench ...).
type command struct {
	name  string
	args  string // synopsis after the name, e.g. "[flags] NAME"
	short string // one line for the command list
	run   func(ctx context.Context, io stdio, args []string) error
}

var commands []*command

func addCommand(c *command) {
	commands = append(commands, c)
	slices.SortFunc(commands, func(a, b *command) int { return strings.Compare(a.name, b.name) })
}

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a mistake in the command line, the environment or the
// config file: exit status 2. noHint drops the "Run ... --help" line (a
// config file's mistake names its line; the help would not help).
type usageError struct {
	msg    string
	noHint bool
}

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{msg: fmt.Sprintf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, stop, stdio{out: os.Stdout, err: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit status. stop undoes
// the signal handling, so that a second signal kills the process while the
// first one's graceful shutdown is under way.
func run(ctx context.Context, stop func(), io stdio, args []string) int {
	var err error
	help := "hydra-server --help" // where a usage error points
	switch {
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		c := findCommand(args[0])
		if c == nil {
			err = unknownCommand(args[0])
			break
		}
		help = "hydra-server " + c.name + " --help"
		err = c.run(ctx, io, args[1:])
	default:
		err = serve(ctx, stop, io, args)
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(io.err, "hydra-server: %v\n", err)
		if !ue.noHint {
			fmt.Fprintf(io.err, "Run '%s' for usage.\n", help)
		}
		return 2
	case errors.As(err, new(notFoundError)), errors.As(err, new(unhealthyError)): // health: 1 is unhealthy
		fmt.Fprintf(io.err, "hydra-server: %v\n", err)
		return 1 // as grep's: not found
	default:
		fmt.Fprintf(io.err, "hydra-server: %v\n", err)
		if errors.Is(err, zmtp.ErrMechanism) {
			fmt.Fprintln(io.err, mechanismHint)
		}
		return 2 // as grep's: an error (unreachable, refused, failed)
	}
}

// mechanismHint follows an error of mismatched ZMTP mechanisms.
const mechanismHint = "hint: a server run with --curve needs its public key on the client side (--server-key, or --join-key for joins); without --curve, drop --server-key"

// meantCommand maps names other tools use to ours.
var meantCommand = map[string]string{"status": "info", "ping": "info", "stats": "info", "unregister": "deregister", "part": "leave"}

// unknownCommand is the error for a command name not in commands, with
// the likeliest one meant.
func unknownCommand(name string) error {
	if meant, ok := meantCommand[name]; ok {
		return usagef("unknown command %q: did you mean %q?", name, meant)
	}
	best, bestD := "", 3
	for _, c := range commands {
		if d := editDistance(name, c.name); d < bestD {
			best, bestD = c.name, d
		}
	}
	if best != "" && bestD <= max(1, len(name)/3) {
		return usagef("unknown command %q: did you mean %q?", name, best)
	}
	return usagef("unknown command %q (commands: %s)", name, commandNames())
}

func commandNames() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// versionString is what --version prints.
func versionString() string {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return fmt.Sprintf("hydra-server %s (%s %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// noFlags parses the command line of a command without flags, printing
// its help for --help.
func noFlags(io stdio, name, args, text string, argv []string) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	pos, err := parse(fs, nil, argv, true)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(io.out, strings.TrimSpace("hydra-server "+name+" "+args), text, fs)
	}
	return pos, err
}

func init() {
	addCommand(&command{name: "version", short: "print the version and the Go/OS/arch it was built for",
		run: func(_ context.Context, io stdio, args []string) error {
			pos, err := noFlags(io, "version", "", "Prints the version of hydra-server, the Go release it was built with and\nits OS/arch, as --version does.", args)
			if err != nil {
				return err
			}
			if len(pos) > 0 {
				return usagef("version: unexpected argument %q", pos[0])
			}
			fmt.Fprintln(io.out, versionString())
			return nil
		}})
	addCommand(&command{name: "help", args: "[COMMAND]", short: "explain a command",
		run: func(ctx context.Context, io stdio, args []string) error {
			pos, err := noFlags(io, "help", "[COMMAND]", "Explains COMMAND, as 'hydra-server COMMAND --help' does; without one, the\nserver's flags and the list of commands, as 'hydra-server --help'.", args)
			if err != nil {
				return err
			}
			if len(pos) == 0 {
				return serve(ctx, func() {}, io, []string{"--help"})
			}
			if len(pos) > 1 {
				return usagef("help: want at most one COMMAND")
			}
			c := findCommand(pos[0])
			if c == nil {
				return unknownCommand(pos[0])
			}
			return c.run(ctx, io, []string{"--help"})
		}})
}

// newLogger builds the process's logger from --log-level and --log-format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}
