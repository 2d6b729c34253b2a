"""Zero-knowledge malfunction proofs (GitHub issue 3): Circom 2 circuit, Groth16 over BN254.

The public API other packages call; everything else in faultproof.zk is an implementation detail.

    built = build(16)                                   # cached; dev setup is UNSAFE
    w = Witness.build(readings=..., timestamps=..., blindings=..., c_start=..., t_start=...,
                      params=TriggerParams.count(threshold=50, k=3))
    proof = prove(built, w)                             # 256 bytes
    verify(export_vkey(built), proof, w.public.as_list())   # -> bool, never raises on garbage

Off the asyncio loop: `faultproof.zk.pool.ProofPool`. Circuit: `circuits/faultproof.circom`;
statement and ceremony: `docs/circuits.md`.
"""

from faultproof.zk.circuit import (
    ALL_KINDS,
    BuiltCircuit,
    CircuitMeta,
    ProvingError,
    build,
    default_cache_dir,
    export_vkey,
    prove,
    prove_unchecked,
    verify,
)
from faultproof.zk.encoding import PROOF_LEN, canonical_vkey, vkey_hash
from faultproof.zk.params import Kind, TriggerParams, trigger_holds, validate_parameters
from faultproof.zk.statement import LAYOUT_VERSION, SIGNAL_NAMES, PublicSignals, Witness

__all__ = [
    "ALL_KINDS",
    "BuiltCircuit",
    "CircuitMeta",
    "Kind",
    "LAYOUT_VERSION",
    "PROOF_LEN",
    "ProvingError",
    "PublicSignals",
    "SIGNAL_NAMES",
    "TriggerParams",
    "Witness",
    "build",
    "canonical_vkey",
    "default_cache_dir",
    "export_vkey",
    "prove",
    "prove_unchecked",
    "trigger_holds",
    "validate_parameters",
    "verify",
    "vkey_hash",
]
