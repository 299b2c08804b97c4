package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestDeployConfigDocumentsEveryOption keeps deploy/hydra.conf, the
// documented config file, in step with the server's flags: every flag has
// an option line there (commented out, showing its default), every value
// shown parses, and the file with every option line uncommented (but the
// example addresses to dial and key files) is one the server starts with.
func TestDeployConfigDocumentsEveryOption(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "hydra.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var f serverFlags
	fs := flag.NewFlagSet("hydra-server", flag.ContinueOnError)
	f.define(fs)
	option := regexp.MustCompile(`^#?([a-z][a-z0-9-]*) (\S.*)$`)
	documented := map[string]bool{}
	var all []string
	for _, line := range strings.Split(string(b), "\n") {
		m := option.FindStringSubmatch(line)
		if m == nil || fs.Lookup(m[1]) == nil {
			continue
		}
		documented[m[1]] = true
		if err := fs.Set(m[1], m[2]); err != nil {
			t.Errorf("deploy/hydra.conf: %q: %v", line, err)
		}
		switch m[1] {
		case "join", "join-key", "tunnel", "remote-key", "key-file", "allow-clients", "allow-servers", "allow-tunnels", "allow-admins", "join-allow",
			"http-token-file", "dns", "http":
			continue // example addresses to dial, files that are not here, listen addresses given (so an error when taken) that another server may hold
		}
		all = append(all, m[1]+" "+m[2])
	}
	fs.VisitAll(func(fl *flag.Flag) {
		if fl.Name == "config" || fl.Name == "version" {
			return
		}
		if !documented[fl.Name] {
			t.Errorf("deploy/hydra.conf does not document --%s (%s): add a commented \"#%s VALUE\" line with its default",
				fl.Name, fl.Usage, fl.Name)
		}
	})

	conf := filepath.Join(t.TempDir(), "hydra.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(all, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, _ := startServer(t, nil, "--config", conf, "--log-level", "warn")
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("server with every option of deploy/hydra.conf: exit %d\n%s", code, p.stderr())
	}
}
