package treedigest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// makeTree builds a small fixture tree covering every mode and a path whose
// UTF-8 byte order differs from a case-insensitive or code-point-naive sort.
func makeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel string, data string, perm os.FileMode) {
		full := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), perm); err != nil {
			t.Fatal(err)
		}
		// WriteFile's perm is subject to the umask; force the exact bits.
		if err := os.Chmod(full, perm); err != nil {
			t.Fatal(err)
		}
	}
	write("Z.txt", "upper\n", 0o644)
	write("a.txt", "hello\n", 0o644)
	write("sub/run.sh", "#!/bin/sh\necho hi\n", 0o755)
	write("\u00e9.txt", "h\u00e9llo\n", 0o600)
	if err := os.Symlink("a.txt", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	return root
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestKnownAnswer checks the digest against a value computed independently:
// the expected lines are spelled out here with crypto/sha256 directly, and
// the final digest was also computed outside Go (Python hashlib) and pinned.
func TestKnownAnswer(t *testing.T) {
	root := makeTree(t)
	// Unsorted, with duplicates: the digest must not depend on input order.
	paths := []string{"\u00e9.txt", "sub/run.sh", "link", "a.txt", "Z.txt", "a.txt", "link"}

	want := "100644 " + sha("upper\n") + " Z.txt\n" +
		"100644 " + sha("hello\n") + " a.txt\n" +
		"120000 " + sha("a.txt") + " link\n" +
		"100755 " + sha("#!/bin/sh\necho hi\n") + " sub/run.sh\n" +
		"100644 " + sha("h\u00e9llo\n") + " \u00e9.txt\n"

	entries, err := Entries(root, paths)
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, e := range entries {
		got += e.Line()
	}
	if got != want {
		t.Fatalf("lines:\n got %q\nwant %q", got, want)
	}

	d, err := Digest(root, paths)
	if err != nil {
		t.Fatal(err)
	}
	if d != sha(want) {
		t.Errorf("digest = %s, want sha256(lines) = %s", d, sha(want))
	}
	const pinned = "acc0b3f3cb5f736ae22e135915873cf00da9ab3dc829a6545c7b8b9fd7630354"
	if d != pinned {
		t.Errorf("digest = %s, want pinned %s", d, pinned)
	}
}

func TestEmpty(t *testing.T) {
	d, err := Digest(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of the empty string.
	if want := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; d != want {
		t.Errorf("digest = %s, want %s", d, want)
	}
}

func TestNormalizePaths(t *testing.T) {
	got := NormalizePaths([]string{"b", "\u00e9", "B", "a/b", "a-b", "b", "a"})
	// Byte order: 'B' (0x42) < 'a' (0x61); '-' (0x2d) < '/' (0x2f); 'é' is 0xc3 0xa9.
	want := []string{"B", "a", "a-b", "a/b", "b", "\u00e9"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSymlinkNotFollowed(t *testing.T) {
	root := t.TempDir()
	// A dangling link still digests: only its target string is hashed.
	if err := os.Symlink("does/not/exist", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	entries, err := Entries(root, []string{"dangling"})
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{Mode: ModeSymlink, Hash: sha("does/not/exist"), Path: "dangling"}
	if entries[0] != want {
		t.Errorf("got %+v, want %+v", entries[0], want)
	}
}

func TestAnyExecuteBit(t *testing.T) {
	root := t.TempDir()
	for name, perm := range map[string]os.FileMode{"u": 0o744, "g": 0o654, "o": 0o645, "none": 0o666} {
		full := filepath.Join(root, name)
		if err := os.WriteFile(full, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, perm); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := Entries(root, []string{"u", "g", "o", "none"})
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]string{}
	for _, e := range entries {
		modes[e.Path] = e.Mode
	}
	want := map[string]string{"u": ModeExecutable, "g": ModeExecutable, "o": ModeExecutable, "none": ModeRegular}
	if !reflect.DeepEqual(modes, want) {
		t.Errorf("modes = %v, want %v", modes, want)
	}
}

func TestMissingPathNamesPath(t *testing.T) {
	root := makeTree(t)
	_, err := Digest(root, []string{"a.txt", "missing.txt"})
	var pe *PathError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *PathError", err)
	}
	if pe.Path != "missing.txt" || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want not-exist error for missing.txt", err)
	}
}

func TestDirectoryRejected(t *testing.T) {
	root := makeTree(t)
	if _, err := Digest(root, []string{"sub"}); err == nil {
		t.Error("digest of a directory succeeded, want error")
	}
}
