package testutil

import (
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// DigReply is what dig (bind9-dnsutils) printed for one query.
type DigReply struct {
	Status     string   // NOERROR, NXDOMAIN, REFUSED ...
	Flags      []string // qr aa tc rd ...
	Answer     []string // the records, one a line, fields separated by one space
	Authority  []string
	Additional []string
	Out        string // all of it
}

// HasFlag reports whether the header had flag f ("tc").
func (d DigReply) HasFlag(f string) bool {
	for _, g := range d.Flags {
		if g == f {
			return true
		}
	}
	return false
}

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+)`)
	digFlags  = regexp.MustCompile(`;; flags: ([a-z ]+);`)
)

// Dig runs dig against the server at addr (HOST:PORT) with args (name,
// type, +tcp, ...) and parses its reply. It skips the test when dig is
// missing, except under CI=true, where it fails (.ci/run installs it).
func Dig(t testing.TB, addr string, args ...string) DigReply {
	t.Helper()
	path, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: dig (bind9-dnsutils) must be installed")
		}
		t.Skip("dig (bind9-dnsutils) not installed")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := append([]string{"@" + host, "-p", port, "+time=3", "+tries=2", "+nocookie"}, args...)
	out, err := exec.CommandContext(ctx, path, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	d := DigReply{Out: string(out)}
	if m := digStatus.FindStringSubmatch(d.Out); m != nil {
		d.Status = m[1]
	}
	if m := digFlags.FindStringSubmatch(d.Out); m != nil {
		d.Flags = strings.Fields(m[1])
	}
	var sec *[]string
	for _, line := range strings.Split(d.Out, "\n") {
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION"):
			sec = &d.Answer
		case strings.HasPrefix(line, ";; AUTHORITY SECTION"):
			sec = &d.Authority
		case strings.HasPrefix(line, ";; ADDITIONAL SECTION"):
			sec = &d.Additional
		case strings.TrimSpace(line) == "":
			sec = nil
		case sec != nil && !strings.HasPrefix(line, ";"):
			*sec = append(*sec, strings.Join(strings.Fields(line), " "))
		}
	}
	return d
}
