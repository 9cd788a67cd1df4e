package ociimage

import (
	"context"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// layoutPrefix marks a base or copy source that is an OCI image layout
// directory rather than a registry reference.
const layoutPrefix = "oci:"

// base is the image every platform's layers go on top of. A scratch base
// has no candidates; otherwise there is one candidate per image the base
// offers, and each platform picks its own.
type base struct {
	name       string // as the spec gave it, for messages
	scratch    bool
	candidates []candidate
}

// candidate is one image of a base. Images are opened only when picked, so
// a registry base pulls nothing for platforms that are not built.
type candidate struct {
	platform v1.Platform
	open     func() (v1.Image, error)
}

// openBase resolves the spec's base: "scratch", "oci:PATH" or a registry
// reference.
func openBase(ctx context.Context, spec string, opts Options) (*base, error) {
	b := &base{name: spec}
	switch {
	case spec == "scratch":
		b.scratch = true
		return b, nil
	case strings.HasPrefix(spec, layoutPrefix):
		dir := strings.TrimPrefix(spec, layoutPrefix)
		idx, err := layout.ImageIndexFromPath(dir)
		if err != nil {
			return nil, fmt.Errorf("base %s: not a readable OCI image layout: %v", spec, err)
		}
		if b.candidates, err = indexCandidates(idx); err != nil {
			return nil, fmt.Errorf("base %s: %w", spec, err)
		}
		return b, nil
	}
	ref, err := parseRef(spec, opts)
	if err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	desc, err := remote.Get(ref, remoteOptions(ctx)...)
	if err != nil {
		return nil, registryError("pulling base", ref, err)
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, registryError("pulling base", ref, err)
		}
		if b.candidates, err = indexCandidates(idx); err != nil {
			return nil, registryError("pulling base", ref, err)
		}
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, registryError("pulling base", ref, err)
		}
		p, err := imagePlatform(img)
		if err != nil {
			return nil, registryError("pulling base", ref, err)
		}
		b.candidates = []candidate{{platform: p, open: func() (v1.Image, error) { return img, nil }}}
	default:
		return nil, fmt.Errorf("base %s: %s is not an image or image index", spec, desc.MediaType)
	}
	return b, nil
}

// indexCandidates lists the images of idx, descending into nested indexes
// (an OCI layout's index.json often points at one image index). Entries
// that are neither images nor indexes, such as attestations stored as
// artifacts, are skipped.
func indexCandidates(idx v1.ImageIndex) ([]candidate, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			cs, err := indexCandidates(child)
			if err != nil {
				return nil, err
			}
			out = append(out, cs...)
		case d.MediaType.IsImage():
			open := func() (v1.Image, error) { return idx.Image(d.Digest) }
			var p v1.Platform
			if d.Platform != nil {
				p = *d.Platform
			} else {
				// Single-image layouts (buildah push oci:DIR) carry no
				// platform on the descriptor: the config has it.
				img, err := open()
				if err != nil {
					return nil, err
				}
				if p, err = imagePlatform(img); err != nil {
					return nil, err
				}
			}
			out = append(out, candidate{platform: p, open: open})
		}
	}
	return out, nil
}

// imagePlatform reads an image's platform from its config.
func imagePlatform(img v1.Image) (v1.Platform, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Platform{}, err
	}
	if p := cf.Platform(); p != nil {
		return *p, nil
	}
	return v1.Platform{}, nil
}

// imageFor picks the base image for want. os and architecture must match;
// a variant asked for must match too (arm64's default v8 matches no
// variant); with no variant asked for, an image without one is preferred
// and otherwise the variant must be unambiguous.
func (b *base) imageFor(want v1.Platform) (v1.Image, error) {
	var matches []candidate
	for _, c := range b.candidates {
		if c.platform.OS != want.OS || c.platform.Architecture != want.Architecture {
			continue
		}
		if want.Variant != "" && normVariant(c.platform) != normVariant(want) {
			continue
		}
		matches = append(matches, c)
	}
	if len(matches) > 1 && want.Variant == "" {
		var plain []candidate
		for _, c := range matches {
			if normVariant(c.platform) == "" {
				plain = append(plain, c)
			}
		}
		if len(plain) > 0 {
			matches = plain
		}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("base %s has no image for %s; it has: %s", b.name, platformString(want), b.platformList())
	case 1:
		img, err := matches[0].open()
		if err != nil {
			return nil, fmt.Errorf("base %s: opening the %s image: %w", b.name, platformString(want), err)
		}
		return img, nil
	default:
		return nil, fmt.Errorf("base %s has %d images for %s; name the platform with its variant (it has: %s)", b.name, len(matches), platformString(want), b.platformList())
	}
}

// normVariant treats arm64's implied v8 as no variant, as the OCI image
// spec allows both spellings.
func normVariant(p v1.Platform) string {
	if p.Architecture == "arm64" && p.Variant == "v8" {
		return ""
	}
	return p.Variant
}

// platformList names the base's platforms for error messages, leaving out
// the unknown/unknown entries that attestation manifests use.
func (b *base) platformList() string {
	seen := map[string]bool{}
	var names []string
	for _, c := range b.candidates {
		s := platformString(c.platform)
		if c.platform.OS == "unknown" || seen[s] {
			continue
		}
		seen[s] = true
		names = append(names, s)
	}
	if len(names) == 0 {
		return "no platform images"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// platformString spells a platform os/arch[/variant], as specs do.
func platformString(p v1.Platform) string {
	if p.OS == "" && p.Architecture == "" {
		return "(no platform in config)"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
