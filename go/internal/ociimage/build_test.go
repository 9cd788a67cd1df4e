package ociimage

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const created = 1700000000

// fixture is a host tree for specs: a binary per platform and a package
// directory, written with the given host mtime and permissions.
type fixture struct {
	root string
}

func newFixture(t *testing.T, hostTime time.Time, fileMode os.FileMode) fixture {
	t.Helper()
	f := fixture{root: t.TempDir()}
	write := func(rel, data string, perm os.FileMode) {
		p := filepath.Join(f.root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, hostTime, hostTime); err != nil {
			t.Fatal(err)
		}
	}
	write("amd64/operator", "ELF amd64 operator\n", 0o755)
	write("arm64/operator", "ELF arm64 operator\n", 0o755)
	write("site/pkg/__init__.py", "", fileMode)
	write("site/pkg/core.py", "def main(): pass\n", fileMode)
	return f
}

func (f fixture) path(rel string) string { return filepath.Join(f.root, rel) }

// spec returns a two-platform spec over the fixture.
func (f fixture) spec(base string) *Spec {
	c := int64(created)
	entry := []string{"operator"}
	cmd := []string{"serve"}
	plat := func(p, arch string) PlatformSpec {
		return PlatformSpec{Platform: p, Layers: []LayerSpec{
			{Comment: "site-packages", Entries: []EntrySpec{{Src: f.path("site"), Dest: "/usr/lib/python3/site-packages"}}},
			{Comment: "bin/operator", Entries: []EntrySpec{{Src: f.path(arch + "/operator"), Dest: "/usr/local/bin/operator"}}},
		}}
	}
	return &Spec{
		Name:      "frontend:1.2.3",
		Base:      base,
		Created:   &c,
		Platforms: []PlatformSpec{plat("linux/amd64", "amd64"), plat("linux/arm64", "arm64")},
		Config: ConfigSpec{
			Entrypoint:   &entry,
			Cmd:          &cmd,
			Env:          map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin", "APP": "frontend"},
			Workdir:      "/srv",
			User:         "1000",
			Labels:       map[string]string{"org.opencontainers.image.version": "1.2.3"},
			ExposedPorts: []string{"8080/tcp", "9090"},
		},
	}
}

func mustBuild(t *testing.T, spec *Spec, dir string) *Result {
	t.Helper()
	res, err := Build(context.Background(), spec, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// readLayout returns the layout's index.json and the image index it names.
func readLayout(t *testing.T, dir string) (*v1.IndexManifest, v1.ImageIndex) {
	t.Helper()
	lp, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Manifests) != 1 {
		t.Fatalf("index.json has %d entries, want 1", len(top.Manifests))
	}
	idx, err := lp.ImageIndex(top.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return top, idx
}

func platformImage(t *testing.T, idx v1.ImageIndex, os, arch string) v1.Image {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == os && d.Platform.Architecture == arch {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no %s/%s image in index", os, arch)
	return nil
}

func TestBuildIsReproducible(t *testing.T) {
	// Different directories, host mtimes and non-exec permissions: only the
	// contents are the same.
	a := newFixture(t, time.Unix(1111111111, 0), 0o644)
	b := newFixture(t, time.Unix(1222222222, 0), 0o600)
	out := t.TempDir()
	r1 := mustBuild(t, a.spec("scratch"), filepath.Join(out, "one"))
	time.Sleep(1100 * time.Millisecond) // the build time must not leak in
	r2 := mustBuild(t, b.spec("scratch"), filepath.Join(out, "two"))
	if !reflect.DeepEqual(r1, r2) {
		t.Fatalf("builds differ:\n%+v\n%+v", r1, r2)
	}
	d, err := LayoutDigest(filepath.Join(out, "two"))
	if err != nil {
		t.Fatal(err)
	}
	if d != r1.Digest {
		t.Errorf("layout digest %s, build said %s", d, r1.Digest)
	}

	// A changed file changes the digest.
	if err := os.WriteFile(b.path("site/pkg/core.py"), []byte("def main(): return 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r3 := mustBuild(t, b.spec("scratch"), filepath.Join(out, "three"))
	if r3.Digest == r1.Digest {
		t.Error("changing a file kept the index digest")
	}
}

func TestBuildMultiPlatformIndex(t *testing.T) {
	f := newFixture(t, time.Now(), 0o644)
	dir := filepath.Join(t.TempDir(), "layout")
	res := mustBuild(t, f.spec("scratch"), dir)

	top, idx := readLayout(t, dir)
	if got := top.Manifests[0].Annotations[annotationRefName]; got != "frontend:1.2.3" {
		t.Errorf("ref.name = %q", got)
	}
	if top.Manifests[0].MediaType != types.OCIImageIndex || top.Manifests[0].Digest.String() != res.Digest {
		t.Errorf("index.json entry = %+v, want the OCI index %s", top.Manifests[0], res.Digest)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index: %s with %d manifests", im.MediaType, len(im.Manifests))
	}
	for i, want := range []string{"linux/amd64", "linux/arm64"} {
		d := im.Manifests[i]
		if platformString(*d.Platform) != want || res.Manifests[i].Platform != want || res.Manifests[i].Digest != d.Digest.String() {
			t.Errorf("manifest %d: %s %s, result %+v", i, platformString(*d.Platform), d.Digest, res.Manifests[i])
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
			t.Errorf("%s: manifest %s, config %s", want, m.MediaType, m.Config.MediaType)
		}
		for _, l := range m.Layers {
			if l.MediaType != types.OCILayer {
				t.Errorf("%s: layer media type %s", want, l.MediaType)
			}
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if platformString(*cf.Platform()) != want {
			t.Errorf("config platform %v, want %s", cf.Platform(), want)
		}
		if !cf.Created.Equal(time.Unix(created, 0)) || len(cf.History) != 2 ||
			cf.History[1].CreatedBy != "polybuild: bin/operator" || !cf.History[1].Created.Equal(time.Unix(created, 0)) {
			t.Errorf("config times/history: %v %+v", cf.Created, cf.History)
		}
		files := layerFiles(t, img, 1, created)
		if want := "ELF " + strings.TrimPrefix(want, "linux/") + " operator\n"; files["usr/local/bin/operator"] != want {
			t.Errorf("operator = %q, want %q", files["usr/local/bin/operator"], want)
		}
	}
}

// layerFiles reads layer i of img: path -> contents ("<dir>" for a
// directory), checking the layer's headers on the way.
func layerFiles(t *testing.T, img v1.Image, i int, mtime int64) map[string]string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[i].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]string{}
	prev := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name <= prev {
			t.Errorf("%q after %q: not sorted", h.Name, prev)
		}
		prev = h.Name
		if !h.ModTime.Equal(time.Unix(mtime, 0)) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v owner %d:%d %q:%q", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.Typeflag == tar.TypeDir {
			files[h.Name] = "<dir>"
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = string(data)
	}
}

func TestBuildLayerContents(t *testing.T) {
	f := newFixture(t, time.Now(), 0o600)
	dir := filepath.Join(t.TempDir(), "layout")
	mustBuild(t, f.spec("scratch"), dir)
	_, idx := readLayout(t, dir)
	img := platformImage(t, idx, "linux", "amd64")
	got := layerFiles(t, img, 0, created)
	want := map[string]string{
		"usr/":                               "<dir>",
		"usr/lib/":                           "<dir>",
		"usr/lib/python3/":                   "<dir>",
		"usr/lib/python3/site-packages/":     "<dir>",
		"usr/lib/python3/site-packages/pkg/": "<dir>",
		"usr/lib/python3/site-packages/pkg/__init__.py": "",
		"usr/lib/python3/site-packages/pkg/core.py":     "def main(): pass\n",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layer 0 = %v\nwant %v", got, want)
	}
}

// TestBuildOnLayoutBase builds an image, then builds on top of its layout:
// the base's layers stay first and unchanged, the config is merged.
func TestBuildOnLayoutBase(t *testing.T) {
	f := newFixture(t, time.Now(), 0o644)
	tmp := t.TempDir()
	baseDir := filepath.Join(tmp, "base")
	mustBuild(t, f.spec("scratch"), baseDir)
	_, baseIdx := readLayout(t, baseDir)

	c := int64(created + 100)
	entry := []string{"/usr/local/bin/app"}
	spec := &Spec{
		Base:    "oci:" + baseDir,
		Created: &c,
		Platforms: []PlatformSpec{{Platform: "linux/arm64", Layers: []LayerSpec{{
			Comment: "app", Entries: []EntrySpec{{Src: f.path("arm64/operator"), Dest: "/usr/local/bin/app"}},
		}}}},
		Config: ConfigSpec{
			Entrypoint: &entry,
			Env:        map[string]string{"PATH": "/bin", "NEW": "1"},
			Labels:     map[string]string{"extra": "yes"},
		},
	}
	dir := filepath.Join(tmp, "app")
	mustBuild(t, spec, dir)
	_, idx := readLayout(t, dir)
	img := platformImage(t, idx, "linux", "arm64")
	base := platformImage(t, baseIdx, "linux", "arm64")

	bm, _ := base.Manifest()
	m, _ := img.Manifest()
	if len(m.Layers) != len(bm.Layers)+1 {
		t.Fatalf("%d layers, want base's %d + 1", len(m.Layers), len(bm.Layers))
	}
	for i := range bm.Layers {
		if m.Layers[i].Digest != bm.Layers[i].Digest {
			t.Errorf("layer %d = %s, want base's %s", i, m.Layers[i].Digest, bm.Layers[i].Digest)
		}
	}
	if files := layerFiles(t, img, 2, c); files["usr/local/bin/app"] != "ELF arm64 operator\n" {
		t.Errorf("top layer = %v", files)
	}

	cf, _ := img.ConfigFile()
	if len(cf.History) != 3 || cf.History[2].CreatedBy != "polybuild: app" || !cf.Created.Equal(time.Unix(c, 0)) {
		t.Errorf("history %+v created %v", cf.History, cf.Created)
	}
	cfg := cf.Config
	// Base env was APP, PATH (new entries in name order); PATH replaced in
	// place, NEW appended.
	if want := []string{"APP=frontend", "PATH=/bin", "NEW=1"}; !reflect.DeepEqual(cfg.Env, want) {
		t.Errorf("env = %v, want %v", cfg.Env, want)
	}
	if want := map[string]string{"org.opencontainers.image.version": "1.2.3", "extra": "yes"}; !reflect.DeepEqual(cfg.Labels, want) {
		t.Errorf("labels = %v", cfg.Labels)
	}
	// A new entrypoint drops the base's cmd; workdir, user and ports are
	// kept.
	if !reflect.DeepEqual(cfg.Entrypoint, entry) || cfg.Cmd != nil || cfg.WorkingDir != "/srv" || cfg.User != "1000" {
		t.Errorf("entrypoint %v cmd %v workdir %q user %q", cfg.Entrypoint, cfg.Cmd, cfg.WorkingDir, cfg.User)
	}
	if _, ok := cfg.ExposedPorts["9090/tcp"]; !ok || len(cfg.ExposedPorts) != 2 {
		t.Errorf("exposed ports = %v", cfg.ExposedPorts)
	}
}

// TestBuildOnDockerImageLayout uses a base like `buildah push --format
// docker IMG oci:DIR` could give: index.json naming one Docker-typed image,
// with no platform on the descriptor. The result must be all OCI.
func TestBuildOnDockerImageLayout(t *testing.T) {
	f := newFixture(t, time.Now(), 0o644)
	baseImg, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := baseImg.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Cmd = []string{"python3"}
	if baseImg, err = mutate.ConfigFile(baseImg, cf); err != nil {
		t.Fatal(err)
	}
	baseDir := filepath.Join(t.TempDir(), "base")
	p, err := layout.Write(baseDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(baseImg); err != nil {
		t.Fatal(err)
	}
	if mt, _ := baseImg.MediaType(); mt != types.DockerManifestSchema2 {
		t.Fatalf("fixture base is %s, want a Docker manifest", mt)
	}

	spec := f.spec("oci:" + baseDir)
	spec.Platforms = spec.Platforms[:1]
	spec.Config.Entrypoint = nil
	spec.Config.Cmd = nil
	dir := filepath.Join(t.TempDir(), "out")
	mustBuild(t, spec, dir)
	_, idx := readLayout(t, dir)
	img := platformImage(t, idx, "linux", "amd64")
	m, _ := img.Manifest()
	bm, _ := baseImg.Manifest()
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 4 {
		t.Fatalf("manifest %s config %s, %d layers", m.MediaType, m.Config.MediaType, len(m.Layers))
	}
	for i, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer %d: %s", i, l.MediaType)
		}
		if i < 2 && l.Digest != bm.Layers[i].Digest {
			t.Errorf("base layer %d digest changed", i)
		}
	}
	got, _ := img.ConfigFile()
	if !reflect.DeepEqual(got.Config.Cmd, []string{"python3"}) || len(got.RootFS.DiffIDs) != 4 {
		t.Errorf("cmd %v, %d diff ids", got.Config.Cmd, len(got.RootFS.DiffIDs))
	}
}

func TestBuildErrors(t *testing.T) {
	f := newFixture(t, time.Now(), 0o644)
	tmp := t.TempDir()
	baseDir := filepath.Join(tmp, "base")
	amd := f.spec("scratch")
	amd.Platforms = amd.Platforms[:1]
	mustBuild(t, amd, baseDir)

	cases := []struct {
		name   string
		mutate func(*Spec)
		want   string
	}{
		{"missing src", func(s *Spec) { s.Platforms[1].Layers[1].Entries[0].Src = f.path("nope") }, "linux/arm64 layer 1 (bin/operator): entry " + f.path("nope") + ": source does not exist"},
		{"base lacks platform", func(s *Spec) { s.Base = "oci:" + baseDir }, "base oci:" + baseDir + " has no image for linux/arm64; it has: linux/amd64"},
		{"base not a layout", func(s *Spec) { s.Base = "oci:" + tmp + "/none" }, "not a readable OCI image layout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := f.spec("scratch")
			c.mutate(spec)
			out := filepath.Join(tmp, "out-"+strings.ReplaceAll(c.name, " ", "-"))
			_, err := Build(context.Background(), spec, out, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a failed build left %s", out)
			}
		})
	}
	// Neither staged layers nor half-written layouts are left behind.
	ents, _ := os.ReadDir(tmp)
	if len(ents) != 1 || ents[0].Name() != "base" {
		t.Errorf("left in %s: %v", tmp, ents)
	}
}

func TestBuildReplacesLayout(t *testing.T) {
	f := newFixture(t, time.Now(), 0o644)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "out")
	mustBuild(t, f.spec("scratch"), dir)
	spec := f.spec("scratch")
	spec.Platforms = spec.Platforms[1:]
	res := mustBuild(t, spec, dir)
	if d, err := LayoutDigest(dir); err != nil || d != res.Digest {
		t.Fatalf("layout digest %s (%v), want %s", d, err, res.Digest)
	}
	ents, _ := os.ReadDir(tmp)
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	// The old layout's blobs are gone with it.
	blobs, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if len(blobs) != 5 { // index, manifest, config and 2 layers
		var names []string
		for _, b := range blobs {
			names = append(names, b.Name())
		}
		t.Errorf("%d blobs: %v", len(blobs), names)
	}

	other := filepath.Join(tmp, "not-a-layout")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "precious"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), f.spec("scratch"), other, Options{}); err == nil || !strings.Contains(err.Error(), "refusing to replace") {
		t.Errorf("err = %v", err)
	}
}

func TestParseSpecErrors(t *testing.T) {
	cases := []struct {
		json string
		want string
	}{
		{`{"base": "scratch", "created": 1, "platforms": [}`, "invalid JSON at line 1, column 49"},
		{"{\n \"base\": \"scratch\",\n \"created\": \"now\"}", `field "created" (line 3, column 18): got JSON string, want an integer`},
		{`{"base": "scratch", "created": 1, "platforms": [{"platform": "linux/amd64", "layers": {}}]}`, `field "platforms.layers"`},
		{`{"base": "scratch", "created": 1, "platform": []}`, `unknown field "platform"`},
		{``, "empty or truncated"},
		{`{"created": 1, "platforms": [{"platform": "linux/amd64"}]}`, `"base" is required`},
		{`{"base": "scratch", "platforms": [{"platform": "linux/amd64"}]}`, `"created" is required`},
		{`{"base": "scratch", "created": 1, "platforms": []}`, "at least one platform"},
		{`{"base": "scratch", "created": 1, "platforms": [{"platform": "amd64"}]}`, `platforms[0]: bad platform "amd64"`},
		{`{"base": "scratch", "created": 1, "platforms": [{"platform": "linux/amd64/"}]}`, `bad platform "linux/amd64/"`},
		{`{"base": "scratch", "created": 1, "platforms": [{"platform": "linux/amd64"}, {"platform": "linux/amd64"}]}`, "listed twice"},
		{`{"base": "scratch", "created": 1, "platforms": [{"platform": "linux/amd64", "layers": [{"entries": []}]}]}`, "layers[0]: no entries"},
		{`{"base": "scratch", "created": 1, "platforms": [{"platform": "linux/amd64"}], "config": {"exposed_ports": ["http"]}}`, `bad port "http"`},
		{`{"base": "scratch", "created": 1, "platforms": [{"platform": "linux/amd64"}], "config": {"env": {"A=B": "c"}}}`, `bad variable name "A=B"`},
	}
	for _, c := range cases {
		_, err := ParseSpec([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSpec(%s) = %v, want it to contain %q", c.json, err, c.want)
		}
	}
	s, err := ParseSpec([]byte(`{"base": "scratch", "created": 5, "platforms": [{"platform": "linux/arm/v7"}], "config": {"cmd": []}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Config.Cmd == nil || len(*s.Config.Cmd) != 0 || s.Config.Entrypoint != nil {
		t.Errorf("an explicit empty cmd must be kept apart from a missing entrypoint: %+v", s.Config)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "PATH=/x", "B=2", "PATH=/dup"}, map[string]string{"PATH": "/y", "Z": "z", "C": "c"})
	want := []string{"A=1", "PATH=/y", "B=2", "C=c", "Z=z"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mergeEnv = %v, want %v", got, want)
	}
}

func TestParseSpecExample(t *testing.T) {
	// The spec the Python side writes, as in the interface description.
	doc := `{
	  "name": "frontend:1.2.3", "base": "scratch", "created": 1700000000,
	  "platforms": [{"platform": "linux/amd64", "layers": [{"comment": "bin/operator",
	     "entries": [{"src": "/abs/host/file", "dest": "/usr/local/bin/operator", "mode": 493}]}]}],
	  "config": {"entrypoint": ["operator"], "cmd": [], "env": {"PATH": "/usr/local/bin:/usr/bin:/bin"},
	     "workdir": "/", "user": "", "labels": {"org.opencontainers.image.version": "1.2.3"}, "exposed_ports": ["8080/tcp"]}
	}`
	s, err := ParseSpec([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if *s.Platforms[0].Layers[0].Entries[0].Mode != 0o755 || s.Config.Workdir != "/" {
		t.Errorf("parsed %+v", s)
	}
}
