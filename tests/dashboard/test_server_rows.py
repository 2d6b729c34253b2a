"""The dashboard's pages about one policy or one device find their row by id, or answer 404 with
the page's own message (dashboard/server.py `_row_of`, shared by both pages)."""

from __future__ import annotations

import pytest

from dashboard.server import _row_of
from faultproof.errors import FaultproofError, Reason

ROWS = [{"device_id": "aa" * 32, "n": 1}, {"device_id": "bb" * 32, "n": 2}]


def test_the_row_with_that_id() -> None:
    assert _row_of(ROWS, "device_id", "bb" * 32, "no such device on the ledger") is ROWS[1]


@pytest.mark.parametrize("rows", [ROWS, []])
def test_no_row_is_not_found_with_the_pages_message(rows: list[dict[str, object]]) -> None:
    with pytest.raises(FaultproofError) as info:
        _row_of(rows, "device_id", "cc" * 32, "no such device on the ledger")
    assert info.value.reason is Reason.NOT_FOUND and info.value.reason.http_status == 404
    assert info.value.to_json() == {"error": {"code": "not_found", "message": "no such device on the ledger"}}
