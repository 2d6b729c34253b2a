"""Every shipped policy example issues on a fresh ledger as it is, and a healthy simulated device
runs past it without a single window that would claim (the operators' trial met both failing:
a term already over, and a threshold of 85 on a signal around 2150)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.simulator import Sensor
from faultproof.zk.params import trigger_holds
from ledger.policy_file import NOW_LEAD_MS, load_policy
from tests.ledger.helpers import T0, enrol, fake_circuit, identity, make_ledger

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "configs" / "policies").glob("*.example.toml"))
N = 16


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_issues_on_a_fresh_ledger(path: Path) -> None:
    from faultproof.messages import Deposit

    keys = make_ledger()
    state = keys.new_state()
    device = identity("example-device")
    circuit = fake_circuit(N)
    now = T0 + 60_000
    terms = load_policy(path, {"device_id": device.public_key, "beneficiary": b"\xbe" * 32,
                               "circuit_id": circuit.circuit_id}, now_ms=now)
    assert terms.start_ms == now + NOW_LEAD_MS and terms.end_ms > terms.start_ms
    for nonce, args in enumerate((Deposit(amount=10 * terms.coverage), circuit, enrol(device), terms), start=1):
        effect, entry = state.apply(keys.sign(args, nonce=nonce), now)
        assert entry is not None, f"{path.name}: {args.NAME} refused: {effect}"
        state.commit(effect, entry)
    (policy,) = state.policies.values()
    assert policy.status_at(terms.start_ms).value == "active"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_healthy_device_never_triggers_example(path: Path) -> None:
    terms = load_policy(path, {"device_id": b"\x01" * 32, "beneficiary": b"\x02" * 32,
                               "circuit_id": b"\x03" * 32}, now_ms=T0)
    for seed in range(5):
        sensor = Sensor(seed=seed)
        readings = [sensor.next() for _ in range(3000)]
        timestamps = [T0 + 1000 * i for i in range(len(readings))]
        for a in range(0, len(readings) - N):
            assert not trigger_holds(terms.kind, terms.threshold, terms.count, terms.lo, terms.hi,
                                     terms.gap_ms, readings[a:a + N], timestamps[a:a + N],
                                     timestamps[a] - 1000), f"{path.name} claims a healthy device at {a}"
