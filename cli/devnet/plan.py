"""The devnet's plan: its config file (`configs/devnet.toml`), which simulated device gets which
fault and trigger, and the live progress counters. Pure values; starts nothing."""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultproof.operator_errors import OperatorError

DEFAULT_CONFIG = Path("configs/devnet.toml")

# fault name in the config -> the simulator's Fault constructor arguments
FAULT_ARGS = {
    "excursion": ("at_seq", "count", "value"),
    "run": ("at_seq", "count", "value"),
    "stuck": ("at_seq", "count"),
    "out_of_range": ("at_seq", "count", "value"),
    "dropout": ("at_seq", "gap_ms"),
    # DESIGN §15: an excursion on a device whose measured firmware is not on the allowlist: its
    # claims must never be paid (attestation_failed) and the agent quarantines it.
    "tampered_firmware": ("at_seq", "count", "value"),
}
UNPAID_FAULTS = frozenset({"tampered_firmware"})
_TRIGGERS = ("count_above", "run_above", "stuck", "outside_range", "dropout")


@dataclass
class DevicePlan:
    index: int
    fault: dict[str, Any] | None  # None: healthy
    trigger: dict[str, Any]
    device_id: bytes = b""
    policy_id: bytes = b""
    # "insured": its own policy; economic security (DESIGN §14, with [econ]): "equivocator" signs
    # two frames for one seq and must be revoked, slashed and never paid; "group" is one of the
    # devices of the corroborated policy
    role: str = "insured"


@dataclass
class Progress:
    started: float = field(default_factory=time.monotonic)
    frames: int = 0
    rejected_frames: int = 0
    claims: dict[str, int] = field(default_factory=dict)
    oracle_claims: list[dict[str, int]] = field(default_factory=list)
    payouts: int = 0
    height: int = 0
    sims_done: bool = False


class ConfigError(OperatorError):
    pass


def load_config(path: Path) -> dict[str, Any]:
    try:
        cfg = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found (run from the repository root, or pass --config)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    unknown = set(cfg) - {"network", "pool", "policy", "sensor", "fault", "econ"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}")
    for f in cfg.get("fault", []):
        if f.get("fault") not in FAULT_ARGS:
            raise ConfigError(f"{path}: fault must be one of {sorted(FAULT_ARGS)}, got {f.get('fault')!r}")
        if f.get("trigger", {}).get("kind") not in _TRIGGERS:
            raise ConfigError(f"{path}: trigger.kind must be one of {_TRIGGERS}")
    return cfg


def trigger_params(trigger: dict[str, Any]) -> Any:
    from faultproof.zk import TriggerParams

    # TriggerParams takes readings as signed ints and enc()-encodes them itself.

    kind = trigger["kind"]
    if kind == "count_above":
        return TriggerParams.count(trigger["threshold"], trigger["count"])
    if kind == "run_above":
        return TriggerParams.run(trigger["threshold"], trigger["count"])
    if kind == "stuck":
        return TriggerParams.stuck(trigger["count"])
    if kind == "outside_range":
        return TriggerParams.outside(trigger["lo"], trigger["hi"], trigger["count"])
    return TriggerParams.dropout(trigger["gap_ms"])


def plan_devices(cfg: dict[str, Any], devices: int) -> list[DevicePlan]:
    faults = cfg.get("fault", [])
    if not faults:
        raise ConfigError("configs/devnet.toml needs at least one [[fault]]")
    plans = []
    for i in range(devices):
        fault = faults[i] if i < len(faults) else None
        trigger = (fault or faults[i % len(faults)])["trigger"]
        plans.append(DevicePlan(i, fault, trigger))
    return plans
