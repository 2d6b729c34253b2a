"""faultproof.procs.free_port: the ports handed to the services the tests and the devnet start."""

from __future__ import annotations

from faultproof.procs import _ephemeral_floor, free_port


def test_free_ports_are_below_the_ephemeral_range_and_never_repeat() -> None:
    # A port from the ephemeral range can be taken by any outgoing connection before the service
    # binds it; one handed out twice would start two services on one port.
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(10_000 <= p < _ephemeral_floor() for p in ports)
