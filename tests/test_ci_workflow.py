"""The GitHub Actions workflow, .github/workflows/ci.yml, which cannot run here.

What it must do is checked on its parsed form instead: a job runs the project's
test command (``bash .ci/run``) in a ``debian:12`` container, every action is
pinned by commit with its release named beside it, the jobs are read-only and
time-limited, and an ``audit`` job checks both lockfiles against the advisory
databases. Each check is a function that lists problems; the last test feeds
each one a broken copy of the workflow to show that it can fail.
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"

Workflow = dict[str, Any]

#: ``owner/repo[/path]@<40 hex>``: an action pinned by full commit SHA.
PINNED = re.compile(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}")
#: A ``uses:`` line of the raw file: pinned, with ``# vX.Y.Z`` after it.
PIN_LINE = re.compile(r"uses:\s*\S+@[0-9a-f]{40}\s+# v\d+\.\d+\.\d+\s*$")


def load() -> Workflow:
    workflow: Workflow = yaml.safe_load(WORKFLOW.read_text())
    return workflow


def words(line: str) -> list[str]:
    """``line`` split as the shell would (or on spaces, where its quotes span lines)."""
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


def commands(job: dict[str, Any]) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """Each shell command line of ``job``'s ``run:`` steps, as words, with its step."""
    for step in job.get("steps", []):
        script = step.get("run", "").replace("\\\n", " ")
        for line in script.splitlines():
            if split := words(line):
                yield step, split


def uses(workflow: Workflow) -> list[str]:
    """Every ``uses:`` of the workflow: job-level (reusable workflows) and step-level."""
    found = []
    for job in workflow["jobs"].values():
        found += [job["uses"]] if "uses" in job else []
        found += [step["uses"] for step in job.get("steps", []) if "uses" in step]
    return found


def container_image(job: dict[str, Any]) -> str | None:
    container = job.get("container")
    return container.get("image") if isinstance(container, dict) else container


def ci_run_problems(workflow: Workflow) -> list[str]:
    runners = [
        name
        for name, job in workflow["jobs"].items()
        if any(cmd == ["bash", ".ci/run"] for _, cmd in commands(job))
    ]
    if not runners:
        return ["no job runs `bash .ci/run`"]
    return [
        f"job {name!r} runs `bash .ci/run` in {container_image(workflow['jobs'][name])!r}, "
        "not a debian:12 container"
        for name in runners
        if container_image(workflow["jobs"][name]) != "debian:12"
    ]


def pin_problems(workflow: Workflow) -> list[str]:
    found = uses(workflow)
    if not found:
        return ["no `uses:` at all: the checkout is an action too"]
    return [
        f"{ref} is not pinned by a 40-hex commit SHA" for ref in found if not PINNED.fullmatch(ref)
    ]


def pin_comment_problems(text: str) -> list[str]:
    return [
        f"line {number}: {line.strip()!r} lacks `@<sha> # vX.Y.Z`"
        for number, line in enumerate(text.splitlines(), 1)
        if re.match(r"\s*(-\s+)?uses:", line) and not PIN_LINE.search(line)
    ]


def policy_problems(workflow: Workflow) -> list[str]:
    problems = []
    if workflow.get("permissions") != {"contents": "read"}:
        problems.append(f"permissions are {workflow.get('permissions')!r}, not contents: read")
    if not workflow.get("concurrency"):
        problems.append("no concurrency group")
    problems += [
        f"job {name!r} has no timeout-minutes"
        for name, job in workflow["jobs"].items()
        if not isinstance(job.get("timeout-minutes"), int)
    ]
    return problems


def _option(words: list[str], *names: str) -> str | None:
    """The value after the first of ``names`` in ``words`` (``-r FILE``), if any."""
    for i, word in enumerate(words[:-1]):
        if word in names:
            return words[i + 1]
    return None


def audit_problems(workflow: Workflow) -> list[str]:
    job = workflow["jobs"].get("audit")
    if job is None:
        return ["no `audit` job"]
    pip_audits = [w for _, w in commands(job) if w and Path(w[0]).name == "pip-audit"]
    lock_audits = [
        w
        for w in pip_audits
        if _option(w, "-r", "--requirement") == "requirements/dev.lock"
        and {"--require-hashes", "--disable-pip"} <= set(w)
    ]
    npm_audits = [
        (step, w)
        for step, w in commands(job)
        if w[:2] == ["npm", "audit"]
        and "packages/wsd-web" in (step.get("working-directory"), _option(w, "--prefix"))
    ]
    problems = []
    if not lock_audits:
        problems.append(
            "no `pip-audit --disable-pip --require-hashes -r requirements/dev.lock` "
            f"(pip-audit commands: {pip_audits})"
        )
    if not npm_audits:
        problems.append("no `npm audit` in packages/wsd-web")
    return problems


def test_a_job_runs_the_test_command_in_debian_12() -> None:
    assert ci_run_problems(load()) == []


def test_every_action_is_pinned_by_commit() -> None:
    assert pin_problems(load()) == []


def test_every_pin_names_its_release() -> None:
    assert pin_comment_problems(WORKFLOW.read_text()) == []


def test_jobs_are_read_only_time_limited_and_grouped() -> None:
    assert policy_problems(load()) == []


def test_the_audit_job_checks_both_lockfiles() -> None:
    assert audit_problems(load()) == []


def _test_job(w: Workflow) -> dict[str, Any]:
    job: dict[str, Any] = w["jobs"]["test"]
    return job


def _set_image(image: str) -> Callable[[Workflow], None]:
    return lambda w: _test_job(w).update(container={"image": image})


def _unpin(w: Workflow) -> None:
    step = next(s for s in _test_job(w)["steps"] if "uses" in s)
    step["uses"] = step["uses"].split("@")[0] + "@v4"


def _drop_run(needle: str, job: str) -> Callable[[Workflow], None]:
    def drop(w: Workflow) -> None:
        steps = w["jobs"][job]["steps"]
        steps[:] = [s for s in steps if needle not in s.get("run", "")]

    return drop


def _no_hashes(w: Workflow) -> None:
    for step in w["jobs"]["audit"]["steps"]:
        if "pip-audit" in step.get("run", ""):
            step["run"] = step["run"].replace("--require-hashes", "")


BROKEN: dict[str, tuple[Callable[[Workflow], list[str]], Callable[[Workflow], object]]] = {
    "ubuntu container": (ci_run_problems, _set_image("ubuntu:24.04")),
    "no .ci/run": (ci_run_problems, _drop_run("bash .ci/run", "test")),
    "tag, not SHA": (pin_problems, _unpin),
    "no actions": (pin_problems, lambda w: [job.pop("steps") for job in w["jobs"].values()]),
    "write permissions": (policy_problems, lambda w: w.update(permissions="write-all")),
    "no timeout": (policy_problems, lambda w: _test_job(w).pop("timeout-minutes")),
    "no concurrency": (policy_problems, lambda w: w.pop("concurrency")),
    "no audit job": (audit_problems, lambda w: w["jobs"].pop("audit")),
    "no pip-audit": (audit_problems, _drop_run("pip-audit ", "audit")),
    "no hashes": (audit_problems, _no_hashes),
    "no npm audit": (audit_problems, _drop_run("npm audit", "audit")),
}


@pytest.mark.parametrize("case", BROKEN)
def test_each_check_fails_on_a_broken_workflow(case: str) -> None:
    check, breaks = BROKEN[case]
    broken = copy.deepcopy(load())
    breaks(broken)
    assert check(broken) != []


def test_an_unannotated_pin_is_reported() -> None:
    sha = "0" * 40
    text = f"steps:\n  - uses: actions/checkout@{sha}\n  - uses: actions/cache@{sha} # v5.0.5\n"
    assert len(pin_comment_problems(text)) == 1
