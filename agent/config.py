"""The agent's configuration: TOML (configs/agent.example.toml documents every key and default).

Loaded by the one config loader (faultproof/config.py: typed schema, environment overrides
`FAULTPROOF_AGENT__<SECTION>__<KEY>`) and validated once at start-up, with messages that say what
to fix; relative paths are
relative to the config file. Secrets are key-file paths, never inline values. This file must never
open a socket or a database: it only reads and checks the config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultproof import config
from faultproof.config import ConfigError

__all__ = ["AgentConfig", "ConfigError", "from_dict", "load", "validate"]


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8800
    max_body_bytes: int = 1 << 20
    idle_timeout_s: float = 20.0  # a connection with no complete request head this long is closed


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""  # default: faultproof-agent-<agent id prefix>: stable, so the session persists
    username: str = "faultproof-agent"
    password_file: str = ""
    tls_ca_file: str = ""  # set: connect over TLS and trust this CA (PEM); relative to the config file
    # mosquitto's log file (DESIGN §15): refused logins naming a device count as signs of compromise
    broker_log: str = ""


@dataclass(frozen=True)
class GossipConfig:
    enabled: bool = True
    port: int = 0  # 0: a free port chosen at start
    bootstrap: tuple[str, ...] = ()


@dataclass(frozen=True)
class TpmConfig:
    # The gateway's TPM 2.0 (DESIGN §15 H10, agent/tpm.py): a TCTI string ("device:/dev/tpmrm0",
    # "swtpm:host=127.0.0.1,port=2321"); "" = no TPM, the gateway does not quote.
    tcti: str = ""
    # Quote over the ledger head this often (capped at half the ledger's attestation_max_age_ms);
    # 0 = never.
    quote_interval_s: float = 600.0


@dataclass(frozen=True)
class ProverConfig:
    circuits: tuple[int, ...] = (16,)
    workers: int = 0  # proving processes; 0: one per core (issue 15)
    cache_dir: str = ""


@dataclass(frozen=True)
class IngestConfig:
    max_skew_ms: int = 5_000
    reorder_window: int = 4096
    max_batch: int = 5000
    max_pending: int = 200_000
    synchronous: str = "FULL"
    retention_hours: float = 720.0  # 0: keep every frame
    retention_interval_s: float = 60.0
    commit_delay_ms: int = 0  # test hook only


@dataclass(frozen=True)
class ClaimsConfig:
    follow_interval_s: float = 0.25
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    content_refusals_to_reject: int = 2


@dataclass(frozen=True)
class AgentConfig:
    key_file: Path
    data_dir: Path
    blinding_keys_dir: Path
    ledger_url: str
    transport_key_file: Path | None = None  # DESIGN §15: libp2p's key when key_file is a token key
    ledger_wait_s: float = 10.0
    ledger_bootstrap_timeout_s: float = 60.0
    # Device-history anchors (DESIGN §11, agent/anchor.py): one ledger entry per interval; 0 = off
    # (then a revoked device's windows are never payable).
    ledger_anchor_interval_s: float = 60.0
    # Re-attestation (DESIGN §15, agent/reattest.py): ask each device for fresh evidence this often
    # (never more than half the ledger's attestation_max_age_ms); 0 = off.
    attestation_interval_s: float = 600.0
    oracle_urls: tuple[str, ...] = ()
    http: HttpConfig = field(default_factory=HttpConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    gossip: GossipConfig = field(default_factory=GossipConfig)
    prover: ProverConfig = field(default_factory=ProverConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    claims: ClaimsConfig = field(default_factory=ClaimsConfig)
    tpm: TpmConfig = field(default_factory=TpmConfig)
    log_level: str = "INFO"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "agent.sqlite3"


_SCHEMA = config.document("AgentFile", {
    "agent": config.table("AgentTable", {
        "key_file": (str, config.REQUIRED), "transport_key_file": (str | None, None),
        "data_dir": (str, config.REQUIRED),
        "blinding_keys_dir": (str, config.REQUIRED), "ledger_url": (str, config.REQUIRED),
        **config.keys_of(AgentConfig, ("ledger_wait_s", "ledger_bootstrap_timeout_s", "ledger_anchor_interval_s",
                                       "attestation_interval_s", "log_level"))}),
    "oracles": config.table("OraclesTable", {"urls": (list[str], [])}),
    "http": config.table_of(HttpConfig),
    "mqtt": config.table_of(MqttConfig),
    "gossip": config.table_of(GossipConfig),
    "prover": config.table_of(ProverConfig),
    "ingest": config.table_of(IngestConfig),
    "claims": config.table_of(ClaimsConfig),
    "tpm": config.table_of(TpmConfig),
}, required=("agent",))


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> AgentConfig:
    return config.load(path, "agent", "start from configs/agent.example.toml",
                       lambda raw, p: from_dict(raw, base=p.parent), environ)


def from_dict(raw: dict[str, Any], base: Path = Path(".")) -> AgentConfig:
    values = config.parse(raw, _SCHEMA)
    agent = values["agent"]
    for k in ("key_file", "data_dir", "blinding_keys_dir", "ledger_url"):
        if not agent[k]:
            raise ConfigError(f"[agent] {k} is required (a non-empty string)")

    def path(v: str) -> Path:
        return config.path_in(base, v)

    mqtt = config.build(MqttConfig, values["mqtt"])
    # The broker's password and CA files are paths like any other: relative to the config file.
    mqtt = dataclasses.replace(mqtt, password_file=str(path(mqtt.password_file)) if mqtt.password_file else "",
                               tls_ca_file=str(path(mqtt.tls_ca_file)) if mqtt.tls_ca_file else "",
                               broker_log=str(path(mqtt.broker_log)) if mqtt.broker_log else "")
    cfg = AgentConfig(
        # DESIGN §15: a token key (pkcs11:TOKEN/LABEL) needs transport_key_file for libp2p.
        key_file=config.key_spec(agent["key_file"], path),
        transport_key_file=path(agent["transport_key_file"]) if agent.get("transport_key_file") else None,
        data_dir=path(agent["data_dir"]),
        blinding_keys_dir=path(agent["blinding_keys_dir"]), ledger_url=agent["ledger_url"],
        ledger_wait_s=agent["ledger_wait_s"], ledger_bootstrap_timeout_s=agent["ledger_bootstrap_timeout_s"],
        ledger_anchor_interval_s=agent["ledger_anchor_interval_s"], log_level=agent["log_level"],
        attestation_interval_s=agent["attestation_interval_s"],
        oracle_urls=tuple(values["oracles"]["urls"]),
        http=config.build(HttpConfig, values["http"]),
        mqtt=mqtt,
        gossip=config.build(GossipConfig, values["gossip"]),
        prover=config.build(ProverConfig, values["prover"]),
        ingest=config.build(IngestConfig, values["ingest"]),
        claims=config.build(ClaimsConfig, values["claims"]),
        tpm=config.build(TpmConfig, values["tpm"]),
    )
    validate(cfg)
    return cfg


def validate(cfg: AgentConfig) -> None:
    if cfg.ledger_url.startswith("evm+"):
        # DESIGN §13: the pool contract; the agent follows its mirror and sends nothing to it
        from ledger.evm.settlement import parse_evm_url

        try:
            parse_evm_url(cfg.ledger_url)
        except Exception as e:  # noqa: BLE001 - FaultproofError naming the part that is wrong
            raise ConfigError(f"[agent] ledger_url: {e}") from None
        if cfg.ledger_anchor_interval_s != 0:
            raise ConfigError("[agent] ledger_anchor_interval_s must be 0 on an evm+ ledger_url: the pool "
                              "contract keeps no device-history anchors (DESIGN §13)")
    elif not cfg.ledger_url.startswith(("http://", "https://")):
        raise ConfigError("[agent] ledger_url must be an http(s) or evm+http(s) URL")
    if not cfg.prover.circuits or any(not 2 <= n <= 4096 for n in cfg.prover.circuits):
        raise ConfigError("[prover] circuits must list window sizes n in 2..4096")
    if cfg.ledger_anchor_interval_s < 0:
        raise ConfigError("[agent] ledger_anchor_interval_s must be >= 0 (0: no device-history anchors)")
    if cfg.attestation_interval_s < 0:
        raise ConfigError("[agent] attestation_interval_s must be >= 0 (0: no re-attestation)")
    if cfg.tpm.quote_interval_s < 0:
        raise ConfigError("[tpm] quote_interval_s must be >= 0 (0: the gateway never quotes)")
    if cfg.prover.workers < 0:
        raise ConfigError("[prover] workers must be >= 0 (0: one per core)")
    if cfg.ingest.reorder_window < 4 * max(cfg.prover.circuits):
        raise ConfigError("[ingest] reorder_window must be at least 4 x the largest circuit n "
                          "(detection looks at windows of n frames inside it)")
    if cfg.ingest.synchronous.upper() not in ("FULL", "EXTRA", "NORMAL"):
        raise ConfigError("[ingest] synchronous must be FULL, EXTRA or NORMAL")
    if cfg.ingest.max_batch < 1 or cfg.ingest.max_pending < cfg.ingest.max_batch:
        raise ConfigError("[ingest] need 1 <= max_batch <= max_pending")
    if cfg.ingest.max_skew_ms < 0 or cfg.ingest.retention_hours < 0:
        raise ConfigError("[ingest] max_skew_ms and retention_hours must be >= 0")
    for u in cfg.oracle_urls:
        if not isinstance(u, str) or not u.startswith(("http://", "https://")):
            raise ConfigError(f"[oracles] urls: {u!r} is not an http(s) URL")
    for a in cfg.gossip.bootstrap:
        if not isinstance(a, str) or "/p2p/" not in a:
            raise ConfigError(f"[gossip] bootstrap: {a!r} must be a multiaddr ending in /p2p/<peer id>")
    if not 0 <= cfg.http.port < 65536 or not 0 <= cfg.mqtt.port < 65536 or not 0 <= cfg.gossip.port < 65536:
        raise ConfigError("ports must be in 0..65535")
    if not 1 <= cfg.http.idle_timeout_s <= 3600:
        raise ConfigError("[http] idle_timeout_s must be in [1, 3600] seconds")
