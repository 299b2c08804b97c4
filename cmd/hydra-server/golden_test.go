package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update rewrites the golden files instead of comparing against them:
//
//	go test ./cmd/hydra-server -run TestX -update
var update = flag.Bool("update", false, "rewrite testdata/golden/*.txt with what the tests got")

// goldenDir is testdata/golden of this package, found at start, so that
// tests that change directory (t.Chdir) still find it.
var goldenDir = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Join(wd, "testdata", "golden")
}()

// golden compares got with testdata/golden/<name>.txt (name may contain
// slashes for subdirectories). With -update it writes got there instead.
// The comparison is of the exact bytes; on a mismatch the test fails with
// both texts and how to accept the new one.
func golden(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join(goldenDir, filepath.FromSlash(name)+".txt")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test ./cmd/hydra-server -run '%s' -update to create it)", path, err, t.Name())
	}
	if got != string(want) {
		t.Errorf("golden %s differs (run go test ./cmd/hydra-server -run '%s' -update to accept):\n--- got\n%s\n--- want\n%s\n--- first difference at line %d",
			path, t.Name(), got, want, firstDiffLine(got, string(want)))
	}
}

// firstDiffLine is the 1-based number of the first line where a and b differ.
func firstDiffLine(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// TestGoldenHelper: golden accepts its own -update output and reports a
// difference otherwise.
func TestGoldenHelper(t *testing.T) {
	golden(t, "golden-helper", "golden files live in testdata/golden\n")
	if n := firstDiffLine("a\nb\nc", "a\nx\nc"); n != 2 {
		t.Fatalf("firstDiffLine = %d, want 2", n)
	}
}
