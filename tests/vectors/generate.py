"""Writes the JSON test vectors of DESIGN §2 into this folder.

    python -m tests.vectors.generate          # rewrite the files
    python -m tests.vectors.generate --check  # exit 1 if a file differs (tests run this logic)

Poseidon values come from faultproof.chain here and are checked against circomlibjs, live, by
tests/test_vectors.py, so a porter can trust them as circomlib's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from faultproof import chain
from faultproof.encoding import hash_id, pack
from faultproof.identity import domain_tag
from faultproof.messages import AdminTx, policy_id
from tests.vectors import samples as s

HERE = Path(__file__).parent

POSEIDON_INPUTS: list[list[int]] = [
    [1, 2], [0], [1], [1, 2, 3], [1, 2, 3, 4], [0, 0, 0, 0], [chain.P - 1], [chain.P - 1, 1],
    [2**200, 2**64 + 1, 2**32, 5], [chain.CHAIN_ANCHOR_TAG, 2**127, 2**128 - 1, 2**32 - 1],
    [chain.P - 1, chain.P - 2, chain.P - 3, chain.P - 4],
]


def vectors() -> dict[str, Any]:
    cs = s.chain_values()
    samples = s.samples()
    g = s.genesis()
    claim = samples["claim"]
    tx = samples["signed-admin-tx"].tx
    assert isinstance(tx, AdminTx)
    return {
        "poseidon.json": {
            "about": "circomlib Poseidon (BN254) over 1-4 field elements; decimal strings",
            "cases": [{"inputs": [str(x) for x in xs], "output": str(chain.poseidon(xs))}
                      for xs in POSEIDON_INPUTS],
        },
        "field.json": {
            "about": "reading -> field: enc(r) = r + 2^31; time -> field: ms since epoch < 2^48",
            "readings": [{"reading": r, "field": chain.enc(r)}
                         for r in (-(2**31), -1, 0, 1, 215, 2**31 - 1)],
            "time_limit": chain.TIME_LIMIT,
            "out_of_range_readings": [-(2**31) - 1, 2**31],
        },
        "chain.json": {
            "about": "c_0 = Poseidon(TAG, id_hi128, id_lo128, epoch); s_i = Poseidon(k_blind, seq_i); "
                     "c_i = Poseidon(c_{i-1}, t_i, enc(r_i), s_i)",
            "anchor_tag": str(chain.CHAIN_ANCHOR_TAG),
            "device_id": s.DEVICE.public_key.hex(),
            "epoch": s.EPOCH,
            "blinding_key": s.BLINDING_KEY.hex(),
            "steps": [
                {"seq": i, "ts_ms": t, "reading": r, "enc": chain.enc(r),
                 "blinding": str(chain.blinding_value(s.BLINDING_KEY, i)), "chain": str(cs[i])}
                for i, (t, r) in enumerate(zip(s.TIMESTAMPS, s.READINGS, strict=True), start=1)
            ],
            "c0": str(cs[0]),
        },
        "encodings.json": {
            "about": "canonical msgpack of every message type: [type_id, version, fields...]; JSON form beside it",
            "messages": [{"type": name, "type_id": m.TYPE_ID, "hex": m.encode().hex(), "json": m.to_json()}
                         for name, m in sorted(samples.items())],
        },
        "ids.json": {
            "about": "SHA-256 over 'faultproof/<tag>/v1' || canonical bytes",
            "claim_id": {
                "policy_id": claim.policy_id.hex(),
                "device_id": s.DEVICE.public_key.hex(), "epoch": s.EPOCH,
                "start_seq": 0, "end_seq": len(s.READINGS),
                "canonical_hex": pack([claim.policy_id, s.DEVICE.public_key, s.EPOCH, 0,
                                       len(s.READINGS)]).hex(),
                "claim_id": claim.claim_id.hex(),
            },
            "ledger_id": {"genesis_hex": g.encode().hex(), "ledger_id": g.ledger_id.hex()},
            "circuit_id": {"register_circuit_hex": samples["register-circuit"].encode().hex(),
                           "circuit_id": samples["register-circuit"].circuit_id.hex()},
            "policy_id": {"admin_tx_hex": tx.encode().hex(), "policy_id": policy_id(tx).hex()},
            "hash_id_example": {"tag": "example", "data_hex": "00ff",
                                "hash": hash_id("example", b"\x00\xff").hex()},
        },
        "signatures.json": {
            "about": "Ed25519 over 'faultproof/<type>/v1' || canonical bytes of the body",
            "cases": [
                {"type": name, "tag": domain_tag(body.NAME).decode(), "public_key": key.hex(),
                 "message_hex": body.encode().hex(), "signature": sig.hex()}
                for name, body, key, sig in [
                    ("frame", samples["signed-frame"].frame, s.DEVICE.public_key,
                     samples["signed-frame"].signature),
                    ("claim", samples["signed-claim"].claim, s.AGENT.public_key,
                     samples["signed-claim"].signature),
                    ("payout-approve", samples["approve"].body, samples["approve"].oracle_id,
                     samples["approve"].signature),
                    ("vote-reject", samples["reject"].body, samples["reject"].oracle_id,
                     samples["reject"].signature),
                    ("admin-tx", tx, s.ADMIN.public_key, samples["signed-admin-tx"].signature),
                ]
            ],
        },
    }


def render(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    bad = 0
    for name, obj in vectors().items():
        path = HERE / name
        text = render(obj)
        if check:
            if not path.exists() or path.read_text() != text:
                print(f"{path} is out of date", file=sys.stderr)
                bad += 1
        else:
            path.write_text(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
