package ociimage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// annotationRefName is the OCI annotation that names an index.json entry.
const annotationRefName = "org.opencontainers.image.ref.name"

// prepareLayoutDir returns dir made absolute, with its parent created,
// after checking that an existing dir may be replaced: only an empty
// directory or an OCI layout is, so a wrong path cannot delete unrelated
// files. It runs before any work so that such a mistake fails fast.
func prepareLayoutDir(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := checkReplaceable(dir); err != nil {
		return "", err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", parent, err)
	}
	return dir, nil
}

// writeLayout writes idx as the only entry of a new OCI image layout at
// dir (from prepareLayoutDir). The layout is written next to dir and
// renamed into place, so a reader sees the old layout or the new one,
// never a half-written one.
func writeLayout(dir string, idx v1.ImageIndex, refName string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("creating a temporary layout next to %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return fmt.Errorf("writing layout: %w", err)
	}
	var lopts []layout.Option
	if refName != "" {
		lopts = append(lopts, layout.WithAnnotations(map[string]string{annotationRefName: refName}))
	}
	if err := p.AppendIndex(idx, lopts...); err != nil {
		return fmt.Errorf("writing layout: %w", err)
	}
	if err := makeReadable(tmp); err != nil {
		return err
	}

	// rename(2) cannot replace a non-empty directory, so the old layout is
	// moved aside first and removed after the new one is in place.
	old := tmp + ".old"
	hadOld := true
	if err := os.Rename(dir, old); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("moving the previous %s aside: %w", dir, err)
		}
		hadOld = false
	}
	if err := os.Rename(tmp, dir); err != nil {
		if hadOld {
			os.Rename(old, dir)
		}
		return fmt.Errorf("moving the new layout to %s: %w", dir, err)
	}
	if hadOld {
		return os.RemoveAll(old)
	}
	return nil
}

// makeReadable gives the layout the usual 0755/0644 modes: blobs are
// written as private temp files, and the layout may be read by another
// user, such as a rootless container tool.
func makeReadable(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
}

func checkReplaceable(dir string) error {
	info, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("refusing to replace %s: it exists and is not a directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err == nil {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("refusing to replace %s: it is a non-empty directory and not an OCI image layout (no oci-layout file)", dir)
	}
	return nil
}

// target is what a layout holds for push, copy and digest: one image index
// or one image.
type target struct {
	index v1.ImageIndex
	image v1.Image
}

func (t target) digest() (v1.Hash, error) {
	if t.index != nil {
		return t.index.Digest()
	}
	return t.image.Digest()
}

// taggable is the target as remote.Write/WriteIndex take it.
func (t target) taggable() remote.Taggable {
	if t.index != nil {
		return t.index
	}
	return t.image
}

// loadLayout reads what an OCI layout's index.json references: one image
// index (what build writes) is taken as is; one image manifest (what
// `buildah push IMG oci:DIR` writes) is taken as that image; several image
// manifests are gathered into a new image index, in index.json order.
func loadLayout(dir string) (target, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return target{}, fmt.Errorf("%s is not a readable OCI image layout: %v", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return target{}, fmt.Errorf("%s/index.json: %v", dir, err)
	}
	var indexes, images []v1.Descriptor
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			indexes = append(indexes, d)
		case d.MediaType.IsImage():
			images = append(images, d)
		}
	}
	switch {
	case len(indexes) == 1 && len(images) == 0:
		child, err := idx.ImageIndex(indexes[0].Digest)
		if err != nil {
			return target{}, fmt.Errorf("%s: %v", dir, err)
		}
		return target{index: child}, nil
	case len(indexes) == 0 && len(images) == 1:
		img, err := idx.Image(images[0].Digest)
		if err != nil {
			return target{}, fmt.Errorf("%s: %v", dir, err)
		}
		return target{image: img}, nil
	case len(indexes) == 0 && len(images) > 1:
		out := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
		for _, d := range images {
			img, err := idx.Image(d.Digest)
			if err != nil {
				return target{}, fmt.Errorf("%s: %v", dir, err)
			}
			plat := d.Platform
			if plat == nil {
				p, err := imagePlatform(img)
				if err != nil {
					return target{}, fmt.Errorf("%s: %v", dir, err)
				}
				if p.OS != "" {
					plat = &p
				}
			}
			out = mutate.AppendManifests(out, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
		}
		return target{index: out}, nil
	}
	return target{}, fmt.Errorf("%s/index.json references %d image indexes and %d images; expected one image index, or images only", dir, len(indexes), len(images))
}

// LayoutDigest is the digest `image push` would push for the layout.
func LayoutDigest(dir string) (string, error) {
	_, d, err := loadLayoutDigest(dir)
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// loadLayoutDigest reads the layout at dir and the digest of what it holds.
func loadLayoutDigest(dir string) (target, v1.Hash, error) {
	t, err := loadLayout(dir)
	if err != nil {
		return target{}, v1.Hash{}, err
	}
	d, err := t.digest()
	if err != nil {
		return target{}, v1.Hash{}, fmt.Errorf("%s: %v", dir, err)
	}
	return t, d, nil
}
