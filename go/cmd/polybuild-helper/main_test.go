package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "a.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "a.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	// sha256("100644 <sha256("hello\n")> a.txt\n"), computed with Python hashlib.
	const aDigest = "7196ae6241fa053865470aabade43587df8c907268c004e22e3bb8496410b4f9"

	cases := []struct {
		name      string
		args      []string
		code      int
		stdout    string
		stderrHas string
	}{
		{"no args", nil, 2, "", "usage:"},
		{"unknown", []string{"frobnicate"}, 2, "", "unknown command"},
		{"version", []string{"version"}, 0, "polybuild-helper dev\n", ""},
		{"digest missing args", []string{"digest", root}, 2, "", "usage:"},
		{"digest", []string{"digest", root, "a.txt", "a.txt"}, 0, aDigest + "\n", ""},
		{"digest missing file", []string{"digest", root, "nope.txt"}, 1, "", "nope.txt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(c.args, &out, &errb)
			if code != c.code {
				t.Errorf("exit = %d, want %d (stderr %q)", code, c.code, errb.String())
			}
			if out.String() != c.stdout {
				t.Errorf("stdout = %q, want %q", out.String(), c.stdout)
			}
			if !strings.Contains(errb.String(), c.stderrHas) {
				t.Errorf("stderr = %q, want it to contain %q", errb.String(), c.stderrHas)
			}
		})
	}
}
