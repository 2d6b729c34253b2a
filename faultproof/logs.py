"""Logging for every service and command: one `--log-level` and one `--log-format` (text for a
terminal, json for a log pipeline: one JSON object per line with time, level, logger and message).

The one place logging is configured. It must never log a key, a passphrase or a seed; callers log
public ids only.
"""

from __future__ import annotations

import logging
import sys

import click
from pythonjsonlogger.json import JsonFormatter

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TransientDialNoise(logging.Filter):
    """py-libp2p logs every failed dial and every connection a peer closes as ERROR; our gossip
    layer redials and says once when a peer connects or is lost. So those records are DEBUG here:
    shown at --log-level DEBUG, dropped otherwise (an ERROR line must mean something is wrong).
    An inbound connection dropped mid-handshake is the same churn whether it fails at the security
    or at the muxer step (py-libp2p logs the first at DEBUG and the second at ERROR; two oracles
    dialling each other at once produce it, and the evm devnet once logged it on a loaded machine)."""

    NOISE = ("Failed to open TCP stream", "failed to dial", "Failed to dial", "connection reset by remote peer",
             "ConnectionClosedError", "failed to upgrade security", "fail to upgrade mux",
             "MultiselectClient handshake")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("libp2p") and record.levelno >= logging.WARNING and any(
                n in record.getMessage() for n in self.NOISE):
            if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
                return False
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TransientDialNoise())
    if fmt == "json":
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                           rename_fields={"asctime": "time", "levelname": "level",
                                                          "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def log_options(f: click.decorators.FC) -> click.decorators.FC:
    """`--log-level` and `--log-format` for a service command (the same on every service)."""
    f = click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True,
                     envvar="FAULTPROOF_LOG_FORMAT", help="text, or json (one object per line).")(f)
    return click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False), default=None,
                        envvar="FAULTPROOF_LOG_LEVEL", help="Default INFO (or the config's log_level).")(f)
