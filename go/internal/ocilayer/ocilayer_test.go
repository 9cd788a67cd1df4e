package ocilayer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var mtime = time.Unix(1700000000, 0)

// writeFile writes data with exactly perm (WriteFile's perm is masked by
// the umask) and a given host mtime.
func writeFile(t *testing.T, path, data string, perm os.FileMode, when time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

// makeTree builds the same logical tree under a fresh temp dir; host modes
// and mtimes vary with variant so that only normalisation makes the layers
// equal.
func makeTree(t *testing.T, variant int) (root string, entries []Entry) {
	t.Helper()
	root = t.TempDir()
	when := time.Unix(int64(1000000+variant*12345), 0)
	fileMode := os.FileMode(0o644)
	execMode := os.FileMode(0o755)
	if variant == 1 {
		fileMode, execMode = 0o600, 0o700
	}
	writeFile(t, filepath.Join(root, "bin", "op"), "#!/bin/sh\necho op\n", execMode, when)
	writeFile(t, filepath.Join(root, "lib", "pkg", "__init__.py"), "", fileMode, when)
	writeFile(t, filepath.Join(root, "lib", "pkg", "mod.py"), "x = 1\n", fileMode, when)
	writeFile(t, filepath.Join(root, "lib", "b-file"), "b\n", fileMode, when)
	writeFile(t, filepath.Join(root, "conf"), "c\n", fileMode, when)
	long := strings.Repeat("d", 120)
	writeFile(t, filepath.Join(root, "lib", long, "f"), "long\n", fileMode, when)
	if err := os.Symlink("mod.py", filepath.Join(root, "lib", "pkg", "rel-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(root, "lib", "abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "lib"), 0o700+os.FileMode(variant)*0o050); err != nil {
		t.Fatal(err)
	}
	mode := int64(0o600)
	entries = []Entry{
		{Src: filepath.Join(root, "lib"), Dest: "/usr/lib/python3/site-packages"},
		{Src: filepath.Join(root, "bin", "op"), Dest: "/usr/local/bin/operator"},
		{Src: filepath.Join(root, "conf"), Dest: "/etc/op/conf", Mode: &mode},
	}
	if variant == 1 { // entry order must not matter
		entries[0], entries[2] = entries[2], entries[0]
	}
	return root, entries
}

func build(t *testing.T, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, entries, mtime); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	_, e0 := makeTree(t, 0)
	_, e1 := makeTree(t, 1)
	a, b := build(t, e0), build(t, e1)
	if !bytes.Equal(a, b) {
		t.Fatalf("layers differ: %d vs %d bytes", len(a), len(b))
	}
	// Same inputs written later give the same bytes too.
	time.Sleep(1100 * time.Millisecond)
	if c := build(t, e0); !bytes.Equal(a, c) {
		t.Fatal("rebuilding the same entries gave different bytes")
	}
}

func TestContents(t *testing.T) {
	_, entries := makeTree(t, 1)
	data := build(t, entries)

	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || zr.Comment != "" || !zr.ModTime.IsZero() || zr.Extra != nil {
		t.Errorf("gzip header carries varying data: %+v", zr.Header)
	}
	long := strings.Repeat("d", 120)
	type want struct {
		typ    byte
		mode   int64
		size   int64
		target string
	}
	wantAll := []struct {
		name string
		want
	}{
		{"etc/", want{tar.TypeDir, 0o755, 0, ""}},
		{"etc/op/", want{tar.TypeDir, 0o755, 0, ""}},
		{"etc/op/conf", want{tar.TypeReg, 0o600, 2, ""}},
		{"usr/", want{tar.TypeDir, 0o755, 0, ""}},
		{"usr/lib/", want{tar.TypeDir, 0o755, 0, ""}},
		{"usr/lib/python3/", want{tar.TypeDir, 0o755, 0, ""}},
		{"usr/lib/python3/site-packages/", want{tar.TypeDir, 0o755, 0, ""}},
		{"usr/lib/python3/site-packages/abs-link", want{tar.TypeSymlink, 0o777, 0, "/etc/hostname"}},
		{"usr/lib/python3/site-packages/b-file", want{tar.TypeReg, 0o644, 2, ""}},
		{"usr/lib/python3/site-packages/" + long + "/", want{tar.TypeDir, 0o755, 0, ""}},
		{"usr/lib/python3/site-packages/" + long + "/f", want{tar.TypeReg, 0o644, 5, ""}},
		{"usr/lib/python3/site-packages/pkg/", want{tar.TypeDir, 0o755, 0, ""}},
		{"usr/lib/python3/site-packages/pkg/__init__.py", want{tar.TypeReg, 0o644, 0, ""}},
		{"usr/lib/python3/site-packages/pkg/mod.py", want{tar.TypeReg, 0o644, 6, ""}},
		{"usr/lib/python3/site-packages/pkg/rel-link", want{tar.TypeSymlink, 0o777, 0, "mod.py"}},
		{"usr/local/", want{tar.TypeDir, 0o755, 0, ""}},
		{"usr/local/bin/", want{tar.TypeDir, 0o755, 0, ""}},
		{"usr/local/bin/operator", want{tar.TypeReg, 0o755, 18, ""}},
	}
	tr := tar.NewReader(zr)
	i := 0
	for ; ; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(wantAll) {
			t.Fatalf("unexpected extra entry %q", h.Name)
		}
		w := wantAll[i]
		if h.Name != w.name {
			t.Fatalf("entry %d = %q, want %q", i, h.Name, w.name)
		}
		if h.Typeflag != w.typ || h.Mode != w.mode || h.Size != w.size || h.Linkname != w.target {
			t.Errorf("%s: type %c mode %o size %d link %q; want type %c mode %o size %d link %q",
				h.Name, h.Typeflag, h.Mode, h.Size, h.Linkname, w.typ, w.mode, w.size, w.target)
		}
		if !h.ModTime.Equal(mtime) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: times %v/%v/%v, want mtime %v only", h.Name, h.ModTime, h.AccessTime, h.ChangeTime, mtime)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q, want 0:0 and no names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		// Only the long name may need a PAX record; nothing else varies.
		for k := range h.PAXRecords {
			if k != "path" {
				t.Errorf("%s: unexpected PAX record %q", h.Name, k)
			}
		}
	}
	if i != len(wantAll) {
		t.Errorf("got %d entries, want %d", i, len(wantAll))
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), "f", 0o644, mtime)
	writeFile(t, filepath.Join(dir, "d", "g"), "g", 0o644, mtime)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sockDir := t.TempDir()
	sock := filepath.Join(sockDir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mode := int64(0o755)
	bad := int64(0o17777)

	cases := []struct {
		name    string
		entries []Entry
		want    string
	}{
		{"missing src", []Entry{{Src: filepath.Join(dir, "nope"), Dest: "/x"}}, "nope: source does not exist"},
		{"fifo", []Entry{{Src: fifo, Dest: "/x"}}, "fifo is a special file"},
		{"socket", []Entry{{Src: sock, Dest: "/x"}}, "is a special file"},
		{"special file inside a directory", []Entry{{Src: dir, Dest: "/x"}}, "fifo is a special file"},
		{"relative dest", []Entry{{Src: filepath.Join(dir, "f"), Dest: "x"}}, "must be an absolute path"},
		{"file at root", []Entry{{Src: filepath.Join(dir, "f"), Dest: "/"}}, "only for a directory"},
		{"mode on a directory", []Entry{{Src: filepath.Join(dir, "d"), Dest: "/x", Mode: &mode}}, "mode is only for a file"},
		{"bad mode", []Entry{{Src: filepath.Join(dir, "f"), Dest: "/x", Mode: &bad}}, "not a permission"},
		{"file twice", []Entry{{Src: filepath.Join(dir, "f"), Dest: "/x"}, {Src: filepath.Join(dir, "d", "g"), Dest: "/x"}}, "claimed twice"},
		{"file where a directory must be", []Entry{{Src: filepath.Join(dir, "f"), Dest: "/x"}, {Src: filepath.Join(dir, "d"), Dest: "/x/y"}}, "/x is claimed twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Write(io.Discard, c.entries, mtime)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestDirectoriesMerge(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a", "x"), "x", 0o644, mtime)
	writeFile(t, filepath.Join(dir, "b", "y"), "y", 0o644, mtime)
	var buf bytes.Buffer
	err := Write(&buf, []Entry{
		{Src: filepath.Join(dir, "a"), Dest: "/app/"},
		{Src: filepath.Join(dir, "b"), Dest: "/app"},
	}, mtime)
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := gzip.NewReader(&buf)
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, " "); got != "app/ app/x app/y" {
		t.Errorf("entries = %s", got)
	}
}
