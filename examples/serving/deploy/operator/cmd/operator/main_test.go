package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	cases := []struct {
		args      []string
		code      int
		stdout    string
		stderrHas string
	}{
		{nil, 2, "", "usage:"},
		{[]string{"version"}, 0, "operator dev\n", ""},
		{[]string{"validate", "llm-small", "3"}, 0, `{"name":"llm-small","spec":{"replicas":3,"device":"cpu"}}` + "\n", ""},
		{[]string{"validate", "LLM", "3"}, 1, "", "name:"},
		{[]string{"validate", "llm", "-2"}, 1, "", "spec.replicas"},
		{[]string{"validate", "llm", "three"}, 2, "", "must be an integer"},
		{[]string{"validate", "llm"}, 2, "", "usage:"},
		{[]string{"deploy"}, 2, "", "unknown command"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(c.args, &out, &errb); code != c.code {
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
