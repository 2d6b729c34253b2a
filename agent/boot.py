"""A simulated device's measured boot and its attestation evidence (DESIGN §15).

The simulator's devices boot three stages, bootloader → firmware → config, each measured into the
device's log (faultproof.attestation.MeasurementLog, extended like a PCR). A device with tampered
firmware measures a different firmware image, so its evidence fails appraisal against the ledger's
allowlist. `ledger_evidence` answers the ledger's head (the nonce), as a device does when its agent
asks it to attest. Pure: the caller submits the evidence.
"""

from __future__ import annotations

from faultproof.attestation import DEVICE_STAGES, MeasurementLog, make_evidence, measure
from faultproof.messages import SetMeasurement, SignedEvidence
from faultproof.signing import Signer

BOOT_IMAGES = (b"faultproof-sim bootloader 1.0", b"faultproof-sim firmware 2.3.1", b"faultproof-sim config 7")
TAMPERED_FIRMWARE = b"faultproof-sim firmware 2.3.1 + implant"


def boot_log(*, tampered: bool = False) -> MeasurementLog:
    boot, firmware, config = BOOT_IMAGES
    return MeasurementLog.boot(boot, TAMPERED_FIRMWARE if tampered else firmware, config)


def allowlist_txs() -> list[SetMeasurement]:
    """The admin transactions that allow the simulator's genuine boot."""
    return [SetMeasurement(component=int(stage), digest=measure(img), allowed=1)
            for stage, img in zip(DEVICE_STAGES, BOOT_IMAGES, strict=True)]


def ledger_evidence(signer: Signer, *, epoch: int, seq: int, ts_ms: int, head_hash: bytes,
                    tampered: bool = False) -> SignedEvidence:
    return make_evidence(signer, epoch=epoch, seq=seq, ts_ms=ts_ms, nonce=head_hash, log=boot_log(tampered=tampered))
