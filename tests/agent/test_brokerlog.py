"""mosquitto's log lines -> refused logins naming a device (agent/brokerlog.py, pure), as mosquitto
2.0.11 writes them (no id on a refusal: attributed by the one device seen at its address) and later
2.0.x (the client id), the debug-level ACL denial, and the cases that must stay unattributed."""

from __future__ import annotations

from pathlib import Path

from agent.brokerlog import BrokerLogReader, LogTail, Refusal, refused_devices

X, Y = "aa" * 32, "bb" * 32


def connected(addr: str, client: str, user: str) -> list[str]:
    return [f"1795986418: New connection from {addr}:36813 on port 1883.",
            f"1795986418: New client connected from {addr}:36813 as {client} (p2, c1, k60, u'{user}')."]


def refused_anon(addr: str) -> list[str]:
    return [f"1795986417: New connection from {addr}:51579 on port 1883.",
            "1795986417: Client <unknown> disconnected, not authorised."]


def test_2_0_11_refusals_are_attributed_by_address_only_when_one_device_was_seen_there() -> None:
    r = BrokerLogReader()
    lines = [*connected("10.0.0.5", "sim-1", X), *connected("127.0.0.1", "agent", "faultproof-agent"),
             *refused_anon("10.0.0.5"), *refused_anon("10.0.0.9"), *refused_anon("127.0.0.1")]
    assert refused_devices(r, lines, {bytes.fromhex(X)}) == [bytes.fromhex(X)]  # .9: nobody; 127.0.0.1: the agent
    # A second device at the same address: a refusal from there is nobody's in particular.
    assert [r.feed(ln) for ln in [*connected("10.0.0.5", "sim-2", Y), *refused_anon("10.0.0.5")]][-1] == \
        Refusal("login", None)


def test_interleaved_connections_from_two_addresses_are_not_guessed() -> None:
    r = BrokerLogReader()
    for ln in [*connected("10.0.0.5", "s", X), *connected("10.0.0.6", "t", Y)]:
        r.feed(ln)
    r.feed("1: New connection from 10.0.0.5:1 on port 1883.")
    r.feed("1: New connection from 10.0.0.6:2 on port 1883.")
    assert r.feed("1: Client <unknown> disconnected, not authorised.") == Refusal("login", None)


def test_later_mosquitto_names_the_client_and_debug_names_acl_denials() -> None:
    r = BrokerLogReader()
    assert r.feed(f"2026-05-11 11:55:42: Client {X} [192.168.1.9:45875] disconnected: not authorised.") == \
        Refusal("login", bytes.fromhex(X))
    for ln in connected("10.0.0.7", "goodclient", Y):
        r.feed(ln)
    assert r.feed(f"1: Denied PUBLISH from goodclient (d0, q1, r0, m1, 'faultproof/v1/devices/{X}/frames', ... "
                  "(1 bytes))") == Refusal("acl", bytes.fromhex(Y))  # the publisher's credentials, not the topic's
    assert r.feed("1: Client goodclient disconnected.") is None


def test_the_tail_starts_at_the_end_and_reads_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "mosquitto.log"
    log.write_text("old line\n")
    t = LogTail(log)
    assert t.read() == []
    with log.open("a") as f:
        f.write("one\ntw")
    assert t.read() == ["one"]
    with log.open("a") as f:
        f.write("o\n")
    assert t.read() == ["two"]
    log.write_text("x\n")  # rotated: shorter than before
    assert t.read() == ["x"]
