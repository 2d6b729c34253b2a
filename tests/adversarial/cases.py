"""The registry of adversarial case ids (ADV-<AREA>-<NN>).

Every case is registered here when its test module is imported, with the threat it plays: a
decorated test function (`@case`) or one parameter of a parametrized test (`param`). The pytest
id of a case is its case id, so `pytest -k ADV-CLM-05` runs one case. `docs/security.md` lists
the same ids; test_z_final.py checks the two sets are equal.

This module only records ids; it never runs anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

CASE_ID = re.compile(r"^ADV-[A-Z]{3}-\d{2}$")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Case:
    case_id: str
    threat: str
    where: str  # module:function


CASES: dict[str, Case] = {}


def _register(case_id: str, threat: str, where: str) -> None:
    assert CASE_ID.match(case_id), f"case id {case_id!r} is not ADV-XXX-NN"
    old = CASES.get(case_id)
    assert old is None or old.where == where, f"case id {case_id} used twice: {old} and {where}"
    CASES[case_id] = Case(case_id, threat, where)


def case(case_id: str, threat: str) -> Callable[[F], F]:
    """Register a test function as one case."""

    def mark(fn: F) -> F:
        _register(case_id, threat, f"{fn.__module__}:{fn.__name__}")
        return pytest.mark.adv_case(case_id)(fn)  # type: ignore[no-any-return]

    return mark


def param(case_id: str, threat: str, *values: Any, where: str = "") -> Any:
    """One parameter set of a parametrized test, registered as one case (pytest id = case id)."""
    _register(case_id, threat, where or case_id)
    return pytest.param(*values, id=case_id, marks=pytest.mark.adv_case(case_id))
