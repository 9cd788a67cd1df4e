"""The `--json` event stream of real runs, validated against the documented schema (docs/events.schema.json, whose
every event and field docs/usage.md describes): the plan with the schema version first, what left the plan, one
`finish` per task, and the summary last with the right counts."""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import jsonschema  # with cyclonedx-python-lib[json-validation] in the test group
import pytest

from conftest import REPO, polybuild_env, run_polybuild

SCHEMA = json.loads((REPO / "docs" / "events.schema.json").read_text())
USAGE = (REPO / "docs" / "usage.md").read_text()

GO = {
    "hello/go.mod": "module example.com/hello\n\ngo 1.22\n",
    "hello/main.go": "package main\n\nfunc main() {}\n",
    "bad/go.mod": "module example.com/bad\n\ngo 1.22\n",
    "bad/main.go": "package main\n\nfunc main() { undefinedThing() }\n",
    "old/go.mod": "module example.com/old\n\ngo 1.22\n",
    "old/main.go": "package main\n\nfunc main() {}\n",
    "polybuild.toml": "[targets.old]\nskip = true\n",
}


def checked(proc) -> list[dict]:
    """The events of a finished run, each valid against the schema, in an order and with counts that agree."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    for event in events:
        validator.validate(event)
    plan, summary = events[0], events[-1]
    assert plan["event"] == "plan" and plan["schema"] == 1
    assert summary["event"] == "summary" and [e["event"] for e in events].count("summary") == 1
    assert [e["event"] for e in events].count("plan") == 1
    finished = [e for e in events if e["event"] == "finish"]
    assert len(finished) == plan["tasks"] == summary["tasks"]
    assert len({e["task"] for e in finished}) == len(finished)  # one each
    kinds = [e["event"] for e in events]
    skips = [i for i, k in enumerate(kinds) if k == "skip"]
    assert all(i < kinds.index(k) for i in skips for k in ("start", "finish") if k in kinds)  # right after the plan
    started = {e["task"]: i for i, e in enumerate(events) if e["event"] == "start"}
    for i, e in enumerate(events):
        if e["event"] == "finish":
            assert (e["task"] in started) == (e["status"] in ("built", "failed") and e["reason"] is None), e
            assert started.get(e["task"], -1) < i
        if e["event"] == "output":
            assert e["task"] in started
    assert summary["counts"] == {**dict.fromkeys(("built", "cached", "failed", "cancelled", "skipped"), 0),
                                 **Counter(e["status"] for e in finished)}
    assert summary["skipped_targets"] == len(skips)
    assert summary["artifacts"] == sum(len(e["artifacts"]) for e in finished)
    assert summary["exit_code"] == proc.returncode
    assert summary["status"] == ("ok" if proc.returncode == 0 else "failed")
    return events


def test_a_real_build_streams_events_that_follow_the_schema(workspace):
    root = workspace(GO)
    first = run_polybuild("build", "--json", "-k", cwd=root)
    assert first.returncode == 1, first.stderr
    events = checked(first)
    assert [(e["id"], e["reason"]) for e in events if e["event"] == "skip"] == [("go:old",
                                                                                 "skip = true in [targets.old]")]
    status = {e["task"]: e for e in events if e["event"] == "finish"}
    assert (status["go:hello"]["status"], status["go:bad"]["status"]) == ("built", "failed")
    assert status["go:hello"]["artifacts"] == [str(root / "dist" / "hello")]
    assert status["go:bad"]["log"] == str(root / ".polybuild" / "logs" / "go_bad.log")
    summary = events[-1]
    assert summary["counts"]["built"] == 1 and summary["counts"]["failed"] == 1
    assert summary["report"] == str(root / "dist" / "build-report.json") and summary["wall_time_s"] > 0
    again = checked(run_polybuild("build", "--json", "-k", cwd=root))
    assert {e["task"]: e["status"] for e in again if e["event"] == "finish"} == {"go:hello": "cached",
                                                                                 "go:bad": "failed"}
    assert again[-1]["counts"]["cached"] == 1


def test_the_fast_path_and_an_empty_selection_stream_the_same_events(workspace):
    root = workspace({k: v for k, v in GO.items() if not k.startswith("bad/")})
    env = polybuild_env(POLYBUILD_FAST_PATH="1")
    time.sleep(2.1)  # files younger than 2 s are never trusted by stat alone
    run_polybuild("build", "--json", cwd=root, env=env)
    time.sleep(2.1)
    normal = checked(run_polybuild("build", "--json", cwd=root, env=env))  # records the run for the fast path
    fast_proc = run_polybuild("build", "--json", cwd=root, env=env)
    fast = checked(fast_proc)
    assert json.loads((root / "dist" / "build-report.json").read_text())["duration_s"] == 0.0  # answered fast
    assert fast[0] == normal[0] and [e for e in fast if e["event"] == "skip"] == [e for e in normal
                                                                                  if e["event"] == "skip"]
    assert fast[-1]["counts"]["cached"] == 1 and fast[-1]["report"] == normal[-1]["report"]
    ci_job = json.dumps({"targets": [], "platform": None, "variant": None})
    nothing = run_polybuild("build", "--json", "--ci-job", ci_job, cwd=root)
    assert nothing.returncode == 0, nothing.stderr
    assert [e["event"] for e in checked(nothing)] == ["plan", "summary"]


def test_a_task_run_streams_skipped_dependents_and_output(workspace):
    fail = [sys.executable, "-c", "import sys; print('a: broken'); sys.exit(2)"]
    say = [sys.executable, "-c", "print('hello from c')"]
    files = {"pkgs/a/pyproject.toml": '[project]\nname = "a"\nversion = "1.0"\n',
             "pkgs/b/pyproject.toml": '[project]\nname = "b"\nversion = "1.0"\ndependencies = ["a"]\n',
             "pkgs/c/pyproject.toml": '[project]\nname = "c"\nversion = "1.0"\n',
             "polybuild.toml": "".join(f"[targets.{n}.tasks.job]\ncmd = {json.dumps(argv)}\n"
                                       for n, argv in (("a", fail), ("b", say), ("c", say)))}
    root = workspace(files)
    proc = run_polybuild("run", "job", "--json", "-k", "-j", "1", "--output-logs", "full", cwd=root)
    assert proc.returncode == 1, proc.stderr
    events = checked(proc)
    finished = {e["task"]: e for e in events if e["event"] == "finish"}
    skipped = finished["py:b:job"]
    assert (skipped["status"], skipped["reason"]) == ("skipped", "dependency py:a:job failed")
    assert [(e["task"], e["line"]) for e in events if e["event"] == "output"] == [("py:a:job", "a: broken"),
                                                                                  ("py:c:job", "hello from c")]
    assert events[-1]["report"] is None  # task runs write no build report


def test_every_event_and_field_of_the_schema_is_documented():
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", USAGE, re.M)}
    for name in SCHEMA["$defs"]:
        if name == "status":
            continue
        assert name in rows, f"docs/usage.md has no row for the `{name}` event"
        for field in SCHEMA["$defs"][name]["properties"]:
            assert field == "event" or f"`{field}`" in rows[name], f"`{name}` event: field `{field}` undocumented"
    for name in SCHEMA["$defs"]["summary"]["properties"]["counts"]["properties"]:
        assert f"`{name}`" in rows["summary"]


@pytest.mark.parametrize("bad", [{"event": "plan", "tasks": 1}, {"event": "finish", "task": "x"},
                                 {"event": "summary", "status": "ok"}, {"event": "novel"}])
def test_the_schema_rejects_what_earlier_streams_printed(bad):
    """The schema is strict: an event missing its fields (as the unversioned stream's `plan`) fails it."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(bad)


def test_the_schema_file_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert Path(REPO / "docs" / "events.schema.json").read_text().endswith("}\n")


def test_commands_with_machine_output_take_json(tmp_path):
    from conftest import copy_example

    root = copy_example("serving", tmp_path / "serving")
    shown = json.loads(run_polybuild("version", "--json", cwd=root).stdout)
    [workspace_group] = [g for g in shown["groups"] if g["lockstep"]]
    assert workspace_group["version"] == {"pep440": "0.3.0", "semver": "0.3.0"}
    assert {"file": "Cargo.toml", "line": 6, "label": "[workspace.package] version",
            "found": "0.3.0"} in workspace_group["places"]
    assert shown["go_stamps"]["go:operator"] == "0.3.0"
    for args in (("version", "check", "--json"), ("version", "--json", "check")):
        check = run_polybuild(*args, cwd=root)
        assert check.returncode == 0 and json.loads(check.stdout) == {"ok": True, "mismatches": []}, check.stderr
    stats = json.loads(run_polybuild("cache", "stats", "--json", cwd=root).stdout)
    assert (stats["entries"], stats["blobs"], stats["bytes"]) == (0, 0, 0)  # this test's own empty cache
    matrix = run_polybuild("ci", "matrix", "--json", cwd=root)
    assert matrix.returncode == 0 and matrix.stdout == run_polybuild("ci", "matrix", cwd=root).stdout


def test_version_git_json(workspace):
    import subprocess

    root = workspace({"pyproject.toml": '[project]\nname = "a"\nversion = "1.2.0"\n'})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "one"], ["tag", "v1.2.0"]):
        subprocess.run([*git, *cmd], cwd=root, check=True)
    proc = run_polybuild("version", "git", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"pep440": "1.2.0", "semver": "1.2.0"}


def test_platform_is_repeatable_wherever_several_make_sense():
    """Every command that takes platforms takes `--platform` repeated; `container render` and `push` show or push
    one Dockerfile image's platform, so they take one."""
    import argparse

    from polybuild.cli.main import _parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, (*path, name))
            elif "--platform" in action.option_strings:
                yield path, action

    found = dict(walk(_parser(), ()))
    single = {("container", "render"), ("container", "push")}
    assert {("build",), ("run",), ("explain",), ("ci", "matrix"), ("lock", "check"), ("release",),
            ("container", "build")} <= set(found)
    for path, action in found.items():
        repeated = isinstance(action, argparse._AppendAction | argparse._ExtendAction)
        assert repeated == (path not in single), path
