package ociimage

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// newRegistry serves go-containerregistry's in-memory registry on
// 127.0.0.1, which go-containerregistry talks to over plain HTTP.
func newRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func remoteDigestOf(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest.String()
}

func TestPushAndCopyRoundTrip(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	f := newFixture(t, time.Now(), 0o644)
	dir := filepath.Join(t.TempDir(), "layout")
	res := mustBuild(t, f.spec("scratch"), dir)

	pushed, err := Push(ctx, dir, reg+"/team/frontend:1.2.3", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pushed != res.Digest || remoteDigestOf(t, reg+"/team/frontend:1.2.3") != res.Digest {
		t.Fatalf("pushed %s, build said %s", pushed, res.Digest)
	}

	// Promote to another repository and tag: same digest, all platforms.
	copied, err := Copy(ctx, reg+"/team/frontend:1.2.3", reg+"/prod/frontend:stable", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if copied != res.Digest || remoteDigestOf(t, reg+"/prod/frontend:stable") != res.Digest {
		t.Fatalf("copied %s, want %s", copied, res.Digest)
	}
	ref, _ := name.ParseReference(reg + "/prod/frontend:stable")
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("copied index has %d manifests", len(im.Manifests))
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		for _, l := range layers { // every blob arrived
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			rc.Close()
		}
	}

	// From the layout directly, and to a digest reference.
	copied, err = Copy(ctx, "oci:"+dir, reg+"/mirror/frontend@"+res.Digest, Options{})
	if err != nil || copied != res.Digest {
		t.Fatalf("copy from layout: %s, %v", copied, err)
	}

	// A base from the registry: build on it for one of its platforms.
	c := int64(created)
	spec := &Spec{Base: reg + "/prod/frontend:stable", Created: &c, Platforms: []PlatformSpec{{Platform: "linux/arm64"}}}
	res2, err := Build(ctx, spec, filepath.Join(t.TempDir(), "on-registry-base"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Manifests) != 1 {
		t.Fatalf("result %+v", res2)
	}
	spec.Platforms[0].Platform = "linux/s390x"
	if _, err := Build(ctx, spec, filepath.Join(t.TempDir(), "x"), Options{}); err == nil ||
		!strings.Contains(err.Error(), "has no image for linux/s390x; it has: linux/amd64, linux/arm64") {
		t.Errorf("err = %v", err)
	}
}

// TestPushSingleAndSeveralImages covers layouts as buildah writes them (one
// image manifest in index.json) and layouts holding several images.
func TestPushSingleAndSeveralImages(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	one, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	two, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}

	single := filepath.Join(t.TempDir(), "single")
	p, err := layout.Write(single, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(one); err != nil {
		t.Fatal(err)
	}
	want, _ := one.Digest()
	got, err := Push(ctx, single, reg+"/single:1", Options{})
	if err != nil || got != want.String() || remoteDigestOf(t, reg+"/single:1") != want.String() {
		t.Fatalf("single image: pushed %s (%v), want %s", got, err, want)
	}
	if d, _ := LayoutDigest(single); d != want.String() {
		t.Errorf("LayoutDigest = %s, want %s", d, want)
	}

	if err := p.AppendImage(two); err != nil {
		t.Fatal(err)
	}
	got, err = Push(ctx, single, reg+"/several:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := LayoutDigest(single); d != got || remoteDigestOf(t, reg+"/several:1") != got {
		t.Errorf("several images: pushed %s, layout digest %s", got, d)
	}
	ref, _ := name.ParseReference(reg + "/several:1")
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType != types.OCIImageIndex {
		t.Errorf("several images pushed as %s", desc.MediaType)
	}
}

func TestRegistryErrors(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, time.Now(), 0o644)
	dir := filepath.Join(t.TempDir(), "layout")
	mustBuild(t, f.spec("scratch"), dir)

	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
	}))
	defer denied.Close()
	deniedHost := strings.TrimPrefix(denied.URL, "http://")
	reg := newRegistry(t)

	cases := []struct {
		name string
		run  func() error
		want []string
	}{
		{"refused", func() error { _, err := Push(ctx, dir, closed+"/app:1", Options{}); return err },
			[]string{"pushing to " + closed + "/app:1: cannot connect to registry " + closed + ": connection refused"}},
		{"unauthorized", func() error { _, err := Push(ctx, dir, deniedHost+"/app:1", Options{}); return err },
			[]string{"registry " + deniedHost + " answered 401 Unauthorized", "hint: check the credentials"}},
		{"copy of a missing tag", func() error { _, err := Copy(ctx, reg+"/nothing:here", reg+"/b:1", Options{}); return err },
			[]string{"reading source " + reg + "/nothing:here: registry " + reg + " answered 404 Not Found"}},
		{"bad ref", func() error { _, err := Push(ctx, dir, "UPPER/Case:1", Options{}); return err },
			[]string{`bad image reference "UPPER/Case:1"`}},
		{"not a layout", func() error { _, err := Push(ctx, t.TempDir(), reg+"/a:1", Options{}); return err },
			[]string{"is not a readable OCI image layout"}},
		{"wrong digest ref", func() error {
			_, err := Push(ctx, dir, reg+"/a@sha256:"+strings.Repeat("0", 64), Options{})
			return err
		}, []string{"names digest sha256:000"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.run()
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}
