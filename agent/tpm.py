"""The gateway's TPM 2.0 (DESIGN §15): measure into PCRs and answer a verifier's nonce with a quote,
as Keylime's agent does. Real TPM via tpm2-pytss; `Swtpm` runs the software TPM of Debian's
swtpm package for tests and the devnet.

The attestation key (AK) is a restricted ECDSA P-256 signing key made by the TPM in the endorsement
hierarchy (`create_primary`: the same key every time on the same TPM, so nothing is stored), and
its private half never leaves the TPM. The quote's checks live in faultproof.attestation.verify_quote.
Not shown here: binding the AK to the TPM's EK certificate (ActivateCredential); the verifier pins
the AK it enrolled instead.

This module does I/O (a TCTI connection, a child process); it decides nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faultproof.messages import GatewayQuote

# PCR 16 is the debug PCR (resettable), 23 the application PCR: firmware and config go to 23.
GATEWAY_PCRS = (16, 23)
_AK_TEMPLATE = "ecc256:ecdsa-sha256:null"


class TpmError(Exception):
    """The TPM cannot be reached or refused a command; the message says which and how to fix it."""


class GatewayTpm:
    """One connection to a TPM; quotes over `pcrs` with an AK made on first use."""

    def __init__(self, tcti: str, *, pcrs: Sequence[int] = GATEWAY_PCRS) -> None:
        try:
            from tpm2_pytss import ESAPI

            self._esapi = ESAPI(tcti)
        except Exception as e:  # noqa: BLE001 - tpm2-pytss raises several types; one clear error
            raise TpmError(f"cannot open the TPM at {tcti!r}: {e} (is swtpm running?)") from None
        self.pcrs = tuple(sorted(pcrs))
        self._ak: Any = None  # the AK's ESYS_TR
        self.ak_point = b""

    def _ensure_ak(self) -> Any:
        if self._ak is None:
            from tpm2_pytss import ESYS_TR, TPM2B_PUBLIC, TPMA_OBJECT

            attrs = (TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.FIXEDTPM
                     | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN | TPMA_OBJECT.USERWITHAUTH)
            template = TPM2B_PUBLIC.parse(_AK_TEMPLATE, objectAttributes=attrs)
            handle, public, *_ = self._esapi.create_primary(None, template, ESYS_TR.ENDORSEMENT)
            ecc = public.publicArea.unique.ecc
            self.ak_point = b"\x04" + bytes(ecc.x).rjust(32, b"\0") + bytes(ecc.y).rjust(32, b"\0")
            self._ak = handle
        return self._ak

    def attestation_key(self) -> bytes:
        """The AK as an uncompressed SEC1 point (what a verifier pins)."""
        self._ensure_ak()
        return self.ak_point

    def extend(self, pcr: int, digest: bytes) -> None:
        """PCR[pcr] = SHA-256(PCR[pcr] || digest): a measurement."""
        from tpm2_pytss import ESYS_TR, TPM2_ALG, TPML_DIGEST_VALUES, TPMT_HA, TPMU_HA

        if len(digest) != 32:
            raise ValueError("a SHA-256 measurement is 32 bytes")
        handle = getattr(ESYS_TR, f"PCR{pcr}")
        self._esapi.pcr_extend(handle, TPML_DIGEST_VALUES([TPMT_HA(hashAlg=TPM2_ALG.SHA256,
                                                                    digest=TPMU_HA(sha256=digest))]))

    def pcr_values(self) -> dict[int, bytes]:
        _, _, values = self._esapi.pcr_read(self._selection())
        return {i: bytes(v) for i, v in zip(self.pcrs, values, strict=True)}

    def quote(self, agent_id: bytes, nonce: bytes) -> GatewayQuote:
        from tpm2_pytss import TPM2_ALG, TPMT_SIG_SCHEME

        ak = self._ensure_ak()
        attest, sig = self._esapi.quote(ak, self._selection(), nonce, TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL))
        raw = bytes(attest.marshal())[2:]  # TPM2B_ATTEST: drop the size
        return GatewayQuote(agent_id=agent_id, attest=raw, signature=bytes(sig.marshal()), ak_point=self.ak_point)

    def _selection(self) -> str:
        return "sha256:" + ",".join(str(p) for p in self.pcrs)

    def close(self) -> None:
        if self._ak is not None:
            # No resource manager in front of swtpm: a transient left behind fills the TPM.
            self._esapi.flush_context(self._ak)
            self._ak = None
        self._esapi.close()


class Swtpm:
    """A software TPM 2.0 (Debian swtpm) on 127.0.0.1, started and stopped by its pid."""

    def __init__(self, state_dir: Path, port: int) -> None:
        self.state_dir, self.port = state_dir, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def start(self, timeout_s: float = 10.0) -> Swtpm:
        if shutil.which("swtpm") is None:
            raise TpmError("swtpm not found: install the swtpm package (`make setup`)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1", "--tpmstate", f"dir={self.state_dir}",
             "--flags", "not-need-init,startup-clear"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise TpmError(f"swtpm exited ({self.proc.returncode}): {err.strip()[:200]}")
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.02)
        self.stop()
        raise TpmError(f"swtpm did not listen on {self.port} in {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()


def free_port_pair() -> int:
    """A port P with P and P+1 free a moment ago (swtpm's server and control ports)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            p = int(a.getsockname()[1])
            if p >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", p + 1))
                except OSError:
                    continue
                return p
    raise TpmError("no free pair of ports")
