// Command operator manages serving deployments.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"example.com/serving/api"
)

// version is stamped at build time with -ldflags "-X main.version=1.2.3".
var version = "dev"

const usage = `usage:
  operator version
  operator validate NAME REPLICAS
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
		fmt.Fprintf(stdout, "operator %s\n", version)
		return 0
	case "validate":
		if len(args) != 3 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		replicas, err := strconv.Atoi(args[2])
		if err != nil {
			fmt.Fprintf(stderr, "operator: REPLICAS must be an integer, got %q\n", args[2])
			return 2
		}
		d := api.New(args[1], replicas)
		if err := d.Validate(); err != nil {
			fmt.Fprintf(stderr, "operator: invalid deployment:\n%v\n", err)
			return 1
		}
		out, err := json.Marshal(d)
		if err != nil {
			fmt.Fprintf(stderr, "operator: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", out)
		return 0
	default:
		fmt.Fprintf(stderr, "operator: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
