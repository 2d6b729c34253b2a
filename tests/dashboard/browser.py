"""Debian's Chromium driven by Playwright (from PyPI; no browser download): the one way the
dashboard's browser tests, the screenshots and the load benchmark open a page.

The browser is the system's `chromium` (APT_PACKAGES in the Makefile; `make setup` installs it when
missing), started headless with a fresh profile and every background network feature off: the
machine has no network but loopback, and the tests must not wait on one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str:
    path = os.environ.get("FAULTPROOF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError("Debian's chromium is not installed: run `make setup` (it installs APT_PACKAGES), "
                           "or point FAULTPROOF_CHROMIUM at a Chromium binary")
    return path


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright `Browser`); each `new_page()` gets a fresh context."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # Playwright gives every launch a fresh temporary profile (its own --user-data-dir).
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
