"""The JSON vectors in tests/vectors/ are current, self-consistent, and agree with circomlibjs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from faultproof import chain
from faultproof.identity import verify
from faultproof.messages import MESSAGE_TYPES
from tests.vectors import generate

VECTORS = Path(__file__).parent / "vectors"
NODE_SCRIPT = VECTORS / "poseidon_circomlibjs.js"


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


def circomlibjs_poseidon(inputs: list[list[int]]) -> list[int]:
    out = subprocess.run(["node", str(NODE_SCRIPT)], input=json.dumps([[str(x) for x in xs] for xs in inputs]),
                         capture_output=True, text=True, check=True, timeout=120)
    return [int(x) for x in json.loads(out.stdout)]


def test_vector_files_are_current() -> None:
    for name, obj in generate.vectors().items():
        assert (VECTORS / name).read_text() == generate.render(obj), f"{name}: run python -m tests.vectors.generate"


def test_poseidon_vectors_match_circomlibjs() -> None:
    cases = load("poseidon.json")["cases"]
    inputs = [[int(x) for x in c["inputs"]] for c in cases]
    reference = circomlibjs_poseidon(inputs)
    assert [int(c["output"]) for c in cases] == reference
    assert reference[0] == 7853200120776062878684798364095072458815029376092732009249414926327459813530
    assert [chain.poseidon(xs) for xs in inputs] == reference


def test_chain_vectors_match_circomlibjs() -> None:
    v = load("chain.json")
    device_id = bytes.fromhex(v["device_id"])
    hi, lo = int.from_bytes(device_id[:16], "big"), int.from_bytes(device_id[16:], "big")
    key = int.from_bytes(bytes.fromhex(v["blinding_key"]), "big")
    steps = v["steps"]
    # First the anchor and the blinding values, then each chain step from the reference's values.
    ref = circomlibjs_poseidon([[int(v["anchor_tag"]), hi, lo, v["epoch"]]] + [[key, st["seq"]] for st in steps])
    assert ref[0] == int(v["c0"]) == chain.chain_anchor(device_id, v["epoch"])
    assert ref[1:] == [int(st["blinding"]) for st in steps]
    prev = [int(v["c0"])] + [int(st["chain"]) for st in steps[:-1]]
    ref_chain = circomlibjs_poseidon(
        [[p, st["ts_ms"], st["reading"] + 2**31, int(st["blinding"])] for p, st in zip(prev, steps, strict=True)])
    assert ref_chain == [int(st["chain"]) for st in steps]
    assert all(st["enc"] == st["reading"] + 2**31 for st in steps)


def test_field_vectors() -> None:
    v = load("field.json")
    for case in v["readings"]:
        assert chain.enc(case["reading"]) == case["field"]
        assert chain.dec(case["field"]) == case["reading"]
    for bad in v["out_of_range_readings"]:
        with pytest.raises(chain.FaultproofError):
            chain.enc(bad)


def test_encoding_vectors_round_trip() -> None:
    by_name = {cls.NAME: cls for cls in MESSAGE_TYPES.values()}
    seen = set()
    for case in load("encodings.json")["messages"]:
        cls = by_name[case["type"]]
        raw = bytes.fromhex(case["hex"])
        msg = cls.decode(raw)
        assert msg.to_json() == case["json"]
        assert cls.from_json(case["json"]).encode() == raw
        seen.add(case["type"])
    assert seen == set(by_name), "every message type has a vector"


def test_id_vectors() -> None:
    v = load("ids.json")
    from faultproof.encoding import hash_id
    from faultproof.messages import AdminTx, Genesis, RegisterCircuit, claim_id, policy_id

    c = v["claim_id"]
    assert claim_id(bytes.fromhex(c["policy_id"]), bytes.fromhex(c["device_id"]), c["epoch"],
                    c["start_seq"], c["end_seq"]).hex() == c["claim_id"]
    assert hash_id("claim-id", bytes.fromhex(c["canonical_hex"])).hex() == c["claim_id"]
    assert Genesis.decode(bytes.fromhex(v["ledger_id"]["genesis_hex"])).ledger_id.hex() == v["ledger_id"]["ledger_id"]
    rc = RegisterCircuit.decode(bytes.fromhex(v["circuit_id"]["register_circuit_hex"]))
    assert rc.circuit_id.hex() == v["circuit_id"]["circuit_id"]
    tx = AdminTx.decode(bytes.fromhex(v["policy_id"]["admin_tx_hex"]))
    assert policy_id(tx).hex() == v["policy_id"]["policy_id"]


def test_signature_vectors_verify_only_under_their_own_tag() -> None:
    cases = load("signatures.json")["cases"]
    tags = {c["tag"] for c in cases}
    for c in cases:
        msg, sig, key = bytes.fromhex(c["message_hex"]), bytes.fromhex(c["signature"]), bytes.fromhex(c["public_key"])
        assert verify(c["tag"].encode(), msg, sig, key)
        for other in tags - {c["tag"]}:
            assert not verify(other.encode(), msg, sig, key)
