// Package treedigest computes polybuild's tree digest of a set of files.
//
// The format is shared with polybuild's Rust and Python implementations so
// the three can be cross-checked:
//
//   - the relative paths are deduplicated and sorted by their UTF-8 bytes;
//   - each path yields the line "<mode> <sha256hex> <path>\n", where mode is
//     "120000" for a symbolic link (hashing the link target string, which is
//     not followed), "100755" for a regular file with any execute bit set,
//     and "100644" otherwise;
//   - the digest is the lowercase hex SHA-256 of all lines concatenated.
package treedigest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// File modes used in digest lines.
const (
	ModeRegular    = "100644"
	ModeExecutable = "100755"
	ModeSymlink    = "120000"
)

// Entry is one line of a tree digest.
type Entry struct {
	Mode string
	Hash string // lowercase hex sha256
	Path string
}

// Line renders the entry as it is fed to the digest, newline included.
func (e Entry) Line() string {
	return e.Mode + " " + e.Hash + " " + e.Path + "\n"
}

// PathError reports a failure to read one of the requested paths.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return fmt.Sprintf("%s: %v", e.Path, e.Err) }

func (e *PathError) Unwrap() error { return e.Err }

// NormalizePaths returns the paths deduplicated and sorted by UTF-8 bytes.
func NormalizePaths(paths []string) []string {
	seen := make(map[string]struct{}, len(paths))
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if _, ok := seen[p]; ok {
			continue
		}
		seen[p] = struct{}{}
		out = append(out, p)
	}
	// Go string comparison is bytewise, which is UTF-8 byte order.
	sort.Strings(out)
	return out
}

// Entries computes the digest entries for paths (relative to root), in
// digest order.
func Entries(root string, paths []string) ([]Entry, error) {
	norm := NormalizePaths(paths)
	entries := make([]Entry, 0, len(norm))
	for _, p := range norm {
		e, err := entryFor(root, p)
		if err != nil {
			return nil, &PathError{Path: p, Err: err}
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// Digest returns the tree digest of paths (relative to root).
func Digest(root string, paths []string) (string, error) {
	entries, err := Entries(root, paths)
	if err != nil {
		return "", err
	}
	return DigestEntries(entries), nil
}

// DigestEntries returns the digest of already-computed entries, which must
// be in digest order.
func DigestEntries(entries []Entry) string {
	h := sha256.New()
	for _, e := range entries {
		io.WriteString(h, e.Line())
	}
	return hex.EncodeToString(h.Sum(nil))
}

func entryFor(root, rel string) (Entry, error) {
	full := filepath.Join(root, filepath.FromSlash(rel))
	info, err := os.Lstat(full)
	if err != nil {
		return Entry{}, err
	}
	mode := info.Mode()
	switch {
	case mode&os.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if err != nil {
			return Entry{}, err
		}
		sum := sha256.Sum256([]byte(target))
		return Entry{Mode: ModeSymlink, Hash: hex.EncodeToString(sum[:]), Path: rel}, nil
	case mode.IsRegular():
		hash, err := hashFile(full)
		if err != nil {
			return Entry{}, err
		}
		m := ModeRegular
		if mode.Perm()&0o111 != 0 {
			m = ModeExecutable
		}
		return Entry{Mode: m, Hash: hash, Path: rel}, nil
	default:
		return Entry{}, fmt.Errorf("not a regular file or symlink (%s)", mode.Type())
	}
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
