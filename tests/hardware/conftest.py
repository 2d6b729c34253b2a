"""A private SoftHSM2 token store per test session (SOFTHSM2_CONF is read once per process by the
PKCS#11 library, so one store serves the whole session), PIN in an environment variable."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultproof import signing, softhsm

TOKEN = "faultproof-test"


@pytest.fixture(scope="session")
def token_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("softhsm")
    conf = softhsm.write_conf(root)
    pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
    softhsm.init_token(conf, TOKEN, so_pin, pin)
    old = {k: os.environ.get(k) for k in ("SOFTHSM2_CONF", signing.PIN_ENV_DEFAULT)}
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ[signing.PIN_ENV_DEFAULT] = pin
    yield {"root": str(root), "conf": str(conf), "pin": pin, "so_pin": so_pin, "token": TOKEN}
    signing.SESSIONS.close_all()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def token_cfg(label: str) -> signing.TokenConfig:
    return signing.TokenConfig(token_label=TOKEN, key_label=label)


def token_root(store: dict[str, str]) -> Path:
    return Path(store["root"])
