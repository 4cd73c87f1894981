"""The documentation is checked like code: it builds, its links resolve, its commands work.

- The Sphinx site (``docs/conf.py``) builds with warnings as errors and nitpicky
  references, so a docstring that names a missing object fails.
- Every link in README.md and docs/**/*.md points at a file that exists, and
  every ``#anchor`` at a heading of the target (GitHub's slugs).
- Every command in a fenced ``bash``/``sh``/``console`` block is exercised:
  commands of wsd's CLIs are parsed by that CLI's own argparse parser (every
  optional part and every alternative of a usage line), the cheap ones are run
  here on the tiny preset, and the rest are listed in `EXERCISED_ELSEWHERE`
  with the tests that run them, which must exist. A command in the docs that
  is in neither place fails with a message saying what to add.

The conventions the docs follow for this are in docs/testing.md.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DOC_FILES = (ROOT / "README.md", *sorted(DOCS.rglob("*.md")))
SHELL_FENCES = {"bash", "sh", "shell", "console"}

#: Placeholders in documented commands (upper-case words) and the value a
#: parse check gives each; the flag before a placeholder can override it.
PLACEHOLDERS = {
    "DIR": "model-dir",
    "OUT": "new-out",
    "CAPTURE": "new-capture",
    "BUILD": "model-dir",
    "FILE": "out.json",
    "FILE.png": "out.png",
    "F": "result.json",
    "N": "2",
    "K": "2",
    "S": "3",
    "SEED": "1",
    "H": "64",
    "W": "64",
    "TOP": "0",
    "LEFT": "0",
    "P": "0",
    "G": "7.5",
    "O": "https://app.example",
    "ORIGIN": "https://app.example",
    "NAME": "tiny-sd15",
    "C": "a command",
    "M": "a machine",
}
AFTER_FLAG = {"--scheduler": "euler", "--host": "127.0.0.1", "--name": "sd15-512"}
#: Placeholder values that depend on the command.
FOR_COMMAND = {"wsd-compile sdxl": {"NAME": "tiny-sdxl"}}
_PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*(\.[a-z]+)?")

#: Documented commands run here, end to end, on the cached tiny-sd15 build:
#: command -> placeholder values that differ from `PLACEHOLDERS` (outputs must be new).
RUN_HERE: dict[str, dict[str, str]] = {
    "wsd-capture preset": {"DIR": "new-preset"},
    "wsd-artifacts verify": {},
    "wsd-web export": {},
}

#: Documented commands too slow, too big or needing hardware for this test,
#: and the tests (``path::function``) or CI entry points (``path``) that run them.
EXERCISED_ELSEWHERE: dict[str, tuple[str, ...]] = {
    # Set-up (apt, pip, npm) then everything below; CI runs test.sh on a fresh clone.
    "bash scripts/test.sh": (".ci/run",),
    # demo.sh = setup + the compile, verify, render and serve commands tested below.
    "bash scripts/demo.sh": (
        "tests/test_sd15_cli_build.py::test_fp16_build_of_the_preset",
        "packages/wsd-artifacts/tests/test_cli.py::test_ok_exits_0_with_a_summary",
        "tests/test_sd15_browser.py::test_render_cli_writes_png_and_timings",
        "packages/wsd-web/tests/test_server.py::test_serve_command_prints_its_url_and_serves",
    ),
    # Needs an NVIDIA GPU; it runs the two benchmark commands tested here on the CPU.
    "bash scripts/bench_gpu.sh": (
        "tests/test_bench_smoke.py::test_bench_reports_every_field_on_swiftshader",
        "packages/wsd-capture/tests/test_bench.py::test_tiny_sd15_on_the_cpu_gives_a_complete_record",
    ),
    "wsd-capture sd15": ("packages/wsd-capture/tests/test_cli.py::test_sd15_captures_and_saves",),
    "wsd-capture sdxl": ("packages/wsd-capture/tests/test_api.py",),
    "wsd-compile sd15": (
        "tests/test_sd15_cli_build.py::test_fp16_build_of_the_preset",
        "packages/wsd-compile/tests/test_sd15_cli.py::test_model_and_preset_are_exclusive",
    ),
    "wsd-compile sdxl": (
        "packages/wsd-compile/tests/test_sdxl_cli.py::test_fp16_build_keeps_the_upcast_vae_in_fp32",
        "packages/wsd-compile/tests/test_sdxl_cli.py::test_the_default_size_is_the_models_native",
    ),
    "wsd-compile runtime": (
        "packages/wsd-compile/tests/test_cli.py::test_runtime_prints_the_objects",
    ),
    "wsd-compile check": (
        "packages/wsd-compile/tests/test_cli.py::test_check_writes_a_runnable_directory",
    ),
    "wsd-web serve": (
        "packages/wsd-web/tests/test_server.py::test_serve_command_prints_its_url_and_serves",
    ),
    "wsd-web render": ("tests/test_sd15_browser.py::test_render_cli_writes_png_and_timings",),
    "wsd-web check": ("tests/test_runtime_check.py::test_wsd_web_check_reports_and_passes",),
    "wsd-web bench": ("tests/test_bench_smoke.py::test_bench_reports_every_field_on_swiftshader",),
    "wsd-web soak": (
        "tests/test_soak_smoke.py::test_soak_varies_prompts_and_schedulers_and_memory_returns",
    ),
    "wsd-web report": (
        "packages/wsd-web/tests/test_bench_report_cli.py::test_report_writes_the_result_its_charts_and_the_page",
    ),
    "python -m wsd_capture.bench": (
        "packages/wsd-capture/tests/test_bench.py::test_tiny_sd15_on_the_cpu_gives_a_complete_record",
    ),
    # runtime.md: building a TVM checkout's web runtime (upstream's path); wsd's side of it.
    "make": (
        "packages/wsd-compile/tests/test_runtime.py::test_tvm_home_objects_are_used_as_they_are",
        "packages/wsd-compile/tests/test_runtime.py::test_tvm_home_without_a_web_build_says_how_to_build_it",
    ),
}

#: Shell built-ins in command blocks that set up the environment for the next line.
SHELL_SETUP = {"export", "cd"}


# --- Markdown ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    file: Path
    number: int
    text: str
    fence: str | None  # the info string of the fenced block the line is in, else None

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.number}"


def markdown_lines(path: Path) -> Iterator[Line]:
    """Every line with the fenced block it belongs to (fence lines themselves are skipped)."""
    fence: str | None = None
    marker = ""
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = re.match(r"\s*(`{3,}|~{3,})\s*([^\s`]*)", text)
        if fence is None and match:
            marker, fence = match.group(1), match.group(2)
            continue
        if fence is not None and match and text.strip() == marker:
            fence = None
            continue
        yield Line(path, number, text, fence)


def github_slug(heading: str) -> str:
    """The anchor GitHub (and myst's ``heading_anchors``) give a heading."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in markdown_lines(path):
        match = re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line.text)
        if line.fence is None and match:
            slug = github_slug(match.group(2))
            unique, n = slug, 0
            while unique in found:
                n += 1
                unique = f"{slug}-{n}"
            found.add(unique)
    return found


def links(path: Path) -> Iterator[tuple[Line, str]]:
    for line in markdown_lines(path):
        if line.fence is not None:
            continue
        prose = re.sub(r"(`+).*?\1", "", line.text)
        for match in re.finditer(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose):
            yield line, match.group(1)
        for match in re.finditer(r"^\s*\[[^\]]+\]:\s*(\S+)", prose):
            yield line, match.group(1)


def link_problem(line: Line, target: str) -> str | None:
    if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
        return None
    path_part, _, anchor = target.partition("#")
    dest = (line.file.parent / path_part).resolve() if path_part else line.file
    if not dest.exists():
        return f"{dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} does not exist"
    if not dest.is_relative_to(ROOT):
        return "points outside the repository"
    if anchor:
        if dest.suffix != ".md":
            return "an anchor into a file that is not Markdown"
        if anchor not in anchors(dest):
            return f"{dest.relative_to(ROOT)} has no heading with the anchor #{anchor}"
    return None


def test_every_link_in_the_readme_and_docs_resolves() -> None:
    problems = [
        f"{line.where}: ({target}): {problem}"
        for path in DOC_FILES
        for line, target in links(path)
        if (problem := link_problem(line, target)) is not None
    ]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_link_checker_sees_links_and_anchors() -> None:
    """The checks above are not vacuous: they find the README's links and the docs' anchors."""
    readme_targets = {target for _, target in links(ROOT / "README.md")}
    assert "docs/hosting.md" in readme_targets
    assert "https-outside-localhost" in anchors(DOCS / "hosting.md")
    line = Line(ROOT / "README.md", 1, "", None)
    assert link_problem(line, "docs/hosting.md#no-such-heading") is not None
    assert link_problem(line, "docs/no-such-page.md") is not None
    assert link_problem(line, "docs/hosting.md#cors-a-model-on-another-origin") is None


def test_every_docs_page_is_linked_from_the_readme_and_the_site_index() -> None:
    readme = {(ROOT / t.partition("#")[0]).resolve() for _, t in links(ROOT / "README.md")}
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    toctree = re.search(r"```\{toctree\}(.*?)```", index, re.S)
    assert toctree, "docs/index.md has no toctree"
    listed = set(toctree.group(1).split())
    pages = [p for p in DOCS.glob("*.md") if p.name != "index.md"]
    not_in_readme = [p.name for p in pages if p.resolve() not in readme]
    not_in_index = [p.name for p in pages if p.stem not in listed]
    assert not not_in_readme, f"docs pages the README does not link: {not_in_readme}"
    assert not not_in_index, f"docs pages missing from docs/index.md's toctree: {not_in_index}"


# --- Commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    where: str
    text: str
    tokens: tuple[str, ...]  # shell words, env assignments and comments removed

    @property
    def keys(self) -> set[str]:
        """What runs, per alternative: ``bash scripts/x.sh``, ``python -m module``,
        ``wsd-web serve``, ``make``."""
        return {command_key(argv) for argv in variants(self.tokens)}


def command_key(argv: list[str]) -> str:
    program = argv[0]
    if program == "bash":
        return f"bash {argv[1]}"
    if program in ("python", "python3") and argv[1] == "-m":
        return f"python -m {argv[2]}"
    if program.startswith("wsd-"):
        sub = next((w for w in argv[1:] if not w.startswith("-")), "")
        return f"{program} {sub}".strip()
    return program


def expand_word(word: str, choice: int) -> str:
    alternatives = word.split("|") if "|" in word and word != "|" else [word]
    return alternatives[min(choice, len(alternatives) - 1)]


def command_texts(path: Path) -> Iterator[tuple[str, str]]:
    """(file:line, command) for every command in a shell block.

    A line ending in ``\\``, or a line indented more than the command's first
    line, continues the command (as in usage synopses); ``console`` blocks
    hold commands only on ``$ `` lines.
    """
    current: list[str] = []
    where = ""
    indent = 0
    lines = [line for line in markdown_lines(path) if line.fence in SHELL_FENCES]
    for i, line in enumerate(lines):
        text = line.text
        if line.fence == "console":
            if not text.lstrip().startswith("$ "):
                continue
            text = text.lstrip()[2:]
        level = len(text) - len(text.lstrip())
        continues = bool(current) and (
            current[-1].rstrip().endswith("\\")
            or (level > indent and lines[i - 1].number == line.number - 1)
        )
        if not continues:
            if current:
                yield where, " ".join(part.rstrip().removesuffix("\\") for part in current)
            current, where, indent = [], line.where, level
        if text.strip():
            current.append(text.strip())
    if current:
        yield where, " ".join(part.rstrip().removesuffix("\\") for part in current)


def documented_commands() -> list[Command]:
    commands: list[Command] = []
    for path in DOC_FILES:
        for where, text in command_texts(path):
            words = shlex.split(text, comments=True)
            if not words:
                continue
            for part in " ".join(shlex.quote(w) for w in words).split(" '&&' "):
                for piece in part.split(" ';' "):
                    tokens = synopsis_tokens(shlex.split(piece))
                    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
                        tokens = tokens[1:]
                    if tokens and tokens[0] not in SHELL_SETUP:
                        commands.append(Command(where, text, tuple(tokens)))
    return commands


def synopsis_tokens(words: list[str]) -> list[str]:
    """Shell words with usage syntax split off: ``[--x N]...`` -> ``[ --x N ]``."""
    tokens: list[str] = []
    for word in words:
        body = word.lstrip("[(")
        head = word[: len(word) - len(body)]
        body = body.removesuffix("...")
        stripped = body.rstrip("])")
        tail = body[len(stripped) :]
        tokens += list(head)
        if stripped:
            tokens.append(stripped.removesuffix("..."))
        tokens += list(tail)
    return tokens


def variants(tokens: tuple[str, ...]) -> list[list[str]]:
    """Concrete argument lists for a usage line: none of the optional parts, then all of
    them once per alternative (``a|b``, ``(x | y)``), so every flag and choice is used."""
    widest = max(
        [len(t.split("|")) for t in tokens if "|" in t and t != "|"]
        + [tokens.count("|") + 1 if "|" in tokens else 1]
    )
    result = [_expand(list(tokens), choice=0, optional=False)]
    result += [_expand(list(tokens), choice=c, optional=True) for c in range(widest)]
    unique: list[list[str]] = []
    for argv in result:
        if argv not in unique:
            unique.append(argv)
    return unique


def _expand(tokens: list[str], *, choice: int, optional: bool) -> list[str]:
    out: list[str] = []
    while tokens:
        token = tokens.pop(0)
        if token in ("[", "("):
            depth, inner = 1, []
            while depth:
                t = tokens.pop(0)
                depth += {"[": 1, "(": 1, "]": -1, ")": -1}.get(t, 0)
                if depth:
                    inner.append(t)
            branches: list[list[str]] = [[]]
            level = 0
            for t in inner:
                level += {"[": 1, "(": 1, "]": -1, ")": -1}.get(t, 0)
                if t == "|" and level == 0:
                    branches.append([])
                else:
                    branches[-1].append(t)
            if token == "(" or optional:
                branch = branches[min(choice, len(branches) - 1)]
                out += _expand(branch, choice=choice, optional=optional)
        else:
            out.append(expand_word(token, choice))
    return out


def substitute(argv: list[str], values: dict[str, str]) -> list[str]:
    out: list[str] = []
    for i, word in enumerate(argv):
        if _PLACEHOLDER.fullmatch(word):
            previous = argv[i - 1] if i else ""
            if previous in AFTER_FLAG:
                word = AFTER_FLAG[previous]
            elif word in values:
                word = values[word]
            else:
                raise AssertionError(
                    f"unknown placeholder {word}: add it to PLACEHOLDERS in tests/test_docs.py "
                    "and to the list in docs/testing.md"
                )
        out.append(word)
    return out


def cli_module(key: str) -> Any | None:
    """The module whose ``build_parser``/``main`` a command runs, or None if not wsd's."""
    program = key.split()[0] if not key.startswith("python -m ") else key
    if program.startswith("python -m wsd_"):
        module = importlib.import_module(key.removeprefix("python -m "))
        if hasattr(module, "build_parser"):
            return module
        return importlib.import_module(f"{module.__name__}.cli")
    if program.startswith("wsd-"):
        (entry,) = importlib.metadata.entry_points(group="console_scripts", name=program)
        return importlib.import_module(entry.value.split(":")[0])
    return None


COMMANDS = documented_commands()


def test_the_docs_show_commands_and_they_are_all_known() -> None:
    """Every documented command is run here or listed with the tests that run it."""
    assert len(COMMANDS) > 20, "the command extraction found almost nothing"
    unknown = sorted(
        {
            f"{c.where}: {key}"
            for c in COMMANDS
            for key in c.keys
            if key not in RUN_HERE and key not in EXERCISED_ELSEWHERE
        }
    )
    assert not unknown, (
        "commands in the docs that no test exercises; run them in tests/test_docs.py "
        "(RUN_HERE) or add the tests that do to EXERCISED_ELSEWHERE:\n" + "\n".join(unknown)
    )
    shown = {key for c in COMMANDS for key in c.keys}
    stale = sorted((set(RUN_HERE) | set(EXERCISED_ELSEWHERE)) - shown)
    assert not stale, f"commands the docs no longer show; remove them here: {stale}"


def test_the_tests_said_to_exercise_documented_commands_exist() -> None:
    missing = []
    for key, refs in EXERCISED_ELSEWHERE.items():
        for ref in refs:
            path, _, name = ref.partition("::")
            file = ROOT / path
            if not file.is_file():
                missing.append(f"{key}: {path} does not exist")
            elif name:
                tree = ast.parse(file.read_text(encoding="utf-8"))
                names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
                if name not in names:
                    missing.append(f"{key}: {path} has no test {name}")
            elif key.startswith("bash ") and key.split()[1] not in file.read_text():
                missing.append(f"{key}: {path} does not run {key.split()[1]}")
    assert not missing, "\n".join(missing)


def test_documented_scripts_exist() -> None:
    missing = [
        f"{c.where}: {key}"
        for c in COMMANDS
        for key in c.keys
        if key.startswith("bash ") and not (ROOT / key.split()[1]).is_file()
    ]
    assert not missing, f"scripts the docs run that do not exist: {missing}"


@pytest.mark.parametrize(
    "command",
    [c for c in COMMANDS if c.tokens[0].startswith("wsd-") or "-m" in c.tokens[:2]],
    ids=lambda c: c.where,
)
def test_documented_command_parses_with_the_real_cli(
    command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    from wsd_capture import quiet_libraries

    quiet_libraries()  # as wsd-compile's main does before building its parser
    for argv in variants(command.tokens):
        key = command_key(argv)
        module = cli_module(key)
        assert module is not None and hasattr(module, "build_parser"), key
        values = {**PLACEHOLDERS, **FOR_COMMAND.get(key, {})}
        args = substitute(argv, values)[3 if key.startswith("python -m ") else 1 :]
        try:
            module.build_parser().parse_args(args)
        except SystemExit as exit:
            message = capsys.readouterr().err.strip().splitlines()[-1:]
            raise AssertionError(
                f"{command.where}: `{shlex.join(args)}` is refused by {key.split()[0]}: "
                f"{message[0] if message else exit.code}"
            ) from None


def test_the_parse_check_refuses_a_wrong_flag() -> None:
    """What the test above relies on: a misspelt flag or subcommand is refused."""
    module = cli_module("wsd-web serve")
    assert module is not None
    with pytest.raises(SystemExit):
        module.build_parser().parse_args(["serve", "model-dir", "--prot", "8000"])
    with pytest.raises(SystemExit):
        module.build_parser().parse_args(["server", "model-dir"])


def test_usage_lines_expand_to_every_option_and_alternative() -> None:
    tokens = tuple(
        synopsis_tokens(
            shlex.split("wsd-compile sd15 (--model DIR | --preset NAME) [--precision fp32|fp16]")
        )
    )
    assert variants(tokens) == [
        ["wsd-compile", "sd15", "--model", "DIR"],
        ["wsd-compile", "sd15", "--model", "DIR", "--precision", "fp32"],
        ["wsd-compile", "sd15", "--preset", "NAME", "--precision", "fp16"],
    ]


#: Where the docs' commands find a build: each is the cached tiny-sd15 build.
BUILD_PATHS = (PLACEHOLDERS["DIR"], "build/tiny", "build/sd15")


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if c.keys & set(RUN_HERE)], ids=lambda c: c.where
)
def test_documented_command_runs(
    command: Command, tiny_sd15_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n, argv in enumerate(variants(command.tokens)):
        key = command_key(argv)
        module = cli_module(key)
        assert module is not None and key in RUN_HERE, key
        cwd = tmp_path / str(n)
        for name in BUILD_PATHS:
            (cwd / name).parent.mkdir(parents=True, exist_ok=True)
            (cwd / name).symlink_to(tiny_sd15_build, target_is_directory=True)
        monkeypatch.chdir(cwd)
        args = substitute(argv, {**PLACEHOLDERS, **RUN_HERE[key]})[1:]
        assert module.main(args) == 0, f"{command.where}: `{shlex.join(args)}` failed"


# --- Python examples --------------------------------------------------------------------


def python_blocks() -> Iterator[tuple[str, str]]:
    for path in DOC_FILES:
        block: list[Line] = []
        for line in [*markdown_lines(path), Line(path, 0, "", None)]:
            if line.fence == "python":
                block.append(line)
            elif block:
                yield block[0].where, "\n".join(b.text for b in block)
                block = []


@pytest.mark.parametrize("where, source", list(python_blocks()), ids=lambda v: str(v)[:40])
def test_python_examples_import_real_names_and_call_them_correctly(where: str, source: str) -> None:
    """Each example compiles; what it imports from wsd exists, and its calls bind."""
    tree = ast.parse(source, filename=where)
    imported: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wsd_"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert hasattr(module, alias.name), f"{where}: {node.module} has no {alias.name}"
                imported[alias.asname or alias.name] = getattr(module, alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in imported
        ):
            signature = inspect.signature(imported[node.func.id])
            try:
                signature.bind(*node.args, **{k.arg: k.value for k in node.keywords if k.arg})
            except TypeError as e:
                raise AssertionError(f"{where}: {node.func.id}(...): {e}") from None


# --- The troubleshooting table ----------------------------------------------------------


def quoted_messages(path: Path, section: str) -> Iterator[tuple[Line, str]]:
    inside = False
    for line in markdown_lines(path):
        if line.fence is None and line.text.startswith("#"):
            inside = line.text.lstrip("#").strip().lower().startswith(section)
        elif inside and line.text.startswith("|"):
            first = line.text.split("|")[1]
            for match in re.finditer(r"`([^`]+)`", first):
                yield line, match.group(1)


def test_troubleshooting_messages_are_the_ones_the_code_says() -> None:
    """The client guide quotes error messages; each quoted piece must be in the sources
    (``…`` stands for what the code fills in)."""
    sources = "\n".join(
        p.read_text(encoding="utf-8")
        for pattern in ("packages/wsd-web/src/wsd_web/static/**/*.js", "packages/*/src/**/*.py")
        for p in ROOT.glob(pattern)
        if "vendor" not in p.parts
    )
    messages = list(quoted_messages(DOCS / "client.md", "troubleshooting"))
    assert len(messages) >= 10
    wrong = [
        f"{line.where}: {piece!r}"
        for line, message in messages
        for piece in message.split("…")
        if piece.strip() and piece not in sources
    ]
    assert not wrong, "messages the code does not (or no longer) say:\n" + "\n".join(wrong)


# --- The Sphinx site --------------------------------------------------------------------


def test_the_docs_site_builds_with_every_reference_resolved(tmp_path: Path) -> None:
    """The build CI runs (scripts/test.sh): warnings are errors, references nitpicky."""
    out = tmp_path / "html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "-n",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "docs",
            out,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in ("wsd_compile.compile_sdxl", "wsd_artifacts.verify", "wsd_capture.capture_sd15"):
        assert f'id="{name}"' in api, f"{name} is missing from the API reference"
