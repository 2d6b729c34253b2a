"""MQTT ingest: subscribe to `faultproof/v1/devices/+/frames` on any broker, acknowledge late.

paho-mqtt 2 with `manual_ack=True`: a QoS 1 message is acknowledged (PUBACK) only from the ingest
engine's completion callback, i.e. after its frames were committed to the store (or refused and
counted). If the agent dies before that, the broker still holds the message in the agent's
persistent session (clean_session=False, a fixed client id) and redelivers it on reconnect; the
frames of a message that was stored but not acknowledged come back as REPLAYED_FRAME, harmlessly.

PUBACKs go out in the order the messages arrived (MQTT 3.1.1 §4.6) because the engine completes
submissions in FIFO order. paho's network thread parses each payload (cheap) and hands it to the
engine, blocking when the engine's queue is full: that is the backpressure to the broker.

Devices' attestation answers (`faultproof/v1/devices/+/evidence`, DESIGN §15) go to
`on_evidence` and are acknowledged at once; `ask_attestation` publishes a request.

This file must never acknowledge a frame message before the engine's callback for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.frames import parse_wire
from agent.ingest import IngestEngine, IngestResult
from agent.metrics import AgentMetrics
from agent.reattest import EVIDENCE_TOPIC, attest_topic

log = logging.getLogger("faultproof.agent.mqtt")

FRAMES_TOPIC = "faultproof/v1/devices/+/frames"


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "faultproof-agent"
    username: str | None = "faultproof-agent"
    password: str | None = None
    keepalive: int = 30
    topic: str = FRAMES_TOPIC
    tls_ca_file: str | None = None  # TLS to the broker, trusting this CA


class MqttIngest:
    def __init__(self, settings: MqttSettings, engine: IngestEngine, metrics: AgentMetrics,
                 on_evidence: Callable[[bytes], None] | None = None) -> None:
        self.settings = settings
        self.on_evidence = on_evidence  # DESIGN §15: devices' attestation answers (paho's thread)
        self.engine = engine
        self.metrics = metrics
        self.connected = threading.Event()
        self.delivered = 0  # messages handed to the engine
        self.acked = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                                  clean_session=False, manual_ack=True, protocol=mqtt.MQTTv311)
        if settings.username is not None:
            self.client.username_pw_set(settings.username, settings.password)
        if settings.tls_ca_file:
            self.client.tls_set(ca_certs=settings.tls_ca_file)  # verifies the broker's certificate and name
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        # connect_async + loop_start: the broker may come up after the agent; paho keeps retrying.
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connection refused: %s", reason)
            return
        client.subscribe(self.settings.topic, qos=1)
        if self.on_evidence is not None:
            client.subscribe(EVIDENCE_TOPIC, qos=1)
        self.connected.set()
        self.metrics.mqtt_connected.set(1)
        log.info("MQTT connected to %s:%d (session present: %s)", self.settings.host, self.settings.port,
                 getattr(flags, "session_present", "?"))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        self.metrics.mqtt_connected.set(0)
        log.info("MQTT disconnected: %s", reason)

    def ask_attestation(self, device_id: bytes, nonce: bytes) -> None:
        """Ask a device for evidence over `nonce` (QoS 1; it answers on its evidence topic)."""
        self.client.publish(attest_topic(device_id), nonce, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/evidence"):
            # An answer is acknowledged at once: resubmitting one is refused by the ledger as
            # replayed anyway, and losing one only means the device is asked again.
            if self.on_evidence is not None:
                self.on_evidence(bytes(msg.payload))
            if msg.qos > 0:
                client.ack(msg.mid, msg.qos)
            return
        frames = parse_wire(bytes(msg.payload))
        mid, qos = msg.mid, msg.qos
        self.delivered += 1

        def done(result: IngestResult) -> None:
            if result.error is not None:
                return  # nothing stored: leave it unacknowledged so the broker redelivers
            if qos > 0:
                client.ack(mid, qos)
            self.acked += 1

        self.engine.submit(frames, done, transport="mqtt")
