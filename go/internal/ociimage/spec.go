// Package ociimage assembles, pushes and copies container images without a
// container daemon, on go-containerregistry.
//
// polybuild's Python side describes an image as a JSON spec (see Spec) and
// calls the helper binary; this package turns the spec into an OCI image
// layout whose digest depends only on the spec and the file contents, so a
// rebuild of unchanged inputs is recognisably the same image.
package ociimage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Spec is the JSON document `image build` reads.
type Spec struct {
	// Name, if set, annotates the layout's index entry as
	// org.opencontainers.image.ref.name.
	Name string `json:"name"`
	// Base is "scratch", "oci:PATH" (an OCI image layout) or a registry
	// reference.
	Base string `json:"base"`
	// Created is the image time in Unix seconds (SOURCE_DATE_EPOCH): the
	// config's created, every history entry's and every layer file's mtime.
	Created   *int64         `json:"created"`
	Platforms []PlatformSpec `json:"platforms"`
	Config    ConfigSpec     `json:"config"`
}

// PlatformSpec is the image for one platform: the layers added on top of
// the base image's layers for that platform.
type PlatformSpec struct {
	Platform string      `json:"platform"` // os/arch[/variant]
	Layers   []LayerSpec `json:"layers"`
}

// LayerSpec is one added layer.
type LayerSpec struct {
	// Comment becomes the history entry's created_by, "polybuild: <comment>".
	Comment string      `json:"comment"`
	Entries []EntrySpec `json:"entries"`
}

// EntrySpec puts host path Src at Dest in the layer.
type EntrySpec struct {
	Src  string `json:"src"`
	Dest string `json:"dest"`
	Mode *int64 `json:"mode"`
}

// ConfigSpec is merged onto the base image's config. Entrypoint and Cmd
// are pointers to tell "not given" (null or absent: keep the base's) from
// an explicit [] (clear it). An empty Workdir or User keeps the base's:
// "/" and "root" say the defaults explicitly.
type ConfigSpec struct {
	Entrypoint   *[]string         `json:"entrypoint"`
	Cmd          *[]string         `json:"cmd"`
	Env          map[string]string `json:"env"`
	Workdir      string            `json:"workdir"`
	User         string            `json:"user"`
	Labels       map[string]string `json:"labels"`
	ExposedPorts []string          `json:"exposed_ports"`
}

// CreatedTime returns Created as a UTC time.
func (s *Spec) CreatedTime() time.Time {
	return time.Unix(*s.Created, 0).UTC()
}

// ReadSpec reads and validates the spec at path. Errors name the file and,
// for malformed JSON, the line and column.
func ReadSpec(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	s, err := ParseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("spec %s: %w", path, err)
	}
	return s, nil
}

// ParseSpec decodes and validates a spec. Unknown fields are errors, so a
// misspelt key fails the build instead of being silently ignored.
func ParseSpec(data []byte) (*Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, describeJSONError(data, err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON: more than one value")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Spec) validate() error {
	if s.Base == "" {
		return errors.New(`"base" is required: "scratch", "oci:/path/to/layout" or a registry reference`)
	}
	if s.Created == nil {
		return errors.New(`"created" is required (Unix seconds, e.g. SOURCE_DATE_EPOCH)`)
	}
	if *s.Created < 0 {
		return fmt.Errorf(`"created" is %d; it must be Unix seconds >= 0`, *s.Created)
	}
	if len(s.Platforms) == 0 {
		return errors.New(`"platforms" must list at least one platform`)
	}
	seen := map[string]bool{}
	for i, p := range s.Platforms {
		plat, err := ParsePlatform(p.Platform)
		if err != nil {
			return fmt.Errorf("platforms[%d]: %w", i, err)
		}
		key := plat.String()
		if seen[key] {
			return fmt.Errorf("platforms[%d]: platform %s is listed twice", i, key)
		}
		seen[key] = true
		for j, l := range p.Layers {
			if len(l.Entries) == 0 {
				return fmt.Errorf("platforms[%d] (%s) layers[%d]: no entries", i, key, j)
			}
		}
	}
	for k := range s.Config.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("config.env: bad variable name %q", k)
		}
	}
	for _, p := range s.Config.ExposedPorts {
		if _, err := normalizePort(p); err != nil {
			return err
		}
	}
	return nil
}

// ParsePlatform parses "os/arch[/variant]".
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return v1.Platform{}, fmt.Errorf("bad platform %q: want os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm/v7", s)
	}
	for _, p := range parts {
		if p == "" || strings.ContainsAny(p, " :") {
			return v1.Platform{}, fmt.Errorf("bad platform %q: want os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm/v7", s)
		}
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// normalizePort checks "PORT[/PROTO]" and returns it with the protocol
// spelled out, as Docker stores exposed ports ("8080" -> "8080/tcp").
func normalizePort(s string) (string, error) {
	port, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || (proto != "tcp" && proto != "udp" && proto != "sctp") {
		return "", fmt.Errorf("config.exposed_ports: bad port %q: want PORT or PORT/tcp|udp|sctp", s)
	}
	return strconv.Itoa(n) + "/" + proto, nil
}

// describeJSONError rewrites encoding/json errors into messages a spec
// author can act on: a line and column for syntax errors, the JSON field
// path and expected kind for type errors.
func describeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		// Offset counts the offending byte itself.
		line, col := position(data, syn.Offset-1)
		return fmt.Errorf("invalid JSON at line %d, column %d: %v", line, col, syn)
	case errors.As(err, &typ):
		line, col := position(data, typ.Offset)
		return fmt.Errorf("field %q (line %d, column %d): got JSON %s, want %s", typ.Field, line, col, typ.Value, kindName(typ.Type))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: empty or truncated document")
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		return fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return fmt.Errorf("invalid JSON: %v", err)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Bool:
		return "a boolean"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return t.String()
}

func position(data []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}
