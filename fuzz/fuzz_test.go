package fuzz

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var fuzzFunc = regexp.MustCompile(`^func (Fuzz\w+)\(f \*testing\.F\)`)

// TestEveryTargetHasSeeds walks the module for fuzz targets and checks that
// each has at least one seed file in testdata/fuzz/<Target> of its package:
// real captures and hand-made inputs are what make a short CI run useful.
func TestEveryTargetHasSeeds(t *testing.T) {
	root := ".."
	found := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			m := fuzzFunc.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			found++
			seeds, _ := os.ReadDir(filepath.Join(filepath.Dir(path), "testdata", "fuzz", m[1]))
			if len(seeds) == 0 {
				t.Errorf("%s: %s has no seed corpus in testdata/fuzz/%s", path, m[1], m[1])
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("no fuzz targets found in the module")
	}
	t.Logf("%d fuzz targets, each with seeds", found)
}
