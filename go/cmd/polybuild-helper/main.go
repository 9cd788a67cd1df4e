// Command polybuild-helper is the Go side of polybuild: small utilities that
// are easiest to provide as a static binary.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/polybuild/polybuild-helper/internal/treedigest"
)

// version is stamped at build time with -ldflags "-X main.version=1.2.3".
var version = "dev"

const usage = `usage:
  polybuild-helper version
  polybuild-helper digest ROOT PATH...
  polybuild-helper image build --spec SPEC.json --layout OUT_DIR [--insecure]
  polybuild-helper image push --layout DIR --ref REF [--insecure]
  polybuild-helper image copy SRC DST [--insecure]      (SRC: REF or oci:DIR)
  polybuild-helper image digest --layout DIR

image commands print one JSON object on stdout; errors are one line on
stderr, with exit status 1 (2 for a bad command line). --insecure uses plain
HTTP for registries that are not on localhost or a private address.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version":
		if len(args) != 1 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		fmt.Fprintf(stdout, "polybuild-helper %s\n", version)
		return 0
	case "digest":
		if len(args) < 3 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		d, err := treedigest.Digest(args[1], args[2:])
		if err != nil {
			fmt.Fprintf(stderr, "polybuild-helper: digest: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, d)
		return 0
	case "image":
		return runImage(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "polybuild-helper: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
