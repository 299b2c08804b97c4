package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hydra-net/hydra/registry"
)

const deregisterHelp = `
Removes entries from the running server (--host, --port): the entry
--instance of the client --token, or every entry of --token without
--instance. --from reads them from what "register --once" printed (a file,
or - for stdin; one JSON object per line, several lines allowed), so that

  hydra-server register --once web 10.0.0.5:8080 > web.json
  hydra-server deregister --from web.json

undoes the registration. Prints how many entries were removed. Exits with
status 1 when there was no such entry, 2 when the server cannot be
reached or refuses (another client's instance).`

func init() {
	addCommand(&command{name: "deregister", args: "[flags] (--instance ID --token TOKEN | --token TOKEN | --from FILE)", short: "remove entries by instance and token (or what register --once printed)", run: deregisterCmd})
}

// onceRecord is a line register --once prints.
type onceRecord struct {
	Instance string `json:"instance"`
	Token    string `json:"token"`
}

func deregisterCmd(ctx context.Context, io stdio, args []string) (err error) {
	var instance, token, from string
	c, f, pos, err := clientCommand(io, "deregister", "[flags]", deregisterHelp, args, false, func(fs *flag.FlagSet) {
		fs.StringVar(&instance, "instance", "", "the `id` of the entry to remove (register prints it)")
		fs.StringVar(&token, "token", "", "the `token` of the client that registered it (register --once prints it)")
		fs.StringVar(&from, "from", "", "read instance and token from this `file` of register --once output (- for stdin)")
	})
	if err != nil {
		return err
	}
	defer c.Close()
	defer func() { err = f.explain(err) }()
	if len(pos) != 0 {
		return usagef("deregister: unexpected argument %q (give --instance and --token, or --from)", pos[0])
	}
	var recs []onceRecord
	switch {
	case from != "" && (instance != "" || token != ""):
		return usagef("deregister: give --from, or --instance and --token, not both")
	case from != "":
		if recs, err = readOnce(from); err != nil {
			return usagef("deregister: --from %s: %v", from, err)
		}
	case token == "":
		return usagef("deregister: want --token (with --instance for one entry), or --from FILE")
	default:
		recs = []onceRecord{{Instance: instance, Token: token}}
	}
	removed := 0
	for _, r := range recs {
		body := map[string]string{"token": r.Token}
		if r.Instance != "" {
			body["instance"] = r.Instance
		}
		b, err := request(ctx, c, f.timeout, registry.VerbDeregister, body)
		var re *registry.Error
		switch {
		case errors.As(err, &re) && re.Code == registry.CodeNotFound:
			fmt.Fprintf(io.err, "hydra-server: deregister %s: %s\n", orDash(r.Instance), re.Message)
			continue
		case errors.As(err, &re):
			return fmt.Errorf("deregister %s: %w", orDash(r.Instance), err)
		case err != nil:
			return err
		}
		var rep struct {
			Removed int `json:"removed"`
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("deregister: DEREGISTER reply: %w", err)
		}
		removed += rep.Removed
	}
	fmt.Fprintf(io.out, "deregistered %d entries\n", removed)
	if removed == 0 {
		return errNotFound
	}
	return nil
}

// errNotFound exits 1 (grep's "not found") with nothing more to say: what
// was missing was said already.
var errNotFound = notFoundError{"nothing was removed"}

// readOnce reads register --once's output: JSON objects with instance and
// token.
func readOnce(name string) ([]onceRecord, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	dec := json.NewDecoder(r)
	var recs []onceRecord
	for {
		var rec onceRecord
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("want register --once output ({\"instance\":...,\"token\":...}): %v", err)
		}
		if rec.Instance == "" || rec.Token == "" {
			return nil, errors.New(`an object without "instance" and "token": want register --once output`)
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil, errors.New("empty: want register --once output")
	}
	return recs, nil
}
