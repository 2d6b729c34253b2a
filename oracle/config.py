"""The oracle node's configuration: one TOML file, every default written down here with its reason.

This file owns the oracle's schema and value rules; the one config loader (faultproof/config.py)
reads the file, applies `FAULTPROOF_ORACLE__<SECTION>__<KEY>` environment overrides and checks
names and types. This file owns validating the config (fail at start-up with a message that says what
to fix, never half-way through a run). It must never read the key itself (only its path: secrets
are key files, DESIGN §7) and never start anything.

    [oracle]
    key_file   = "keys/oracle-1.key"      # Ed25519 seed file (faultproof keygen); also the libp2p id
    data_dir   = "data/oracle-1"          # SQLite state (claims, votes, QCs, evidence, heads)
    ledger_url = "http://127.0.0.1:8700"  # the ledger service this oracle follows and posts QCs to,
                                          # or evm+http://HOST:PORT?contract=0x…&from=0x…[&confirmations=N]
                                          # (the pool contract, DESIGN §13)
    ledger_id  = "<64 hex>"               # the ledger this oracle serves (pinned: DESIGN §11)
    chain_key_file = "keys/oracle-1.chain.key"  # evm+ only: the secp256k1 chain key bound to this
                                          # oracle on the pool (a 0600 key file, faultproof keygen;
                                          # or pkcs11:TOKEN/LABEL, token keygen --type secp256k1)

    [http]   host = "127.0.0.1", port = 8710, max_body_bytes = 65536
    [gossip] port = 4710, bootstrap = ["/ip4/127.0.0.1/tcp/4711/p2p/12D3KooW..."]
    [tuning] see `Tuning` below
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultproof import config
from faultproof.config import ConfigError
from faultproof.signing import PKCS11_PREFIX

__all__ = ["ConfigError", "OracleConfig", "Tuning", "from_dict", "load"]


@dataclass(frozen=True)
class Tuning:
    # Votes signed within this window leave in one VoteBatch (gossip costs CPU per message, and a
    # burst of claims then costs one message per node instead of one per vote).
    vote_batch_ms: int = 20
    # Pending claims and our votes for them are re-gossiped this often until decided: gossip
    # promises no delivery, and a peer that was down misses everything published meanwhile.
    regossip_s: float = 2.0
    # Long-poll wait on GET /v1/entries: short enough that a dead ledger is noticed, long enough
    # that an idle node costs nothing.
    ledger_wait_s: float = 10.0
    # Proof verification threads. groth16py verifies in ~1.2 ms; one thread keeps the loop free and
    # leaves the second core to the other processes of a small machine.
    verify_workers: int = 1
    # A claim that stays undecided this long stops being re-gossiped (it stays pending and
    # queryable; a restart or a new copy of the claim starts it again).
    regossip_give_up_s: float = 3600.0
    # Per-member cap on undecided claims it may open with votes (flood bound, oracle/quorum.py).
    max_open_per_voter: int = 10_000
    # Per-agent claims per second accepted over HTTP and gossip (DESIGN §4: rate-limited sources).
    agent_rate_per_s: float = 20.0
    agent_burst: int = 200
    # EVM backend (DESIGN §13): members take turns sending a payout (oracle/chain_votes.py
    # posting_turn); the first sends as soon as it holds the QC, each next one this much later if
    # no Paid event came (a crashed sender costs one delay, and n oracles do not all pay gas).
    chain_post_delay_s: float = 2.0


@dataclass(frozen=True)
class OracleConfig:
    key_file: Path
    data_dir: Path
    ledger_url: str
    http_host: str = "127.0.0.1"
    http_port: int = 8710
    max_body_bytes: int = 64 * 1024  # a SignedClaim is < 2 KB msgpack, ~5 KB JSON
    idle_timeout_s: float = 20.0  # a connection with no complete request head this long is closed
    gossip_port: int = 4710
    bootstrap: tuple[str, ...] = ()
    tuning: Tuning = field(default_factory=Tuning)
    # The ledger this oracle serves: the follower refuses any other genesis at ledger_url, so a
    # URL that points elsewhere (a typo, a hijacked DNS name, a reset devnet) cannot feed it.
    ledger_id: bytes | None = None
    # DESIGN §15: with key_file = "pkcs11:TOKEN/LABEL" the libp2p identity is this file key instead.
    transport_key_file: Path | None = None
    # DESIGN §13: on an evm+ ledger_url, the chain key this oracle signs payouts with (its address
    # is bound to key_file's Ed25519 id on the pool). A 0600 key file or pkcs11:TOKEN/LABEL.
    chain_key_file: Path | None = None

    def __post_init__(self) -> None:
        if self.ledger_url.startswith("evm+"):
            from ledger.evm.settlement import parse_evm_url  # web3 only for an oracle on a chain

            try:
                url = parse_evm_url(self.ledger_url)
            except Exception as e:  # noqa: BLE001 - FaultproofError naming the part that is wrong
                raise ConfigError(f"[oracle] ledger_url: {e}") from None
            if url.sender is None:
                raise ConfigError("[oracle] an evm+ ledger_url needs from=0x... (the account this oracle sends "
                                  "payouts from)")
            if self.chain_key_file is None:
                raise ConfigError("[oracle] an evm+ ledger_url needs chain_key_file: the secp256k1 key bound to "
                                  "this oracle on the pool (a 0600 key file made by `faultproof keygen`)")
        elif not self.ledger_url.startswith(("http://", "https://")):
            raise ConfigError(f"ledger_url must be an http(s) or evm+http(s) URL, got {self.ledger_url!r}")
        for name in ("http_port", "gossip_port"):
            port = getattr(self, name)
            if not 0 <= port < 65536:
                raise ConfigError(f"{name} {port} is not a TCP port")
        if self.http_port and self.http_port == self.gossip_port:
            raise ConfigError("http.port and gossip.port must differ")
        for addr in self.bootstrap:
            if "/p2p/" not in addr:
                raise ConfigError(f"gossip.bootstrap entry {addr!r} must end in /p2p/<peer id>")
        if self.max_body_bytes < 4096:
            raise ConfigError("http.max_body_bytes below 4096 would refuse valid claims")
        if not 1 <= self.idle_timeout_s <= 3600:
            raise ConfigError("http.idle_timeout_s must be in [1, 3600] seconds")
        t = self.tuning
        if t.vote_batch_ms < 0 or t.regossip_s <= 0 or t.ledger_wait_s <= 0 or t.verify_workers < 1:
            raise ConfigError("tuning: vote_batch_ms >= 0, regossip_s > 0, ledger_wait_s > 0, verify_workers >= 1")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "oracle.sqlite3"


# section -> toml key -> OracleConfig field
_SECTIONS: dict[str, dict[str, str]] = {
    "oracle": {"key_file": "key_file", "data_dir": "data_dir", "ledger_url": "ledger_url", "ledger_id": "ledger_id",
               "transport_key_file": "transport_key_file", "chain_key_file": "chain_key_file"},
    "http": {"host": "http_host", "port": "http_port", "max_body_bytes": "max_body_bytes",
             "idle_timeout_s": "idle_timeout_s"},
    "gossip": {"port": "gossip_port", "bootstrap": "bootstrap"},
}

_SCHEMA = config.document("OracleFile", {
    "oracle": config.table("OracleTable", {"key_file": (str, config.REQUIRED), "data_dir": (str, config.REQUIRED),
                                           "ledger_url": (str, config.REQUIRED), "ledger_id": (str | None, None),
                                           "transport_key_file": (str | None, None),
                                           "chain_key_file": (str | None, None)}),
    "http": config.table("HttpTable", config.keys_of(OracleConfig, _SECTIONS["http"])),
    "gossip": config.table("GossipTable", config.keys_of(OracleConfig, _SECTIONS["gossip"])),
    "tuning": config.table_of(Tuning),
}, required=("oracle",))




def load(path: str | Path, environ: Mapping[str, str] | None = None) -> OracleConfig:
    """Read and validate a config file. Relative paths in it are relative to the file's folder."""
    return config.load(path, "oracle", "see configs/oracle.example.toml",
                       lambda raw, p: from_dict(raw, base=p.parent), environ)


def from_dict(raw: dict[str, Any], base: Path = Path(".")) -> OracleConfig:
    values = config.parse(raw, _SCHEMA)
    kwargs: dict[str, Any] = {attr: values[section][key]
                              for section, keys in _SECTIONS.items() for key, attr in keys.items()}
    kwargs["key_file"] = config.key_spec(kwargs["key_file"], lambda v: _resolve(base, v))
    if kwargs["transport_key_file"] is not None:
        kwargs["transport_key_file"] = _resolve(base, kwargs["transport_key_file"])
    elif str(kwargs["key_file"]).startswith(PKCS11_PREFIX):
        raise ConfigError("[oracle] a token key (pkcs11:...) needs transport_key_file: libp2p cannot use a token key")
    if kwargs["chain_key_file"] is not None:  # a 0600 key file, or pkcs11:TOKEN/LABEL (a secp256k1 key)
        kwargs["chain_key_file"] = config.key_spec(kwargs["chain_key_file"], lambda v: _resolve(base, v))
    kwargs["data_dir"] = _resolve(base, kwargs["data_dir"])
    kwargs["bootstrap"] = tuple(kwargs["bootstrap"])
    if kwargs["ledger_id"] is not None:
        kwargs["ledger_id"] = _ledger_id(kwargs["ledger_id"])
    config_ = OracleConfig(**kwargs, tuning=config.build(Tuning, values["tuning"]))
    if config_.ledger_id is None:
        raise ConfigError("[oracle] ledger_id is required: the 64-hex id of the ledger this oracle serves "
                          "(`ledger_id` in the ledger's GET /v1/state); the devnet launcher writes it for you")
    return config_


def _ledger_id(value: Any) -> bytes:
    if isinstance(value, str) and len(value) == 64 and value == value.lower():
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    raise ConfigError(f"[oracle] ledger_id must be 64 lowercase hex characters, got {value!r}")


def _resolve(base: Path, value: str) -> Path:
    if not value:
        raise ConfigError(f"expected a path string, got {value!r}")
    return config.path_in(base, value)
