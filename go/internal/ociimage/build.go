package ociimage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/polybuild/polybuild-helper/internal/ocilayer"
)

// Result is what `image build` prints.
type Result struct {
	Digest    string           `json:"digest"`
	Manifests []ManifestResult `json:"manifests"`
}

// ManifestResult is one platform's image manifest in the built index.
type ManifestResult struct {
	Platform string `json:"platform"` // as the spec spelled it
	Digest   string `json:"digest"`
}

// Build assembles the spec's image index and writes it as the OCI image
// layout layoutDir, replacing whatever layout was there.
func Build(ctx context.Context, spec *Spec, layoutDir string, opts Options) (*Result, error) {
	layoutDir, err := prepareLayoutDir(layoutDir)
	if err != nil {
		return nil, err
	}
	b, err := openBase(ctx, spec.Base, opts)
	if err != nil {
		return nil, err
	}
	// Compressed layers are staged as files, not in memory, next to the
	// output: that file system has to hold them anyway, and /tmp may be a
	// small tmpfs.
	staging, err := os.MkdirTemp(filepath.Dir(layoutDir), "."+filepath.Base(layoutDir)+".layers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	res := &Result{}
	for i, ps := range spec.Platforms {
		img, plat, err := buildPlatform(b, spec, ps, filepath.Join(staging, fmt.Sprint(i)))
		if err != nil {
			return nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ps.Platform, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: plat},
		})
		res.Manifests = append(res.Manifests, ManifestResult{Platform: ps.Platform, Digest: d.String()})
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	res.Digest = d.String()
	if err := writeLayout(layoutDir, idx, spec.Name); err != nil {
		return nil, err
	}
	return res, nil
}

// buildPlatform builds one platform's image: the base's layers, then the
// spec's, under the merged config. It returns the platform for the index
// descriptor, taken from the config so that it matches what the image says.
func buildPlatform(b *base, spec *Spec, ps PlatformSpec, staging string) (v1.Image, *v1.Platform, error) {
	want, err := ParsePlatform(ps.Platform)
	if err != nil {
		return nil, nil, err
	}
	created := spec.CreatedTime()

	cf := &v1.ConfigFile{
		OS:           want.OS,
		Architecture: want.Architecture,
		Variant:      want.Variant,
		RootFS:       v1.RootFS{Type: "layers"},
	}
	var adds []mutate.Addendum
	if !b.scratch {
		baseImg, err := b.imageFor(want)
		if err != nil {
			return nil, nil, err
		}
		if cf, adds, err = baseParts(baseImg); err != nil {
			return nil, nil, fmt.Errorf("base %s (%s): %w", b.name, ps.Platform, err)
		}
	}

	if err := os.MkdirAll(staging, 0o700); err != nil {
		return nil, nil, err
	}
	for j, ls := range ps.Layers {
		layer, err := writeLayer(filepath.Join(staging, fmt.Sprintf("%d.tar.gz", j)), ls, created)
		if err != nil {
			return nil, nil, fmt.Errorf("%s layer %d (%s): %w", ps.Platform, j, ls.Comment, err)
		}
		diffID, err := layer.DiffID()
		if err != nil {
			return nil, nil, err
		}
		createdBy := "polybuild"
		if ls.Comment != "" {
			createdBy += ": " + ls.Comment
		}
		adds = append(adds, mutate.Addendum{Layer: layer, MediaType: types.OCILayer})
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, diffID)
		cf.History = append(cf.History, v1.History{Created: v1.Time{Time: created}, CreatedBy: createdBy})
	}

	cf.Created = v1.Time{Time: created}
	mergeConfig(&cf.Config, spec.Config)

	// Every image starts from an empty OCI image so that manifest, config
	// and layers all get OCI media types, whatever the base used. The
	// config is set last, replacing the placeholder history that Append
	// records for each layer.
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, nil, err
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, nil, err
	}
	plat := cf.Platform()
	if plat == nil {
		plat = &want
	}
	return img, plat, nil
}

// baseParts returns a copy of the base image's config and its layers as
// addenda with OCI media types (a Docker layer is byte-for-byte an OCI one;
// only the descriptor's media type differs).
func baseParts(img v1.Image) (*v1.ConfigFile, []mutate.Addendum, error) {
	cf0, err := img.ConfigFile()
	if err != nil {
		return nil, nil, err
	}
	cf := cf0.DeepCopy()
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, err
	}
	cf.RootFS.Type = "layers"
	cf.RootFS.DiffIDs = nil
	adds := make([]mutate.Addendum, 0, len(layers))
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return nil, nil, err
		}
		diffID, err := l.DiffID()
		if err != nil {
			return nil, nil, err
		}
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, diffID)
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: ociLayerType(mt)})
	}
	return cf, adds, nil
}

func ociLayerType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	}
	return mt
}

// writeLayer writes one spec layer to path and opens it as a layer.
func writeLayer(path string, ls LayerSpec, created time.Time) (v1.Layer, error) {
	entries := make([]ocilayer.Entry, len(ls.Entries))
	for i, e := range ls.Entries {
		entries[i] = ocilayer.Entry{Src: e.Src, Dest: e.Dest, Mode: e.Mode}
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := ocilayer.Write(f, entries, created); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromFile(path, tarball.WithMediaType(types.OCILayer))
}

// mergeConfig applies the spec's config onto the base's. Given entrypoint
// or cmd replace the base's; as in a Dockerfile, a new entrypoint without a
// cmd also drops the base's cmd, which was meant as arguments to the old
// entrypoint. A workdir or user given replaces the base's. Env entries
// replace same-named ones in place and new ones are appended in name
// order; labels and exposed ports are merged.
func mergeConfig(c *v1.Config, s ConfigSpec) {
	if s.Entrypoint != nil {
		c.Entrypoint = append([]string{}, *s.Entrypoint...)
		if s.Cmd == nil {
			c.Cmd = nil
		}
	}
	if s.Cmd != nil {
		c.Cmd = append([]string{}, *s.Cmd...)
	}
	if s.Workdir != "" {
		c.WorkingDir = s.Workdir
	}
	if s.User != "" {
		c.User = s.User
	}
	c.Env = mergeEnv(c.Env, s.Env)
	if len(s.Labels) > 0 {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for k, v := range s.Labels {
			c.Labels[k] = v
		}
	}
	if len(s.ExposedPorts) > 0 {
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range s.ExposedPorts {
			n, _ := normalizePort(p) // validated with the spec
			c.ExposedPorts[n] = struct{}{}
		}
	}
}

func mergeEnv(base []string, set map[string]string) []string {
	if len(set) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(set))
	done := map[string]bool{}
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if v, ok := set[k]; ok {
			if done[k] {
				continue // a duplicate in the base: keep one, replaced
			}
			kv = k + "=" + v
			done[k] = true
		}
		out = append(out, kv)
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		if !done[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+set[k])
	}
	return out
}
