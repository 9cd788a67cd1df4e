package ociimage

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push pushes what the layout at dir holds (see loadLayout) to ref and
// returns the pushed digest.
func Push(ctx context.Context, dir, ref string, opts Options) (string, error) {
	t, d, err := loadLayoutDigest(dir)
	if err != nil {
		return "", err
	}
	r, err := parseRef(ref, opts)
	if err != nil {
		return "", err
	}
	if err := checkDigestRef(r, d); err != nil {
		return "", err
	}
	if err := write(ctx, r, t); err != nil {
		return "", registryError("pushing to", r, err)
	}
	return d.String(), nil
}

// Copy copies src (a registry reference or oci:DIR) to the registry
// reference dst with every platform, leaving the manifests byte for byte as
// they are so that dst has src's digest, and checks that it does.
func Copy(ctx context.Context, src, dst string, opts Options) (string, error) {
	dstRef, err := parseRef(dst, opts)
	if err != nil {
		return "", err
	}
	var t target
	if dir, ok := strings.CutPrefix(src, layoutPrefix); ok {
		if t, err = loadLayout(dir); err != nil {
			return "", err
		}
	} else {
		srcRef, err := parseRef(src, opts)
		if err != nil {
			return "", err
		}
		if t, err = remoteTarget(ctx, srcRef); err != nil {
			return "", registryError("reading source", srcRef, err)
		}
	}
	want, err := t.digest()
	if err != nil {
		return "", fmt.Errorf("source %s: %v", src, err)
	}
	if err := checkDigestRef(dstRef, want); err != nil {
		return "", err
	}
	if err := write(ctx, dstRef, t); err != nil {
		return "", registryError("copying to", dstRef, err)
	}
	got, err := remoteDigest(ctx, dstRef)
	if err != nil {
		return "", registryError("checking the copy at", dstRef, err)
	}
	if got != want {
		return "", fmt.Errorf("copy to %s: the registry has %s there, not the source's %s", dstRef, got, want)
	}
	return want.String(), nil
}

// remoteTarget fetches ref's manifest and keeps it as it is: an index with
// all its platforms, or a single image.
func remoteTarget(ctx context.Context, ref name.Reference) (target, error) {
	desc, err := remote.Get(ref, remoteOptions(ctx)...)
	if err != nil {
		return target{}, err
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		return target{index: idx}, err
	case desc.MediaType.IsSchema1():
		return target{}, fmt.Errorf("%s is a Docker schema 1 manifest, which cannot be copied unchanged", desc.MediaType)
	default:
		img, err := desc.Image()
		return target{image: img}, err
	}
}

func write(ctx context.Context, ref name.Reference, t target) error {
	if t.index != nil {
		return remote.WriteIndex(ref, t.index, remoteOptions(ctx)...)
	}
	return remote.Write(ref, t.image, remoteOptions(ctx)...)
}

// remoteDigest asks the registry which digest ref now names: HEAD first,
// and GET for registries that do not answer HEAD for manifests.
func remoteDigest(ctx context.Context, ref name.Reference) (v1.Hash, error) {
	desc, err := remote.Head(ref, remoteOptions(ctx)...)
	if err == nil {
		return desc.Digest, nil
	}
	full, err := remote.Get(ref, remoteOptions(ctx)...)
	if err != nil {
		return v1.Hash{}, err
	}
	return full.Digest, nil
}

// checkDigestRef rejects a destination written as repo@sha256:... that is
// not the digest being written: the registry would refuse it less clearly.
func checkDigestRef(ref name.Reference, d v1.Hash) error {
	if dr, ok := ref.(name.Digest); ok && dr.DigestStr() != d.String() {
		return fmt.Errorf("destination %s names digest %s, but the image to write is %s", ref, dr.DigestStr(), d)
	}
	return nil
}
