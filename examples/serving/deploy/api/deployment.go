// Package api defines the serving Deployment resource shared by the operator
// and its clients.
package api

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// MaxReplicas bounds Spec.Replicas.
const MaxReplicas = 100

// Devices a deployment may request; they match serving_runtime.device().
var Devices = []string{"cpu", "cuda", "metal"}

// nameRE is an RFC 1123 DNS label, as Kubernetes requires for object names.
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Deployment is a request to serve one model with a number of replicas.
type Deployment struct {
	Name string         `json:"name"`
	Spec DeploymentSpec `json:"spec"`
}

// DeploymentSpec is the desired state of a Deployment.
type DeploymentSpec struct {
	Replicas int    `json:"replicas"`
	Image    string `json:"image,omitempty"`
	Device   string `json:"device,omitempty"` // "" means "cpu"
}

// New returns a CPU deployment with the given name and replica count.
func New(name string, replicas int) Deployment {
	return Deployment{Name: name, Spec: DeploymentSpec{Replicas: replicas, Device: "cpu"}}
}

// Validate reports every problem with d, joined, or nil if d is valid.
func (d Deployment) Validate() error {
	var errs []error
	switch {
	case d.Name == "":
		errs = append(errs, errors.New("name: must not be empty"))
	case len(d.Name) > 63:
		errs = append(errs, fmt.Errorf("name: %d characters, at most 63 allowed", len(d.Name)))
	case !nameRE.MatchString(d.Name):
		errs = append(errs, fmt.Errorf("name: %q must be lowercase letters, digits and '-', starting and ending with a letter or digit", d.Name))
	}
	if d.Spec.Replicas < 0 || d.Spec.Replicas > MaxReplicas {
		errs = append(errs, fmt.Errorf("spec.replicas: %d is outside 0..%d", d.Spec.Replicas, MaxReplicas))
	}
	if d.Spec.Device != "" && !contains(Devices, d.Spec.Device) {
		errs = append(errs, fmt.Errorf("spec.device: %q is not one of %s", d.Spec.Device, strings.Join(Devices, ", ")))
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
