"""One logging setup for every service: --log-format json gives one JSON object per line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from cli import main
from faultproof.logs import setup_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """setup_logging configures the process's root logger; give the next test the one it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    libp2p = logging.getLogger("libp2p")
    libp2p_state = (libp2p.handlers[:], libp2p.propagate, libp2p.level)
    yield
    root.handlers[:], root.level = handlers, level
    libp2p.handlers[:], libp2p.propagate, libp2p.level = libp2p_state


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("DEBUG", "json")
    logging.getLogger("faultproof.test").warning("ledger %s unreachable", "http://x")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["level"] == "WARNING" and record["logger"] == "faultproof.test"
    assert record["message"] == "ledger http://x unreachable" and "time" in record
    setup_logging("INFO", "text")
    logging.getLogger("faultproof.test").debug("hidden")
    logging.getLogger("faultproof.test").info("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err and "INFO faultproof.test: shown" in err


@pytest.mark.parametrize("command", [["ledger", "serve"], ["oracle", "run"], ["agent", "run"]])
def test_every_service_takes_the_same_log_options(command: list[str]) -> None:
    help_text = CliRunner().invoke(main, [*command, "--help"]).output
    assert "--log-level" in help_text and "--log-format" in help_text


def test_libp2p_dial_failures_are_not_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from faultproof.gossip.node import wire_libp2p_logging

    setup_logging("INFO", "text")
    wire_libp2p_logging(logging.INFO)  # as every gossip node does at start
    noisy = logging.getLogger("libp2p.transport.tcp.tcp")
    noisy.error("Failed to open TCP stream: all attempts to connect to 127.0.0.1:39111 failed")
    logging.getLogger("libp2p.stream_muxer.yamux.yamux").error(
        "Error in handle_incoming for peer 12D3: ConnectionClosedError: TCP connection reset by remote peer")
    logging.getLogger("libp2p.network.swarm").error("fail to upgrade mux for peer %s", "12D3KooWFpgSwJ")
    noisy.error("something else broke")
    err = capsys.readouterr().err
    assert "39111" not in err and "reset by remote peer" not in err and "12D3KooWFpgSwJ" not in err
    assert "ERROR libp2p.transport.tcp.tcp: something else broke" in err
    setup_logging("DEBUG", "text")
    wire_libp2p_logging(logging.DEBUG)
    noisy.error("Failed to open TCP stream: all attempts to connect to 127.0.0.1:39111 failed")
    assert "DEBUG libp2p.transport.tcp.tcp: Failed to open TCP stream" in capsys.readouterr().err
