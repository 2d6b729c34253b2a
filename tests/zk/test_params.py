"""validate_parameters / trigger_holds / Witness.build: the Python side of the rules."""

from __future__ import annotations

import pytest

from faultproof.chain import chain_step, enc
from faultproof.errors import FaultproofError, Reason
from faultproof.zk import (
    Kind,
    PublicSignals,
    TriggerParams,
    Witness,
    trigger_holds,
    validate_parameters,
)
from faultproof.zk.encoding import R

from .cases import CASES

N = 4
E0 = enc(0)


@pytest.mark.parametrize(
    "kind,T,K,lo,hi,G",
    [
        (1, E0, 1, 0, 0, 0),
        (1, 2**32 - 1, 4, 0, 0, 0),
        (2, E0, 4, 0, 0, 0),
        (3, 0, 2, 0, 0, 0),
        (3, 0, 4, 0, 0, 0),
        (4, 0, 1, E0, E0, 0),  # lo == hi is allowed
        (4, 0, 4, 0, 2**32 - 1, 0),  # never true, but not always true either
        (5, 0, 0, 0, 0, 2),
        (5, 0, 0, 0, 0, 2**48 - 1),
    ],
)
def test_valid_parameters(kind: int, T: int, K: int, lo: int, hi: int, G: int) -> None:
    validate_parameters(kind, T, K, lo, hi, G, N)


@pytest.mark.parametrize(
    "kind,T,K,lo,hi,G,why",
    [
        (0, 0, 1, 0, 0, 0, "unknown kind"),
        (6, 0, 1, 0, 0, 0, "unknown kind"),
        (1, E0, 0, 0, 0, 0, "K = 0 is always true"),
        (2, E0, 0, 0, 0, 0, "K = 0 is always true"),
        (3, 0, 1, 0, 0, 0, "stuck K = 1 is always true"),
        (4, 0, 0, 0, 5, 0, "K = 0 is always true"),
        (5, 0, 0, 0, 0, 1, "G = 1 is always true"),
        (5, 0, 0, 0, 0, 0, "G = 0 is always true"),
        (4, 0, 1, 10, 9, 0, "lo > hi is always true"),
        (1, E0, 5, 0, 0, 0, "K > n"),
        (3, 0, 5, 0, 0, 0, "K > n"),
        (1, 2**32, 1, 0, 0, 0, "T not u32"),
        (4, 0, 1, 0, 2**32, 0, "hi not u32"),
        (5, 0, 0, 0, 0, 2**48, "G >= 2^48"),
        (1, E0, 1, 0, 0, 5, "unused G"),
        (1, E0, 1, 3, 0, 0, "unused lo"),
        (2, E0, 1, 0, 3, 0, "unused hi"),
        (3, 1, 2, 0, 0, 0, "unused T"),
        (4, 1, 1, 0, 5, 0, "unused T"),
        (4, 0, 1, 0, 5, 7, "unused G"),
        (5, 0, 1, 0, 0, 5, "unused K"),
        (5, 1, 0, 0, 0, 5, "unused T"),
        (1, -1, 1, 0, 0, 0, "negative"),
        (1, E0, True, 0, 0, 0, "bool is not an int"),
    ],
)
def test_invalid_parameters(kind: int, T: int, K: int, lo: int, hi: int, G: int, why: str) -> None:
    with pytest.raises(FaultproofError) as e:
        validate_parameters(kind, T, K, lo, hi, G, N)
    assert e.value.reason is Reason.INVALID_PARAMETERS, why


@pytest.mark.parametrize("kind", list(Kind))
def test_cases_meet_exactly(kind: Kind) -> None:
    case = CASES[kind]
    assert case.params.holds(case.readings, case.timestamps, case.t_start)
    assert not case.not_met.holds(case.readings, case.timestamps, case.t_start)


def test_trigger_semantics_edges() -> None:
    ts = [10, 20, 30, 40]
    # count: strictly above
    assert not trigger_holds(1, enc(5), 1, 0, 0, 0, [5, 5, 5, 5], ts, 0)
    # run: interrupted runs do not add up
    assert not trigger_holds(2, enc(0), 3, 0, 0, 0, [1, 1, 0, 1], ts, 0)
    assert trigger_holds(2, enc(0), 3, 0, 0, 0, [0, 1, 1, 1], ts, 0)
    # stuck: needs K equal in a row, not K equal anywhere
    assert not trigger_holds(3, 0, 3, 0, 0, 0, [7, 7, 1, 7], ts, 0)
    assert trigger_holds(3, 0, 2, 0, 0, 0, [-(2**31), -(2**31), 1, 2], ts, 0)
    # outside: inclusive bounds
    assert not trigger_holds(4, 0, 1, enc(-3), enc(3), 0, [-3, 3, 0, 1], ts, 0)
    assert trigger_holds(4, 0, 1, enc(-3), enc(3), 0, [-4, 3, 0, 1], ts, 0)
    # dropout: the first gap is measured from t_start
    assert trigger_holds(5, 0, 0, 0, 0, 10, [0, 0, 0, 0], ts, 0)
    assert not trigger_holds(5, 0, 0, 0, 0, 11, [0, 0, 0, 0], ts, 0)
    with pytest.raises(FaultproofError) as e:
        trigger_holds(1, enc(0), 1, 0, 0, 0, [2**31, 0, 0, 0], ts, 0)
    assert e.value.reason is Reason.READING_OUT_OF_RANGE


def test_witness_build_matches_chain() -> None:
    case = CASES[Kind.OUTSIDE]
    w = Witness.build(readings=case.readings, timestamps=case.timestamps, blindings=case.blindings,
                      c_start=case.c_start, t_start=case.t_start, params=case.params, n=4)
    c = case.c_start
    for t, r, s in zip(case.timestamps, case.readings, case.blindings, strict=True):
        c = chain_step(c, t, r, s)
    assert w.public.c_end == c
    assert w.public.as_list() == [case.c_start, c, case.t_start, case.timestamps[-1], 4, 0, 2,
                                  enc(0), enc(10), 0]
    inputs = w.to_input()
    assert inputs["r"] == [enc(r) for r in case.readings]
    assert inputs["drop_sel"] == [1, 0, 0, 0]
    d = CASES[Kind.DROPOUT]
    wd = Witness.build(readings=d.readings, timestamps=d.timestamps, blindings=d.blindings,
                       c_start=d.c_start, t_start=d.t_start, params=d.params)
    assert wd.to_input()["drop_sel"] == [0, 0, 1, 0]


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"timestamps": (1100, 1100, 1300, 1400)}, Reason.TIMESTAMP_NOT_INCREASING),
        ({"timestamps": (1100, 1000, 1300, 1400)}, Reason.TIMESTAMP_NOT_INCREASING),
        ({"t_start": 1100}, Reason.TIMESTAMP_NOT_INCREASING),
        ({"readings": (50, 60, 70)}, Reason.WINDOW_LENGTH),
        ({"readings": (50, 60, 70, 2**31)}, Reason.READING_OUT_OF_RANGE),
        ({"params": TriggerParams.count(50, 3)}, Reason.INVALID_PARAMETERS),
        ({"params": TriggerParams(1, enc(50), 0)}, Reason.INVALID_PARAMETERS),
        ({"blindings": (1, 2, 3, R)}, Reason.OUT_OF_RANGE),
    ],
)
def test_witness_build_refuses(change: dict[str, object], reason: Reason) -> None:
    case = CASES[Kind.COUNT]
    args: dict[str, object] = {
        "readings": case.readings, "timestamps": case.timestamps, "blindings": case.blindings,
        "c_start": case.c_start, "t_start": case.t_start, "params": case.params,
    }
    args.update(change)
    with pytest.raises(FaultproofError) as e:
        Witness.build(**args)  # type: ignore[arg-type]
    assert e.value.reason is reason


def test_public_signals_checked() -> None:
    good = PublicSignals(1, 2, 3, 4, 1, 5, 1, 0, 0, 0)
    assert good.as_list() == [1, 2, 3, 4, 1, 5, 1, 0, 0, 0]
    assert PublicSignals.from_list(good.as_list()) == good
    for bad in (R, -1, 2**300):
        with pytest.raises(FaultproofError):
            PublicSignals(bad, 2, 3, 4, 1, 5, 1, 0, 0, 0)
    with pytest.raises(FaultproofError):
        PublicSignals.from_list([1, 2, 3])
    with pytest.raises(FaultproofError):
        PublicSignals(True, 2, 3, 4, 1, 5, 1, 0, 0, 0)  # type: ignore[arg-type]
