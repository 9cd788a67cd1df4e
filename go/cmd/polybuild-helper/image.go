package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/polybuild/polybuild-helper/internal/ociimage"
)

// errUsage marks a command line that is wrong (exit 2) rather than a
// failure of the work it asked for (exit 1).
var errUsage = errors.New("usage")

// JSON outputs of push, copy and digest (build prints ociimage.Result).
type (
	pushResult struct {
		Ref    string `json:"ref"`
		Digest string `json:"digest"`
	}
	copyResult struct {
		Src    string `json:"src"`
		Dst    string `json:"dst"`
		Digest string `json:"digest"`
	}
	digestResult struct {
		Digest string `json:"digest"`
	}
)

// runImage runs `image SUBCOMMAND ...`. Every subcommand prints one JSON
// object on success; the Python side parses it.
func runImage(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var out any
	var err error
	switch args[0] {
	case "build":
		out, err = imageBuild(ctx, args[1:], stderr)
	case "push":
		out, err = imagePush(ctx, args[1:], stderr)
	case "copy":
		out, err = imageCopy(ctx, args[1:], stderr)
	case "digest":
		out, err = imageDigest(args[1:], stderr)
	default:
		fmt.Fprintf(stderr, "polybuild-helper: unknown image command %q\n%s", args[0], usage)
		return 2
	}
	switch {
	case errors.Is(err, errUsage):
		fmt.Fprint(stderr, usage)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "polybuild-helper: image %s: %v\n", args[0], err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "polybuild-helper: image %s: writing output: %v\n", args[0], err)
		return 1
	}
	return 0
}

// parseFlags parses fs over args, allowing flags after positional
// arguments too (`image copy SRC DST --insecure`), and returns the
// positional arguments, which must number want.
func parseFlags(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != want {
		fmt.Fprintf(fs.Output(), "polybuild-helper: image %s: want %d positional arguments, got %d\n", fs.Name(), want, len(pos))
		return nil, errUsage
	}
	return pos, nil
}

func newFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *ociimage.Options) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // the caller prints the full usage once
	opts := &ociimage.Options{}
	fs.BoolVar(&opts.Insecure, "insecure", false, "use plain HTTP for registries that are not localhost")
	return fs, opts
}

// required reports a missing required flag as a usage error.
func required(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if fs.Lookup(n).Value.String() == "" {
			fmt.Fprintf(fs.Output(), "polybuild-helper: image %s: --%s is required\n", fs.Name(), n)
			return errUsage
		}
	}
	return nil
}

func imageBuild(ctx context.Context, args []string, stderr io.Writer) (any, error) {
	fs, opts := newFlagSet("build", stderr)
	specPath := fs.String("spec", "", "image spec JSON file")
	layoutDir := fs.String("layout", "", "OCI image layout directory to write")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return nil, err
	}
	if err := required(fs, "spec", "layout"); err != nil {
		return nil, err
	}
	spec, err := ociimage.ReadSpec(*specPath)
	if err != nil {
		return nil, err
	}
	return ociimage.Build(ctx, spec, *layoutDir, *opts)
}

func imagePush(ctx context.Context, args []string, stderr io.Writer) (any, error) {
	fs, opts := newFlagSet("push", stderr)
	layoutDir := fs.String("layout", "", "OCI image layout directory to push")
	ref := fs.String("ref", "", "registry reference to push to")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return nil, err
	}
	if err := required(fs, "layout", "ref"); err != nil {
		return nil, err
	}
	d, err := ociimage.Push(ctx, *layoutDir, *ref, *opts)
	if err != nil {
		return nil, err
	}
	return pushResult{Ref: *ref, Digest: d}, nil
}

func imageCopy(ctx context.Context, args []string, stderr io.Writer) (any, error) {
	fs, opts := newFlagSet("copy", stderr)
	pos, err := parseFlags(fs, args, 2)
	if err != nil {
		return nil, err
	}
	d, err := ociimage.Copy(ctx, pos[0], pos[1], *opts)
	if err != nil {
		return nil, err
	}
	return copyResult{Src: pos[0], Dst: pos[1], Digest: d}, nil
}

func imageDigest(args []string, stderr io.Writer) (any, error) {
	fs := flag.NewFlagSet("digest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	layoutDir := fs.String("layout", "", "OCI image layout directory")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return nil, err
	}
	if err := required(fs, "layout"); err != nil {
		return nil, err
	}
	d, err := ociimage.LayoutDigest(*layoutDir)
	if err != nil {
		return nil, err
	}
	return digestResult{Digest: d}, nil
}
