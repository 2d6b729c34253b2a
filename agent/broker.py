"""An embedded MQTT broker for tests and the devnet: `python -m agent.broker --port N`.

Runs `amqtt` (MQTT 3.1.1) as its own process, bound to 127.0.0.1 only: amqtt's default config
binds 0.0.0.0:1883, which would expose a test broker to the network and collide with a real one.
amqtt 0.12.1 drops a delivered-but-unacknowledged QoS 1 message when its subscriber disconnects
(or after 5 s without PUBACK) instead of keeping it for redelivery as MQTT 3.1.1 requires
[MQTT-4.4.0-1]; `_patch_qos1_redelivery` fixes that in this process, because the agent acknowledges
a frame only after it is durably stored and relies on the broker to redeliver everything else.
Only the anonymous-auth plugin is loaded (the event and packet loggers cost CPU per message, and
the $SYS plugin publishes on a timer). Also `mosquitto_command` for Debian's mosquitto when it is
installed: tests may use either, the agent speaks plain MQTT to any broker.

Production gateways run a real broker (mosquitto or similar); this file must never be imported by
the agent daemon itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
from pathlib import Path


def broker_config(host: str, port: int) -> dict[str, object]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        # A disconnected client's session (its subscriptions and unacknowledged QoS 1 messages)
        # must outlive an agent's kill -9 so the broker can redeliver after the restart.
        "session_expiry_interval": None,
        # amqtt keeps nothing for an *anonymous* offline session (it deletes it on disconnect), so
        # anonymous access is off: any username is accepted (no password check) and makes the
        # session persistent. Clients of this broker must send a username.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False}},
    }


def _patch_qos1_redelivery() -> None:
    """Keep an outgoing QoS 1 message in the session until its PUBACK arrives.

    amqtt pops it from `inflight_out` in a `finally` (on disconnect and on a 5 s PUBACK timeout),
    so the `_retry_deliveries` it runs on reconnect finds nothing. Here it leaves only on PUBACK;
    MQTT 3.1.1 resends unacknowledged messages on reconnect (with DUP set), not on a timer.
    """
    from amqtt.mqtt.constants import QOS_1
    from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
    from amqtt.mqtt.protocol.handler import OUTGOING, ProtocolHandler

    original = ProtocolHandler._handle_qos1_message_flow

    async def qos1_flow(self: ProtocolHandler, app_message: object) -> None:
        if getattr(app_message, "direction", None) != OUTGOING or getattr(app_message, "qos", None) != QOS_1:
            await original(self, app_message)  # type: ignore[arg-type]
            return
        msg = app_message
        assert self.session is not None and msg.packet_id is not None  # type: ignore[attr-defined]
        packet_id = msg.packet_id  # type: ignore[attr-defined]
        self.session.inflight_out[packet_id] = msg  # type: ignore[assignment]
        retry = msg.publish_packet is not None  # type: ignore[attr-defined]
        packet = msg.build_publish_packet(dup=retry)  # type: ignore[attr-defined]
        waiter: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._puback_waiters[packet_id] = waiter  # type: ignore[assignment]
        try:
            await self._send_packet(packet)
            msg.publish_packet = packet  # type: ignore[attr-defined]
            msg.puback_packet = await waiter  # type: ignore[attr-defined]
        finally:
            if self._puback_waiters.get(packet_id) is waiter:
                self._puback_waiters.pop(packet_id, None)
        self.session.inflight_out.pop(packet_id, None)  # acknowledged: only now it may go

    BrokerProtocolHandler._handle_qos1_message_flow = qos1_flow  # type: ignore[method-assign]


async def serve(host: str, port: int) -> None:
    from amqtt.broker import Broker

    _patch_qos1_redelivery()
    broker = Broker(broker_config(host, port))
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"broker listening on {host}:{port}", flush=True)
    await stop.wait()
    await broker.shutdown()


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


def mosquitto_command(port: int, workdir: Path) -> list[str]:
    """Command line for Debian's mosquitto on 127.0.0.1:port (a listener in the config replaces
    mosquitto's default one, so it never binds the wildcard address)."""
    binary = mosquitto_binary()
    if binary is None:
        raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / f"mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        # Queue enough QoS 1 messages for a restarting agent (default 1000), and let many be in flight
        # to the agent at once: it acknowledges a whole group commit together (default 20).
        "max_queued_messages 100000\n"
        "max_inflight_messages 1000\n"
    )
    return [binary, "-c", str(conf)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
