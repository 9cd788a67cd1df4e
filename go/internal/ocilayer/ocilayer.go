// Package ocilayer writes container image layers from host files so that the
// same file contents always give the same bytes, wherever and whenever the
// layer is built.
//
// A layer's digest is what registries, caches and signatures key on, so
// nothing of the build machine may leak into it: paths are sorted, every
// parent directory is written once with a fixed mode, every mtime is the one
// given, owners are root with no names, modes are reduced to 0755/0644 (or
// the one asked for), and the gzip header carries no name and no time.
package ocilayer

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Fixed modes written into layers.
const (
	DirMode        = 0o755
	ExecutableMode = 0o755
	RegularMode    = 0o644
	SymlinkMode    = 0o777
)

// Entry asks for host path Src to appear at absolute path Dest in the layer.
// A directory Src is copied recursively; a symbolic link is kept as a link
// (its target verbatim), never followed.
type Entry struct {
	Src  string
	Dest string
	// Mode, if not nil, is the Unix permission (0 to 07777, setuid, setgid
	// and sticky bits included) of a regular file; it may not be given for a
	// directory or a link. Without it a file gets ExecutableMode if any
	// execute bit is set on the host, else RegularMode.
	Mode *int64
}

type kind int

const (
	kindDir kind = iota
	kindFile
	kindSymlink
)

// node is one path of the layer, planned before anything is written so the
// output order does not depend on the order entries were given in.
type node struct {
	kind   kind
	src    string // host path; "" for a directory that only exists as a parent
	mode   int64  // Unix permission bits, as tar stores them
	target string // symlink target
	size   int64  // regular file size when planned
}

// Write writes the gzip-compressed tar of entries to w, every header dated
// mtime. It fails on a missing source, a special file (device, socket,
// pipe), two entries that claim the same path, or a file that changes size
// while it is read.
func Write(w io.Writer, entries []Entry, mtime time.Time) error {
	nodes, err := plan(entries)
	if err != nil {
		return err
	}
	mtime = mtime.UTC().Truncate(time.Second)

	// A zero gzip.Header: no file name, MTIME 0, OS "unknown" - nothing that
	// varies between machines.
	zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	paths := make([]string, 0, len(nodes))
	for p := range nodes {
		paths = append(paths, p)
	}
	// Plain byte order puts every directory before its contents, since a
	// parent path is a prefix of its children's.
	sort.Strings(paths)
	for _, p := range paths {
		if err := writeNode(tw, p, nodes[p], mtime); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func writeNode(tw *tar.Writer, name string, n *node, mtime time.Time) error {
	// PAX is named explicitly so that long or non-ASCII paths are stored the
	// same way every time; with only these fields set, the writer adds no
	// extended records (atime, ctime) beyond the path when one is needed.
	hdr := &tar.Header{
		Name:    name,
		Mode:    n.mode,
		ModTime: mtime,
		Format:  tar.FormatPAX,
	}
	switch n.kind {
	case kindDir:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		return tw.WriteHeader(hdr)
	case kindSymlink:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = n.target
		return tw.WriteHeader(hdr)
	default:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = n.size
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		return copyFile(tw, n.src, n.size)
	}
}

// copyFile copies exactly size bytes of src, failing if the file has grown
// or shrunk since it was planned: a layer must not hold a half-written file.
func copyFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(w, f, size); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s shrank while the layer was written", src)
		}
		return fmt.Errorf("reading %s: %w", src, err)
	}
	if n, _ := f.Read(make([]byte, 1)); n > 0 {
		return fmt.Errorf("%s grew while the layer was written", src)
	}
	return nil
}

// plan maps every layer path (relative, no leading slash) to what it holds.
func plan(entries []Entry) (map[string]*node, error) {
	nodes := map[string]*node{}
	for _, e := range entries {
		if err := planEntry(nodes, e); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

func planEntry(nodes map[string]*node, e Entry) error {
	if e.Src == "" {
		return fmt.Errorf("entry for %q: src is empty", e.Dest)
	}
	if !path.IsAbs(e.Dest) {
		return fmt.Errorf("entry %s: dest %q must be an absolute path", e.Src, e.Dest)
	}
	dest := strings.TrimPrefix(path.Clean(e.Dest), "/")
	info, err := os.Lstat(e.Src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("entry %s: source does not exist", e.Src)
		}
		return fmt.Errorf("entry %s: %w", e.Src, err)
	}
	if !info.IsDir() {
		if dest == "" {
			return fmt.Errorf("entry %s: dest \"/\" is only for a directory", e.Src)
		}
		n, err := nodeFor(e.Src, info, e.Mode)
		if err != nil {
			return err
		}
		return add(nodes, dest, n)
	}
	if e.Mode != nil {
		return fmt.Errorf("entry %s: mode is only for a file, and this is a directory", e.Src)
	}
	return filepath.WalkDir(e.Src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(e.Src, p)
		if err != nil {
			return err
		}
		target := path.Join(dest, filepath.ToSlash(rel))
		if target == "" || target == "." {
			return nil // the layer root itself is not an entry
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n, err := nodeFor(p, info, nil)
		if err != nil {
			return err
		}
		return add(nodes, target, n)
	})
}

// nodeFor describes host path src (as lstat saw it) with normalised mode.
func nodeFor(src string, info fs.FileInfo, mode *int64) (*node, error) {
	m := info.Mode()
	switch {
	case m.IsDir():
		return &node{kind: kindDir, src: src, mode: DirMode}, nil
	case m&fs.ModeSymlink != 0:
		if mode != nil {
			return nil, fmt.Errorf("entry %s: mode is only for a file, and this is a symbolic link", src)
		}
		target, err := os.Readlink(src)
		if err != nil {
			return nil, err
		}
		return &node{kind: kindSymlink, src: src, mode: SymlinkMode, target: target}, nil
	case m.IsRegular():
		n := &node{kind: kindFile, src: src, mode: RegularMode, size: info.Size()}
		switch {
		case mode != nil:
			if *mode < 0 || *mode > 0o7777 {
				return nil, fmt.Errorf("entry %s: mode %d (octal %o) is not a permission between 0 and 07777", src, *mode, *mode)
			}
			n.mode = *mode
		case m.Perm()&0o111 != 0:
			n.mode = ExecutableMode
		}
		return n, nil
	default:
		return nil, fmt.Errorf("%s is a special file (%s); only regular files, directories and symbolic links can go into a layer", src, m.Type())
	}
}

// add records n at p, creating its parent directories. Two directories at
// one path merge; anything else claimed twice is an error, since which one
// wins would depend on entry order.
func add(nodes map[string]*node, p string, n *node) error {
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		if err := addDir(nodes, dir, n.src); err != nil {
			return err
		}
	}
	if old, ok := nodes[p]; ok {
		if old.kind == kindDir && n.kind == kindDir {
			return nil
		}
		return conflict(p, old, n.src)
	}
	nodes[p] = n
	return nil
}

// addDir records a parent directory at p unless one is there already.
func addDir(nodes map[string]*node, p, src string) error {
	old, ok := nodes[p]
	if !ok {
		nodes[p] = &node{kind: kindDir, mode: DirMode}
		return nil
	}
	if old.kind != kindDir {
		return conflict(p, old, src)
	}
	return nil
}

func conflict(p string, old *node, src string) error {
	return fmt.Errorf("layer path /%s is claimed twice: by %s and by %s", p, describe(old), src)
}

func describe(n *node) string {
	if n.src == "" {
		return "a parent directory"
	}
	return n.src
}
