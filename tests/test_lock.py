"""scripts/check_lock.py on the real lock and environment, and on locks and pyprojects
that are wrong in one way each: every problem is named, with the command that fixes it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "dev.lock"


check_lock = load_script("check_lock")


def _drop(text: str, name: str) -> str:
    """The lock text without ``name``'s entry (its pin line and hash lines)."""
    pattern = re.compile(
        rf"^{re.escape(name)}==[^\n]*\\\n(    --hash=[^\n]*\\\n)*    --hash=[^\n]*\n", re.M
    )
    out, count = pattern.subn("", text)
    assert count == 1, name
    return out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the pyprojects and the lock that a test may change."""
    for rel in ["pyproject.toml", "requirements/dev.lock"] + [
        f"packages/{p}/pyproject.toml" for p in check_lock.PACKAGES
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, tmp_path / rel)
    return tmp_path


def test_the_environment_matches_the_lock_and_the_lock_the_pyprojects() -> None:
    assert check_lock.check(ROOT, LOCK) == []
    lock = check_lock.read_lock(LOCK)
    assert str(lock["torch"].version) == "2.13.0+cpu"  # the CPU wheel, never a CUDA one
    for name in ("bandit", "sphinx", "myst-parser", "pytest", "hatchling", "editables", "pip"):
        assert name in lock, name
    assert check_lock.main(["--lock", str(LOCK)]) == 0


def test_a_lock_missing_an_entry_fails_naming_it(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tree / "requirements" / "dev.lock"
    lock.write_text(_drop(lock.read_text(), "numpy"))
    problems = check_lock.check(tree, lock)
    installed = check_lock.installed()["numpy"]
    assert problems == [
        f"numpy {installed} is installed but not in the lock: run `bash scripts/setup.sh`"
    ]
    # Environment aside, the lock itself is stale against the pyprojects.
    stale = check_lock.stale_problems(check_lock.read_lock(lock), check_lock.declared(tree))
    assert "numpy>=1.24 (packages/wsd-artifacts/pyproject.toml) is not in the lock" in stale
    assert "numpy>=1.24 (packages/wsd-compile/pyproject.toml) is not in the lock" in stale
    assert check_lock.main(["--lock", str(lock), "--root", str(tree)]) == 1
    assert "numpy" in capsys.readouterr().err


def test_a_transitive_requirement_missing_from_the_lock_is_named(tree: Path) -> None:
    lock = tree / "requirements" / "dev.lock"
    lock.write_text(_drop(lock.read_text(), "mpmath"))  # torch -> sympy -> mpmath
    stale = check_lock.stale_problems(check_lock.read_lock(lock), check_lock.declared(tree))
    assert len(stale) == 1 and re.fullmatch(
        r"mpmath.* \(required by sympy\) is not in the lock", stale[0]
    )


def test_a_pyproject_requirement_the_lock_does_not_satisfy_is_stale(tree: Path) -> None:
    root = tree / "pyproject.toml"
    root.write_text(root.read_text().replace('"pytest==9.2.0"', '"pytest==9.3.0"'))
    web = tree / "packages" / "wsd-web" / "pyproject.toml"
    web.write_text(
        web.read_text().replace(
            'dependencies = ["wsd-artifacts"]', 'dependencies = ["wsd-artifacts", "rich>=99"]'
        )
    )
    problems = check_lock.check(tree, tree / "requirements" / "dev.lock")
    regenerate = "the lock is stale, run `python scripts/check_lock.py --update`"
    assert (
        "pytest==9.3.0 (pyproject.toml [dependency-groups] dev) is locked at 9.2.0, "
        f"which does not fit: {regenerate}" in problems
    )
    assert any(
        p.startswith("rich>=99 (packages/wsd-web/pyproject.toml) is locked at ") for p in problems
    )
    assert len(problems) == 2


def test_an_entry_nothing_requires_is_stale(tree: Path) -> None:
    root = tree / "pyproject.toml"
    root.write_text(root.read_text().replace('  "bandit==1.9.4",\n', ""))
    stale = check_lock.stale_problems(
        check_lock.read_lock(tree / "requirements" / "dev.lock"), check_lock.declared(tree)
    )
    assert stale == ["bandit==1.9.4 is locked but nothing requires it"] + [
        f"{name}=={check_lock.read_lock(LOCK)[name].version} is locked but nothing requires it"
        for name in ("stevedore",)
    ]


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("numpy>=2 \\\n    --hash=sha256:" + "0" * 64, "is not pinned as name==version"),
        ("numpy==2.4.6", "needs --hash=sha256"),
        ("numpy==2.4.6 \\\n    --hash=md5:" + "0" * 32, "has a hash that is not sha256"),
        ("numpy==2.4.6 --no-binary numpy --hash=sha256:" + "0" * 64, "needs --hash=sha256"),
    ],
)
def test_an_entry_without_an_exact_pin_and_a_sha256_is_refused(
    tmp_path: Path, entry: str, error: str
) -> None:
    lock = tmp_path / "dev.lock"
    lock.write_text(f"# comment\n{entry}\n")
    with pytest.raises(check_lock.LockError, match=error):
        check_lock.read_lock(lock)
    [problem] = check_lock.check(tmp_path, lock)
    assert problem.startswith(f"{lock}:2: numpy") and error in problem, problem
    assert problem.endswith("write the lock with `python scripts/check_lock.py --update`")


def test_the_lock_renders_back_to_itself() -> None:
    entries = check_lock.read_lock(LOCK).values()
    assert check_lock.render(sorted(entries, key=lambda e: e.name)) == LOCK.read_text()
