package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// completionScript is `hydra-server completion SHELL`, written to a file.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	code, out, errs := runCmd(context.Background(), "completion", shell)
	if code != 0 || errs != "" || out == "" {
		t.Fatalf("completion %s: exit %d, stderr %q", shell, code, errs)
	}
	path := filepath.Join(t.TempDir(), "hydra-server."+shell)
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCompletionBash: the bash script parses, registers itself and
// completes commands, flags of the command typed, and flag values, all
// taken from the commands' flag sets.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := completionScript(t, "bash")
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	// complete: what the script completes for the words typed so far (the
	// last one being completed).
	complete := func(words ...string) string {
		t.Helper()
		var arr []string
		for _, w := range words {
			arr = append(arr, shellWord(w))
		}
		prog := "source " + shellWord(script) + "\n" +
			"complete -p hydra-server\n" +
			"COMP_WORDS=(" + strings.Join(arr, " ") + "); COMP_CWORD=" + strconv.Itoa(len(words)-1) + "\n" +
			"_hydra_server\n" +
			`printf '%s\n' "${COMPREPLY[@]}"`
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		reg, rest, _ := strings.Cut(string(out), "\n")
		if !strings.Contains(reg, "-F _hydra_server hydra-server") {
			t.Fatalf("complete -p hydra-server: %q", reg)
		}
		return strings.TrimSpace(rest)
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"hydra-server", "loo"}, "lookup"},
		{[]string{"hydra-server", "comp"}, "completion"},
		{[]string{"hydra-server", "lookup", "--js"}, "--json"},
		{[]string{"hydra-server", "lookup", "web", "--tim"}, "--timeout"},
		{[]string{"hydra-server", "keygen", "--f"}, "--force"},
		{[]string{"hydra-server", "--max-entries-p"}, "--max-entries-per-client"},
		{[]string{"hydra-server", "bench", "reg"}, "registry"},
		{[]string{"hydra-server", "completion", "f"}, "fish"},
		{[]string{"hydra-server", "help", "regi"}, "register"},
		{[]string{"hydra-server", "--log-level", "w"}, "warn"},
		{[]string{"hydra-server", "list", "--proto", "i"}, "ipc"},
		{[]string{"hydra-server", "lookup", "--port", "--"}, ""}, // a value, not a flag
	} {
		if got := complete(c.words...); got != c.want {
			t.Errorf("%q: completed %q, want %q", c.words, got, c.want)
		}
	}
	// File flags complete files.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hydra.conf"), nil, 0o644)
	if got := complete("hydra-server", "--config", filepath.Join(dir, "hydra.c")); got != filepath.Join(dir, "hydra.conf") {
		t.Errorf("--config completed %q, want the file", got)
	}
}

// TestCompletionZshFish: the zsh and fish scripts parse (where those
// shells are installed), and fish completes a command and a flag.
func TestCompletionZshFish(t *testing.T) {
	ran := false
	if zsh, err := exec.LookPath("zsh"); err == nil {
		ran = true
		if out, err := exec.Command(zsh, "-n", completionScript(t, "zsh")).CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v\n%s", err, out)
		}
	}
	if fish, err := exec.LookPath("fish"); err == nil {
		ran = true
		script := completionScript(t, "fish")
		if out, err := exec.Command(fish, "-n", script).CombinedOutput(); err != nil {
			t.Errorf("fish -n: %v\n%s", err, out)
		}
		out, err := exec.Command(fish, "--no-config", "-c", "source "+shellWord(script)+
			"; complete -C 'hydra-server loo'; complete -C 'hydra-server lookup --js'").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "lookup\t") || !strings.Contains(string(out), "--json\t") {
			t.Errorf("fish completion: %v\n%s", err, out)
		}
	}
	if !ran {
		requireUnderCI(t)
		t.Skip("neither zsh nor fish installed")
	}
}

// TestCompletionHasEveryFlag: completion knows every flag each command's
// --help lists (a command whose flags parse never sees would miss them).
func TestCompletionHasEveryFlag(t *testing.T) {
	specs, err := completionSpecs()
	if err != nil {
		t.Fatal(err)
	}
	flagLine := regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`)
	for _, c := range specs {
		args := []string{"--help"}
		if c.name != "" {
			args = []string{c.name, "--help"}
		}
		_, out, _ := runCmd(context.Background(), args...)
		have := map[string]bool{}
		for _, f := range c.flags {
			have[f.name] = true
		}
		for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
			if !have[m[1]] {
				t.Errorf("completion of %q lacks --%s", c.name, m[1])
			}
		}
		if len(c.flags) != len(flagLine.FindAllString(out, -1)) {
			t.Errorf("completion of %q has %d flags, its --help %d", c.name, len(c.flags), len(flagLine.FindAllString(out, -1)))
		}
	}
}

// requireUnderCI fails a test that is about to skip for want of a tool,
// when CI=true: .ci/run installs every tool the tests use, so a skip there
// would hide a missing install step.
func requireUnderCI(t testing.TB) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true: the tool this test needs must be installed (.ci/run installs it)")
	}
}
