"""The examples that end each command's --help, by command line: real invocations, each with what it does.

One table, so a new command adds its examples here; tests/test_cli_help.py parses each with the real parser, and
fails for a command without any.
"""

EXAMPLES: dict[str, list[str]] = {
    "polybuild": [
        "polybuild build  # every target and its dependencies, into dist/",
        "polybuild run test  # every target's test task",
        "polybuild -C examples/serving graph  # the targets of the workspace in a directory",
    ],
    "polybuild build": [
        "polybuild build  # every target, for the host",
        "polybuild build py:serving -j 4  # one package and what it needs, 4 tasks at a time",
        "polybuild build 'go:*' lib/ --dependents  # a glob, a directory, and what depends on them",
        "polybuild build --variant cuda --platform linux/arm64  # a config variant, for another platform",
        "polybuild build --affected origin/main  # only what changed since that branch",
        "polybuild build --dry-run --json  # what would run and why, nothing runs",
    ],
    "polybuild affected": [
        "polybuild affected  # since the merge base with the default branch",
        "polybuild affected --since HEAD~3 --json  # the changed files too",
    ],
    "polybuild run": [
        "polybuild run test  # every target that has a test task, what they need built first",
        "polybuild run lint py:serving -k  # one target's lint; go on after a failure",
    ],
    "polybuild graph": [
        "polybuild graph  # every target and what it depends on",
        "polybuild graph py:serving --format dot | dot -Tsvg > graph.svg  # one target's part, drawn",
        "polybuild graph --json  # for scripts",
    ],
    "polybuild explain": [
        "polybuild explain py:serving  # the input file, config key, toolchain or dependency that changed",
        "polybuild explain rust:serving-core --variant cuda --platform linux/arm64",
    ],
    "polybuild cache": [
        "polybuild cache stats",
        "polybuild cache gc --max-size 2G",
    ],
    "polybuild cache stats": [
        "polybuild cache stats  # where the local cache is, and its size",
    ],
    "polybuild cache gc": [
        "polybuild cache gc --max-size 500M  # least recently used first",
    ],
    "polybuild container": [
        "polybuild container render frontend --check",
        "polybuild container build frontend --tag frontend:dev",
    ],
    "polybuild container render": [
        "polybuild container render frontend --var device=cuda  # with a template variable set",
        "polybuild container render frontend --check -o Dockerfile  # linted, and written to a file",
    ],
    "polybuild container build": [
        "polybuild container build frontend --tag localhost:5000/frontend:dev",
        "polybuild container build frontend --platform linux/arm64 --tag registry.example/frontend:1.0 --push",
    ],
    "polybuild container push": [
        "polybuild container push frontend  # to the image's configured tags",
        "polybuild container push frontend --tag localhost:5000/frontend:1.0 --insecure",
    ],
    "polybuild container promote": [
        "polybuild container promote registry.example/app:rc1 registry.example/app:1.0",
        "polybuild container promote oci:dist/images/app registry.example/app:1.0",
    ],
    "polybuild version": [
        "polybuild version  # the version and every place it lives",
        "polybuild version set 1.2.0rc1",
        "polybuild version check",
    ],
    "polybuild version set": [
        "polybuild version set 1.2.0  # every manifest of the workspace's version group",
        "polybuild version set --from-git  # 1.2.1.dev3: three commits after v1.2.0",
        "polybuild version set 0.4.1 --group rust:kvbm  # an independent package",
    ],
    "polybuild version check": [
        "polybuild version check  # in CI, before a release",
    ],
    "polybuild version git": [
        "polybuild version git  # 1.2.1.dev3 (PEP 440), 1.2.1-dev.3 (SemVer)",
    ],
    "polybuild deny": [
        "polybuild deny  # every ecosystem's dependencies, from the lockfiles",
        "polybuild deny --fetch --json  # license files downloaded first; for scripts",
    ],
    "polybuild attributions": [
        "polybuild attributions",
        "polybuild attributions --check  # in CI: exit 1 when they are stale",
        "polybuild attributions --target image:frontend --dir dist/licenses",
    ],
    "polybuild sbom": [
        "polybuild sbom -o dist/sbom.cdx.json  # the whole workspace, CycloneDX",
        "polybuild sbom --format spdx --target image:frontend  # what one image ships, SPDX",
    ],
    "polybuild doctor": [
        "polybuild doctor  # each tool found, or missing with how to install it",
        "polybuild -C examples/serving doctor --json",
    ],
    "polybuild config-reference": [
        "polybuild config-reference > docs/config-reference.md",
        "polybuild config-reference --deny  # deny.toml's keys",
        "polybuild config-reference --json-schema > polybuild.schema.json",
    ],
    "polybuild lock": [
        "polybuild lock check",
        "polybuild lock upgrade --all",
    ],
    "polybuild lock check": [
        "polybuild lock check  # the config's platforms, else the host",
        "polybuild lock check --platform linux/arm64 --python 3.12 --json",
    ],
    "polybuild lock upgrade": [
        "polybuild lock upgrade base  # the include named base",
        "polybuild lock upgrade --all",
    ],
    "polybuild check-extras": [
        "polybuild check-extras  # every Python package",
        "polybuild check-extras serving --json  # one, for scripts",
    ],
    "polybuild release": [
        "polybuild release 1.2.0 --dry-run  # every step but the tag",
        "polybuild release 1.2.0rc1 --platform linux/amd64 --platform linux/arm64",
    ],
    "polybuild ci": [
        "polybuild ci matrix --since origin/main",
    ],
    "polybuild ci matrix": [
        "polybuild ci matrix --since origin/main  # what a pull request affects",
        "polybuild ci matrix --platform linux/amd64 --platform linux/arm64 --shard-size 10",
    ],
    "polybuild clean": [
        "polybuild clean  # outputs and state",
        "polybuild clean --cache  # the local cache only",
        "polybuild clean --all",
    ],
    "polybuild init": [
        "polybuild init --check  # what it would write, and why; nothing is written",
        "polybuild init  # the config, if one is needed, and dist/ in .gitignore",
        "polybuild init path/to/repo",
    ],
    "polybuild completion": [
        "polybuild completion bash > ~/.local/share/bash-completion/completions/polybuild",
        "polybuild completion zsh > ~/.zfunc/_polybuild",
        "polybuild completion fish > ~/.config/fish/completions/polybuild.fish",
    ],
}
