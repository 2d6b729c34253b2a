"""A gateway TPM for the hardware tests: a software TPM (swtpm on free ports) whose PCR 23 holds the
measurement of the firmware the gateway booted, opened through agent.tpm.GatewayTpm as the agent
does. Stopped when the block ends; it must never outlive it (swtpm is a process)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from agent.tpm import GatewayTpm, Swtpm, free_port_pair


@contextlib.contextmanager
def gateway_tpm(state_dir: Path, firmware: bytes) -> Iterator[GatewayTpm]:
    sw = Swtpm(state_dir, free_port_pair()).start()
    try:
        t = GatewayTpm(sw.tcti)
        try:
            t.extend(23, firmware)  # the gateway's boot measured its firmware
            yield t
        finally:
            t.close()
    finally:
        sw.stop()
