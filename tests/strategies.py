"""Hypothesis strategies for every message type, derived from the message schemas themselves,
so a new field or type is covered without touching the tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from faultproof.chain import P
from faultproof.errors import Reason, Stage
from faultproof.messages import (
    ADMIN_ARGS,
    MESSAGE_TYPES,
    AdminTx,
    Bytes,
    FieldBytes,
    FieldType,
    ListOf,
    Message,
    Nested,
    ReasonCode,
    RejectBody,
    UInt,
)


def for_field(ftype: FieldType, owner: type[Message]) -> st.SearchStrategy[Any]:
    if isinstance(ftype, FieldBytes):
        return st.integers(0, P - 1).map(lambda v: v.to_bytes(32, "big"))
    if isinstance(ftype, Bytes):
        if ftype.exact is not None:
            return st.binary(min_size=ftype.exact, max_size=ftype.exact)
        return st.binary(max_size=min(ftype.max_len or 0, 64))
    if isinstance(ftype, UInt):
        return st.integers(0, ftype.limit - 1)
    if isinstance(ftype, ReasonCode):
        allowed = [r for r in Reason if owner is not RejectBody or r.stage is Stage.LEDGER_STATE]
        return st.sampled_from(allowed)
    if isinstance(ftype, ListOf):
        return st.lists(for_field(ftype.item, owner), max_size=min(ftype.max_len, 3)).map(tuple)
    if isinstance(ftype, Nested):
        return st.one_of([st.deferred(lambda t=t: for_message(t)) for t in ftype.types])
    raise AssertionError(f"no strategy for {ftype!r}")


def for_message(cls: type[Message]) -> st.SearchStrategy[Message]:
    if cls is AdminTx:
        return st.one_of([
            st.builds(AdminTx.make, st.binary(min_size=32, max_size=32), st.integers(0, 2**64 - 1), for_message(a))
            for a in ADMIN_ARGS.values()
        ])
    fields = {name: for_field(ft, cls) for name, ft in cls.schema()}
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


any_message = st.sampled_from(sorted(MESSAGE_TYPES.values(), key=lambda c: c.TYPE_ID)).flatmap(for_message)
