"""docs/security.md has no stale rows: every test it names exists, and no case is marked FAIL
(every registered case runs in `make test`, which allows no xfail, so a FAIL row is out of date)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "security.md").read_text()


def _tests_defined() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        out[path.relative_to(ROOT).as_posix()] = set(re.findall(r"def (test_\w+)", path.read_text()))
    return out


def test_every_test_the_security_page_names_exists() -> None:
    defined = _tests_defined()
    everything = set().union(*defined.values())
    modules = {Path(p).stem for p in defined}
    named = re.findall(r"(tests/[\w/]+\.py)(?:::(\w+))?", DOC)
    assert len(named) >= 10
    for path, test in named:
        assert (ROOT / path).is_file(), f"security.md names {path}, which does not exist"
        assert not test or test in defined.get(path, set()), f"security.md names {path}::{test}, which does not exist"
    bare = set(re.findall(r"`(?:[\w/.]*::)?(test_\w+)`", DOC)) | set(re.findall(r"::(test_\w+)", DOC))
    stale = sorted(n for n in bare if n not in everything and n not in modules)
    assert stale == []


def test_no_case_row_is_marked_failing() -> None:
    rows = [line for line in DOC.splitlines() if re.match(r"^\| [A-Z0-9]+-[A-Z0-9-]+ \|", line)]
    assert len(rows) >= 80
    failing = [row.split("|")[1].strip() for row in rows if row.rstrip(" |").split("|")[-1].strip().startswith("FAIL")]
    assert failing == []
