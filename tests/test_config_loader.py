"""The one config loader (faultproof/config.py) as the ledger, the oracle and the agent use it:
typed errors that name the key and the type, environment overrides, the one path rule. Pure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent import config as agent_config
from faultproof import config
from ledger import config as ledger_config
from oracle import config as oracle_config

REPO = Path(__file__).resolve().parents[1]
LEDGER_ID = "ab" * 32


def _oracle(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "etc" / "oracle.toml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(f'[oracle]\nkey_file = "k.key"\ndata_dir = "data"\nledger_url = "http://127.0.0.1:1"\n'
                 f'ledger_id = "{LEDGER_ID}"\n{extra}')
    return p


def test_one_error_type_for_every_service() -> None:
    assert ledger_config.ConfigError is oracle_config.ConfigError is agent_config.ConfigError is config.ConfigError


@pytest.mark.parametrize(("load", "example"), [
    (ledger_config.load_config, "ledger"), (oracle_config.load, "oracle"), (agent_config.load, "agent")])
def test_examples_load_and_a_wrong_type_names_the_key_and_the_type(tmp_path: Path, load, example: str) -> None:  # type: ignore[no-untyped-def]
    text = (REPO / "configs" / f"{example}.example.toml").read_text()
    load(REPO / "configs" / f"{example}.example.toml", environ={})
    section = {"ledger": "server", "oracle": "http", "agent": "http"}[example]
    bad = tmp_path / "bad.toml"
    bad.write_text(text + f"\n[{section}_x]\n")
    with pytest.raises(config.ConfigError, match=rf"{bad}: unknown config section \[{section}_x\]"):
        load(bad, environ={})
    with pytest.raises(config.ConfigError, match=rf"\[{section}\] port must be int, got str"):
        load(REPO / "configs" / f"{example}.example.toml",
             environ={f"FAULTPROOF_{example.upper()}__{section.upper()}__PORT": '"80"'})
    with pytest.raises(config.ConfigError, match=rf"\[{section}\] port must be int, got bool"):
        load(REPO / "configs" / f"{example}.example.toml",
             environ={f"FAULTPROOF_{example.upper()}__{section.upper()}__PORT": "true"})


def test_environment_overrides_a_key_and_is_checked_like_the_file(tmp_path: Path) -> None:
    p = _oracle(tmp_path, "[http]\nport = 8711\n")
    assert oracle_config.load(p, environ={}).http_port == 8711
    env = {"FAULTPROOF_ORACLE__HTTP__PORT": "9123", "FAULTPROOF_ORACLE__HTTP__HOST": "0.0.0.0",
           "FAULTPROOF_ORACLE__GOSSIP__BOOTSTRAP": '["/ip4/127.0.0.1/tcp/1/p2p/x"]',
           "FAULTPROOF_LEDGER__SERVER__PORT": "1"}  # another service's variable is not ours
    cfg = oracle_config.load(p, environ=env)
    assert (cfg.http_port, cfg.http_host, cfg.bootstrap) == (9123, "0.0.0.0", ("/ip4/127.0.0.1/tcp/1/p2p/x",))
    with pytest.raises(config.ConfigError, match=r"\[http\] unknown key 'prot'"):
        oracle_config.load(p, environ={"FAULTPROOF_ORACLE__HTTP__PROT": "1"})
    with pytest.raises(config.ConfigError, match="FAULTPROOF_ORACLE__PORT must be FAULTPROOF_ORACLE__<SECTION>__<KEY>"):
        oracle_config.load(p, environ={"FAULTPROOF_ORACLE__PORT": "1"})
    with pytest.raises(config.ConfigError, match=r"\[tuning\] regossip_s must be float, got str"):
        oracle_config.load(p, environ={"FAULTPROOF_ORACLE__TUNING__REGOSSIP_S": "soon"})


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    p = _oracle(tmp_path)
    cfg = oracle_config.load(p, environ={})
    assert cfg.key_file == tmp_path / "etc" / "k.key" and cfg.data_dir == tmp_path / "etc" / "data"
    a = tmp_path / "etc" / "agent.toml"
    a.write_text('[agent]\nkey_file = "a.key"\ndata_dir = "/abs/data"\nblinding_keys_dir = "~/b"\n'
                 'ledger_url = "http://x"\n[mqtt]\ntls_ca_file = "ca.pem"\n')
    ac = agent_config.load(a, environ={})
    assert ac.key_file == tmp_path / "etc" / "a.key" and ac.data_dir == Path("/abs/data")
    assert ac.blinding_keys_dir == Path("~/b").expanduser() and ac.mqtt.tls_ca_file == str(tmp_path / "etc" / "ca.pem")


def test_a_token_key_is_kept_as_written_and_a_key_file_follows_the_path_rule(tmp_path: Path) -> None:
    """One key rule (config.key_spec) for the oracle's signing and chain keys, the agent's key and the
    ledger's key: `pkcs11:TOKEN/LABEL` stays as written, a file is relative to the config."""
    token = "pkcs11:faultproof/oracle-0"
    p = _oracle(tmp_path, 'chain_key_file = "chain.key"\ntransport_key_file = "t.key"\n')
    p.write_text(p.read_text().replace('key_file = "k.key"', f'key_file = "{token}"', 1))
    cfg = oracle_config.load(p, environ={})
    assert cfg.key_file == Path(token) and cfg.chain_key_file == tmp_path / "etc" / "chain.key"
    a = tmp_path / "etc" / "agent.toml"
    a.write_text(f'[agent]\nkey_file = "{token}"\ntransport_key_file = "t.key"\ndata_dir = "d"\n'
                 'blinding_keys_dir = "b"\nledger_url = "http://x"\n')
    assert agent_config.load(a, environ={}).key_file == Path(token)
    led = tmp_path / "etc" / "ledger.toml"
    led.write_text(f'[ledger]\ndb = "l.db"\nledger_key = "{token}"\n')
    assert ledger_config.load_config(led, environ={}).ledger_key == Path(token)
    led.write_text('[ledger]\ndb = "l.db"\nledger_key = "keys/l.key"\n')
    assert ledger_config.load_config(led, environ={}).ledger_key == tmp_path / "etc" / "keys" / "l.key"


@pytest.mark.parametrize(("raw", "words"), [
    ({"agent": {"key_file": "k", "data_dir": "d", "blinding_keys_dir": "b", "ledger_url": "http://x"},
      "prover": {"circuits": ["16"]}}, r"\[prover\] circuits\[0\] must be int, got str"),
    ({"agent": {"key_file": "k", "data_dir": "d", "blinding_keys_dir": "b", "ledger_url": "http://x"},
      "mqtt": {"enabled": 1}}, r"\[mqtt\] enabled must be bool, got int"),
    ({"agent": {"key_file": "k", "data_dir": "d", "blinding_keys_dir": "b", "ledger_url": "http://x"},
      "http": []}, r"\[http\] must be dict, got list"),
    ({"agent": {"key_file": "k", "data_dir": "d", "blinding_keys_dir": "b"}}, r"\[agent\] ledger_url is required"),
    ({}, r"missing section \[agent\]"),
])
def test_agent_errors_name_key_and_type(raw: dict, words: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(config.ConfigError, match=words):
        agent_config.from_dict(raw)


def test_ledger_list_items_are_typed(tmp_path: Path) -> None:
    p = tmp_path / "ledger.toml"
    p.write_text('[ledger]\ndb = "l.db"\nledger_key = "l.key"\n[genesis]\noracle_keys = ["a.key", 3]\n')
    with pytest.raises(config.ConfigError, match=r"\[genesis\] oracle_keys\[1\] must be str, got int"):
        ledger_config.load_config(p, environ={})
    p.write_text('[ledger]\ndb = "l.db"\nledger_key = "l.key"\n[server]\nmax_wait_s = 5\n')
    cfg = ledger_config.load_config(p, environ={"FAULTPROOF_LEDGER__DURABILITY__SYNCHRONOUS": "normal"})
    assert cfg.max_wait_s == 5.0 and cfg.synchronous == "NORMAL" and cfg.db == tmp_path / "l.db"


def test_a_default_is_written_once_in_the_dataclass(tmp_path: Path) -> None:
    """`keys_of`: a table's keys take their types and defaults from a dataclass's fields (picked,
    and renamed where the TOML key is not the field's name), so the oracle's [http] and [gossip]
    defaults and the agent's [agent] ones are the dataclasses' own."""

    @dataclasses.dataclass(frozen=True)
    class Listener:
        host: str = "127.0.0.1"
        port: int = 8000
        peers: tuple[str, ...] = ("a",)

    assert config.keys_of(Listener, {"p": "port", "peers": "peers"}) == {"p": (int, 8000), "peers": (list[str], ["a"])}
    assert config.keys_of(Listener, ("host",)) == {"host": (str, "127.0.0.1")}
    assert list(config.keys_of(Listener)) == ["host", "port", "peers"]
    oracle_keys = ("http_host", "http_port", "max_body_bytes", "idle_timeout_s", "gossip_port", "bootstrap")
    oracle_defaults = {f.name: f.default for f in dataclasses.fields(oracle_config.OracleConfig)}
    cfg = oracle_config.load(_oracle(tmp_path), environ={})
    assert {k: getattr(cfg, k) for k in oracle_keys} == {k: oracle_defaults[k] for k in oracle_keys}
    agent_keys = ("ledger_wait_s", "ledger_bootstrap_timeout_s", "ledger_anchor_interval_s", "attestation_interval_s",
                  "log_level")
    agent_defaults = {f.name: f.default for f in dataclasses.fields(agent_config.AgentConfig)}
    ac = agent_config.from_dict({"agent": {"key_file": "k", "data_dir": "d", "blinding_keys_dir": "b",
                                           "ledger_url": "http://x"}})
    assert {k: getattr(ac, k) for k in agent_keys} == {k: agent_defaults[k] for k in agent_keys}
