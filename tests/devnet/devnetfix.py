"""What the devnet tests share: the shipped devnet config in a scratch folder, and whether a pid
the devnet reported is still a live process (no process may outlive the devnet)."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def scratch_config(tmp_path: Path, readings: int, rate_hz: int = 20) -> Path:
    """configs/devnet.toml with its data in `tmp_path`, `readings` per device and `rate_hz` (the
    faults of the shipped config are over by seq 70 and its triggers count readings, so fewer and
    faster readings make a shorter run that pays the same)."""
    text = (REPO / "configs" / "devnet.toml").read_text()
    text = text.replace('data_dir = "devnet-data"', f'data_dir = "{tmp_path / "data"}"')
    text = re.sub(r"(?m)^readings = \d+", f"readings = {readings}", text)
    text = re.sub(r"(?m)^rate_hz = \d+", f"rate_hz = {rate_hz}", text)
    config = tmp_path / "devnet.toml"
    config.write_text(text)
    return config


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes; check /proc for its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
