package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageCommands drives the image subcommands as the Python side does:
// flags in, one JSON object out, one-line errors and exit codes.
func TestImageCommands(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "operator")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "spec.json")
	doc := fmt.Sprintf(`{"name": "op:1", "base": "scratch", "created": 1700000000,
	  "platforms": [{"platform": "linux/amd64", "layers": [{"comment": "op", "entries": [{"src": %q, "dest": "/bin/op"}]}]}],
	  "config": {"entrypoint": ["/bin/op"]}}`, bin)
	if err := os.WriteFile(spec, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	layoutDir := filepath.Join(dir, "out", "layout")

	run1 := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := run1("image", "build", "--spec", spec, "--layout", layoutDir)
	if code != 0 {
		t.Fatalf("build: exit %d, stderr %q", code, errs)
	}
	var built struct {
		Digest    string
		Manifests []struct{ Platform, Digest string }
	}
	if err := json.Unmarshal([]byte(out), &built); err != nil || !strings.HasPrefix(built.Digest, "sha256:") ||
		len(built.Manifests) != 1 || built.Manifests[0].Platform != "linux/amd64" {
		t.Fatalf("build printed %q (%v)", out, err)
	}

	code, out, _ = run1("image", "digest", "--layout", layoutDir)
	if want := fmt.Sprintf("{\"digest\":%q}\n", built.Digest); code != 0 || out != want {
		t.Errorf("digest: exit %d, %q, want %q", code, out, want)
	}

	cases := []struct {
		name      string
		args      []string
		code      int
		stderrHas string
	}{
		{"no image command", []string{"image"}, 2, "usage:"},
		{"unknown image command", []string{"image", "frob"}, 2, `unknown image command "frob"`},
		{"missing flag", []string{"image", "build", "--spec", spec}, 2, "--layout is required"},
		{"unknown flag", []string{"image", "push", "--layout", layoutDir, "--ref", "x", "--force"}, 2, "flag provided but not defined: -force"},
		{"copy arity", []string{"image", "copy", "a"}, 2, "want 2 positional arguments, got 1"},
		{"bad spec", []string{"image", "build", "--spec", layoutDir + "/oci-layout", "--layout", layoutDir}, 1, "polybuild-helper: image build: spec " + layoutDir + "/oci-layout: unknown field"},
		{"missing spec", []string{"image", "build", "--spec", dir + "/none.json", "--layout", layoutDir}, 1, "reading spec"},
		{"push refused", []string{"image", "push", "--layout", layoutDir, "--ref", "127.0.0.1:1/op:1"}, 1, "cannot connect to registry 127.0.0.1:1"},
		{"copy flags after positionals", []string{"image", "copy", "oci:" + dir, "127.0.0.1:1/op:1", "--insecure"}, 1, "not a readable OCI image layout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := run1(c.args...)
			if code != c.code || out != "" || !strings.Contains(errs, c.stderrHas) {
				t.Errorf("exit %d stdout %q stderr %q; want exit %d and stderr containing %q", code, out, errs, c.code, c.stderrHas)
			}
			if c.code == 1 && strings.Count(errs, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", errs)
			}
		})
	}
}
