"""A private SoftHSM2 token store: its config file, its token directory, and token initialisation.

Used by the tests and by `faultproof devnet --keys pkcs11`; a field deployment points
faultproof.signing.TokenConfig at its own token instead. SoftHSM finds its store through the
SOFTHSM2_CONF environment variable, read once per process by the PKCS#11 library.

PINs never go on a command line (rule 5: `ps` shows argv to every local user): softhsm2-util
asks for them on a terminal, so we give it a pseudo-terminal and type them there.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

CONF_NAME = "softhsm2.conf"


def write_conf(root: Path) -> Path:
    """Make root/tokens and root/softhsm2.conf (mode 0700/0600). Returns the conf path."""
    root.mkdir(parents=True, exist_ok=True)
    tokens = root / "tokens"
    tokens.mkdir(mode=0o700, exist_ok=True)
    conf = root / CONF_NAME
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
                    "slots.removable = false\n")
    conf.chmod(0o600)
    return conf


def init_token(conf: Path, label: str, so_pin: str, user_pin: str, *, timeout_s: float = 20.0) -> None:
    """`softhsm2-util --init-token --free --label LABEL`, PINs typed on a pseudo-terminal."""
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(["softhsm2-util", "--init-token", "--free", "--label", label],
                                stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    except FileNotFoundError:
        os.close(master)
        os.close(slave)
        raise RuntimeError("softhsm2-util not found: install softhsm2 (`make setup`)") from None
    os.close(slave)
    deadline = time.monotonic() + timeout_s
    seen = b""
    answers = [so_pin, so_pin, user_pin, user_pin]
    try:
        while answers:
            if time.monotonic() > deadline:
                raise RuntimeError("softhsm2-util did not ask for its PINs in time")
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            seen += chunk
            if seen.rstrip().endswith(b"PIN:"):
                os.write(master, answers.pop(0).encode() + b"\n")
                seen = b""
        rc = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    if rc != 0 or answers:
        raise RuntimeError(f"softhsm2-util --init-token failed for token {label!r} (exit {rc})")
