"""The guides as an operator reads them: every link stays inside the repository and points at a
file that exists, and every `faultproof …` command in a code block names a command and options that
exist (each is parsed by the real command line with --help appended). The quick start's and the
operators' guides' command blocks also run for real, in order, in tests/operators/test_trial.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main

REPO = Path(__file__).resolve().parents[2]
GUIDES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)


def _commands(text: str) -> list[str]:
    out = []
    for block in FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ").removeprefix("sudo ").removeprefix("-u faultproof ")
            line = re.sub(r"^(sudo -u \S+ )", "", line)
            if not re.match(r"^(\.venv/bin/|/usr/local/bin/)?faultproof\s", line):
                continue
            line = line.split(" #", 1)[0].rstrip(" &")
            out.append(line)
    return out


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_links_stay_in_the_repository(guide: Path) -> None:
    for target, _ in LINK.findall(guide.read_text()):
        if re.match(r"^[a-z]+:", target):  # http(s), mailto: not a file of ours
            continue
        path = (guide.parent / target).resolve()
        assert path.is_relative_to(REPO), f"{guide.name}: {target} leaves the repository"
        assert path.exists(), f"{guide.name}: {target} does not exist"


def _args(line: str) -> list[str]:
    line = re.sub(r"\$\([^)]*\)", "x", line)
    words = shlex.split(line)[1:]
    return [w for w in words]


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_command_in_a_guide_exists(guide: Path) -> None:
    runner = CliRunner()
    for line in _commands(guide.read_text()):
        args = _args(line)
        result = runner.invoke(main, [*args, "--help"])
        assert result.exit_code == 0, f"{guide.name}: `{line}` does not parse:\n{result.output}"


def test_the_guides_have_commands() -> None:
    assert sum(len(_commands(g.read_text())) for g in GUIDES) >= 20
