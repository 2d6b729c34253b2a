"""ProofPool: proving and verifying in worker processes, awaited from asyncio."""

from __future__ import annotations

import asyncio

import pytest

from faultproof.errors import DecodeError
from faultproof.zk import BuiltCircuit, ProvingError, Witness
from faultproof.zk.pool import ProofPool

from .cases import CASES
from .test_circuit import case_inputs


def witness(kind: int) -> Witness:
    case = list(CASES.values())[kind - 1]
    return Witness.build(readings=case.readings, timestamps=case.timestamps,
                         blindings=case.blindings, c_start=case.c_start, t_start=case.t_start,
                         params=case.params)


async def test_pool_proves_and_verifies(built: BuiltCircuit) -> None:
    async with ProofPool(workers=2, preload=[built]) as pool:
        witnesses = [witness(k) for k in (1, 3, 5)]
        proofs = await asyncio.gather(*(pool.prove(built, w) for w in witnesses))
        items = [(p, w.public) for p, w in zip(proofs, witnesses, strict=True)]
        bad = [(proofs[0], witnesses[1].public), (b"\0" * 256, witnesses[0].public),
               (proofs[1][:100], witnesses[1].public), (proofs[2], [1, 2, 3])]
        results = await pool.verify_many(built.vkey, items * 20 + bad)
        assert results == [True] * 60 + [False] * 4
        assert await pool.verify(built, proofs[2], witnesses[2].public)
        assert await pool.verify_many(built.vkey, []) == []
        with pytest.raises(ProvingError):
            await pool.prove(built, case_inputs(CASES[list(CASES)[0]], K=3))
        with pytest.raises(DecodeError):
            await pool.verify(b"not a key", proofs[0], witnesses[0].public)


async def test_queued_proofs_run_earliest_deadline_first(built: BuiltCircuit) -> None:
    async with ProofPool(workers=1, preload=[built]) as pool:
        done: list[str] = []

        async def one(name: str, deadline: float | None) -> None:
            await pool.prove(built, witness(1), deadline=deadline)
            done.append(name)

        first = asyncio.create_task(one("first", 900.0))  # takes the only worker
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(one(name, d)) for name, d in
                 (("none", None), ("late", 500.0), ("early", 100.0), ("mid", 300.0),
                  ("mid-2", 300.0))]
        await asyncio.sleep(0)
        assert pool.queued_proofs == 5
        await asyncio.gather(first, *tasks)
        assert done == ["first", "early", "mid", "mid-2", "late", "none"]
