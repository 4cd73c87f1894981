"""Code-size gates for the Python in packages/: no module over 600 lines, no
function over 80.

A module's size is its line count; a function's runs from its ``def`` line to
its last line (docstring, comments and blank lines included; a nested function
counts within its parent and on its own). The JavaScript has the same limits
through eslint's ``max-lines`` and ``max-lines-per-function``
(packages/wsd-web/eslint.config.js). Generated and vendored code is not ours
to size: node_modules and static/vendor hold no Python we write.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
NOT_OURS = ("node_modules", "vendor")


def python_modules(root: Path = ROOT) -> list[Path]:
    """Every ``.py`` under packages/*/src and packages/*/tests, vendored code aside."""
    found = {
        path
        for pattern in ("packages/*/src/**/*.py", "packages/*/tests/**/*.py")
        for path in root.glob(pattern)
        if not set(NOT_OURS) & set(path.relative_to(root).parts)
    }
    return sorted(found)


def long_modules(paths: Iterable[Path], root: Path = ROOT) -> list[str]:
    """``path: N lines`` for each module over the limit."""
    sizes = ((path, len(path.read_text().splitlines())) for path in paths)
    return [
        f"{path.relative_to(root)}: {size} lines" for path, size in sizes if size > MAX_MODULE_LINES
    ]


def long_functions(paths: Iterable[Path], root: Path = ROOT) -> list[str]:
    """``path:line name: N lines`` for each function over the limit."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    where = f"{path.relative_to(root)}:{node.lineno}"
                    found.append(f"{where} {node.name}: {size} lines")
    return sorted(found)


def test_the_gates_see_every_package() -> None:
    packages = {path.relative_to(ROOT).parts[1] for path in python_modules()}
    assert packages == {p.name for p in (ROOT / "packages").iterdir() if p.is_dir()}


def test_no_module_over_600_lines() -> None:
    offenders = "\n".join(long_modules(python_modules()))
    assert not offenders, f"split these modules (over {MAX_MODULE_LINES} lines):\n{offenders}"


def test_no_function_over_80_lines() -> None:
    offenders = "\n".join(long_functions(python_modules()))
    assert not offenders, f"split these functions (over {MAX_FUNCTION_LINES} lines):\n{offenders}"


def _package(root: Path, module: str, source: str) -> Path:
    path = root / "packages" / "wsd-x" / module
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


def _function(name: str, lines: int) -> str:
    return f"def {name}():\n" + "    pass\n" * (lines - 1)


def test_the_gates_flag_what_is_over_the_limits_and_nothing_else(tmp_path: Path) -> None:
    ok = _function("at_limit", MAX_FUNCTION_LINES) + "\n" * (MAX_MODULE_LINES - 80)
    _package(tmp_path, "src/wsd_x/ok.py", ok)
    _package(tmp_path, "src/wsd_x/big.py", "x = 1\n" * (MAX_MODULE_LINES + 1))
    _package(tmp_path, "tests/test_x.py", "\n" + _function("too_long", MAX_FUNCTION_LINES + 1))
    _package(tmp_path, "src/wsd_x/static/vendor/lib.py", "x = 1\n" * 1000)

    modules = python_modules(tmp_path)

    assert [p.name for p in modules] == ["big.py", "ok.py", "test_x.py"]
    assert long_modules(modules, tmp_path) == [
        f"{Path('packages/wsd-x/src/wsd_x/big.py')}: 601 lines"
    ]
    assert long_functions(modules, tmp_path) == [
        f"{Path('packages/wsd-x/tests/test_x.py')}:2 too_long: 81 lines"
    ]
