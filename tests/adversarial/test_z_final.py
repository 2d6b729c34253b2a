"""The suite's closing checks: after every attack, the development ledger verifies from genesis and
holds exactly the payouts the cases expected (each once, none else); and the case ids in
docs/security.md are exactly the ids of the suite."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from tests.adversarial.advnet import AdvNetwork, LedgerBook, assert_ledger_verifies, snapshot
from tests.adversarial.cases import CASE_ID, CASES, case

SECURITY_MD = Path(__file__).resolve().parents[2] / "docs" / "security.md"
ID_IN_TEXT = re.compile(r"\bADV-[A-Z]{3}-\d{2}\b")


@case("ADV-INV-01", "after the whole suite: the ledger verifies and paid exactly the expected claims, once each")
def test_ledger_after_every_attack(net: AdvNetwork, book: LedgerBook) -> None:
    net.ensure_healthy()
    assert_ledger_verifies(net)
    book.check(net)
    balances = snapshot(net).balances
    assert sum(balances.values()) == 0, balances  # double entry: the accounts sum to zero


@case("ADV-INV-02", "the case ids in docs/security.md and in the suite are the same set")
def test_security_doc_lists_exactly_the_suite_cases() -> None:
    for module in sorted(Path(__file__).parent.glob("test_*.py")):
        importlib.import_module(f"tests.adversarial.{module.stem}")  # registers its cases
    text = SECURITY_MD.read_text()
    table_ids = {m.group(0) for line in text.splitlines() if line.startswith("| ADV-")
                 for m in [ID_IN_TEXT.search(line)] if m}
    assert all(CASE_ID.match(i) for i in CASES)
    assert table_ids == set(CASES), (f"in docs/security.md only: {sorted(table_ids - set(CASES))}; "
                                     f"in the suite only: {sorted(set(CASES) - table_ids)}")
    assert len(CASES) >= 40
