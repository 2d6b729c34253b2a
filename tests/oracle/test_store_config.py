"""Pure tests of the node's durable store (one own vote per claim, survives reopen) and config
validation. No processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultproof.errors import Reason
from faultproof.identity import Identity
from faultproof.messages import PayoutBody, RejectBody
from oracle.config import ConfigError, from_dict, load
from oracle.store import Store

REPO = Path(__file__).resolve().parents[2]
ME = Identity.from_seed(b"\x07" * 32)
CLAIM = b"\x22" * 32


def _body() -> PayoutBody:
    return PayoutBody(ledger_id=b"\x11" * 32, oracle_set_epoch=0, claim_id=CLAIM, policy_id=b"\x33" * 32,
                      device_id=b"\x44" * 32, epoch=0, start_seq=0, end_seq=4, start_ts=1, end_ts=2,
                      circuit_id=b"\x55" * 32, beneficiary=b"\x66" * 32, amount=100)


def test_one_own_vote_per_claim_survives_reopen(tmp_path: Path) -> None:
    db = tmp_path / "o.sqlite3"
    store = Store(db)
    approve = _body().approve(ME)
    store.add_votes([(approve, True)])
    # a second, different own verdict for the same claim is refused by the database itself
    reject = RejectBody(oracle_id=ME.public_key, ledger_id=b"\x11" * 32, oracle_set_epoch=0, claim_id=CLAIM,
                        reason=Reason.PERIOD_LIMIT).sign(ME)
    store.add_votes([(reject, True)])
    store.close()
    store = Store(db)  # a restart
    assert store.own_vote(CLAIM) == approve
    assert [v.encode() for v in store.own_votes()] == [approve.encode()]
    store.close()


def test_example_config_loads_with_documented_defaults() -> None:
    cfg = load(REPO / "configs" / "oracle.example.toml")
    assert cfg.http_port == 8710 and cfg.gossip_port == 4710 and cfg.tuning.vote_batch_ms == 20


def test_an_oracle_on_the_pool_contract_names_its_chain_key_file_or_token_key(tmp_path: Path) -> None:
    url = f"evm+http://127.0.0.1:8545?contract=0x{'ab' * 20}&from=0x{'cd' * 20}"
    base = {"key_file": "k", "data_dir": "d", "ledger_url": url, "ledger_id": "00" * 32}
    in_file = from_dict({"oracle": {**base, "chain_key_file": "keys/chain.key"}}, base=tmp_path)
    assert in_file.chain_key_file == tmp_path / "keys" / "chain.key"
    in_token = from_dict({"oracle": {**base, "chain_key_file": "pkcs11:fp/oracle-1-chain"}}, base=tmp_path)
    assert str(in_token.chain_key_file) == "pkcs11:fp/oracle-1-chain"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"oracle": {"key_file": "k", "data_dir": "d"}}, "ledger_url is required"),
        ({"oracle": {"key_file": "k", "data_dir": "d", "ledger_url": "ftp://x"}}, "http(s) URL"),
        ({"oracle": {"key_file": "k", "data_dir": "d", "ledger_url": "http://x"}, "gossip": {"bootstrap": ["/ip4/1"]}},
         "/p2p/"),
        ({"oracle": {"key_file": "k", "data_dir": "d", "ledger_url": "http://x"}, "http": {"prot": 1}}, "unknown key"),
        ({"oracle": {"key_file": "k", "data_dir": "d", "ledger_url": "http://x"}, "tuning": {"verify_workers": 0}},
         "verify_workers"),
        # DESIGN §13: an oracle on the pool contract sends from an account and signs with a bound chain key
        ({"oracle": {"key_file": "k", "data_dir": "d", "ledger_url": f"evm+http://x:1?contract=0x{'ab' * 20}",
                     "chain_key_file": "c"}}, "from=0x"),
        ({"oracle": {"key_file": "k", "data_dir": "d",
                     "ledger_url": f"evm+http://x:1?contract=0x{'ab' * 20}&from=0x{'cd' * 20}"}}, "chain_key_file"),
        ({"oracle": {"key_file": "k", "data_dir": "d", "ledger_url": "evm+http://x:1?contract=0x12",
                     "chain_key_file": "c"}}, "contract="),
    ],
)
def test_bad_configs_say_what_to_fix(raw: dict, fragment: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as e:
        from_dict(raw)
    assert fragment in str(e.value)


def test_one_own_vote_per_claim_per_epoch_and_old_databases_migrate(tmp_path: Path) -> None:
    """Item 13.1: after a rotation the same verdict is signed again under the new epoch; the store
    keeps one own vote per (claim, epoch). A database made before epochs were recorded migrates."""
    import sqlite3

    db = tmp_path / "old.sqlite3"
    old = sqlite3.connect(db)
    old.executescript("""
        CREATE TABLE votes (vote BLOB PRIMARY KEY, claim_id BLOB NOT NULL, oracle_id BLOB NOT NULL,
                            kind TEXT NOT NULL, own INTEGER NOT NULL, received_ms INTEGER NOT NULL);
        CREATE UNIQUE INDEX one_own_vote_per_claim ON votes(claim_id) WHERE own = 1;""")
    e0 = _body().approve(ME)
    old.execute("INSERT INTO votes VALUES (?,?,?,?,?,?)", (e0.encode(), CLAIM, ME.public_key, "approve", 1, 1))
    old.commit()
    old.close()
    store = Store(db)
    e1 = _body().replace(oracle_set_epoch=1).approve(ME)
    e1_twice = RejectBody(oracle_id=ME.public_key, ledger_id=b"\x11" * 32, oracle_set_epoch=1, claim_id=CLAIM,
                          reason=Reason.PERIOD_LIMIT).sign(ME)
    store.add_votes([(e1, True)])
    store.add_votes([(e1_twice, True)])  # a second own vote in epoch 1: ignored (the unique index)
    assert [v.encode() for v in store.own_votes()] == [e0.encode(), e1.encode()]
    assert store.own_vote(CLAIM) == e1  # the newest epoch's
    store.close()
