"""One reason enum: documented, every code maps to a client-error or unavailable status."""

from __future__ import annotations

from pathlib import Path

from faultproof.errors import FaultproofError, Reason, Stage, reasons_markdown

DOC = Path(__file__).parent.parent / "docs" / "reasons.md"


def test_docs_list_exactly_the_enum() -> None:
    assert DOC.read_text() == reasons_markdown(), "regenerate: faultproof reasons > docs/reasons.md"
    for reason in Reason:
        assert f"| `{reason.value}` |" in DOC.read_text()


def test_every_reason_has_stage_status_and_description() -> None:
    for reason in Reason:
        assert isinstance(reason.stage, Stage)
        assert 400 <= reason.http_status < 500 or reason is Reason.UNAVAILABLE
        assert reason.description


def test_error_json_shape() -> None:
    err = FaultproofError(Reason.BAD_PROOF)
    assert err.to_json() == {"error": {"code": "bad_proof", "message": Reason.BAD_PROOF.description}}
    assert FaultproofError(Reason.OVERSIZE, "too big").to_json()["error"]["message"] == "too big"
