package api

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		d       Deployment
		wantErr []string // substrings; empty means valid
	}{
		{"ok", New("llm-small", 3), nil},
		{"zero replicas ok", New("a", 0), nil},
		{"max replicas ok", New("a1", MaxReplicas), nil},
		{"cuda ok", Deployment{Name: "gpu", Spec: DeploymentSpec{Replicas: 1, Device: "cuda"}}, nil},
		{"empty device ok", Deployment{Name: "x", Spec: DeploymentSpec{Replicas: 1}}, nil},
		{"empty name", New("", 1), []string{"name: must not be empty"}},
		{"uppercase", New("LLM", 1), []string{"name:"}},
		{"leading dash", New("-llm", 1), []string{"name:"}},
		{"too long", New(strings.Repeat("a", 64), 1), []string{"at most 63"}},
		{"negative replicas", New("llm", -1), []string{"spec.replicas: -1"}},
		{"too many replicas", New("llm", MaxReplicas+1), []string{"spec.replicas: 101"}},
		{"bad device", Deployment{Name: "llm", Spec: DeploymentSpec{Replicas: 1, Device: "tpu"}}, []string{`spec.device: "tpu"`}},
		{"several problems", New("Bad_Name", 1000), []string{"name:", "spec.replicas:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.d.Validate()
			if len(c.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors containing %q", c.wantErr)
			}
			for _, want := range c.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}
