"""An oracle's chain key in a PKCS#11 token (DESIGN §13): a secp256k1 key made in SoftHSM2 signs
the EIP-712 PayoutBody, a group's GroupPayoutBody, a DeviceSlash and the Ed25519 binding as the pool contract
checks them (low-s, the right recovery byte, recovering to the key's address); the token's other
signer refuses it, and a P-256 key is refused as a chain key. Real SoftHSM2 (the session's token
store)."""

from __future__ import annotations

from typing import Any

import pytest

from faultproof import signing
from faultproof.identity import Identity
from faultproof.messages import (
    CorroboratingWindow,
    DeviceSlashShare,
    Frame,
    FrameEquivocation,
    GroupPayoutBody,
    PayoutBody,
    SignedFrame,
)
from ledger.evm.chain_keys import SECP256K1_N, TokenChainKey, address_of, load_chain_key
from ledger.evm.typed import verify_binding
from oracle.chain_votes import (
    chain_body,
    chain_group_body,
    check_chain_approve,
    recover_signer,
    sign_chain_approve,
)
from oracle.device_slash import check_share, recover_slash_signer, slash_body
from tests.hardware.conftest import TOKEN, token_cfg

CHAIN_ID, CONTRACT = 31337, "0x" + "5a" * 20


def _body(i: int) -> Any:
    b = PayoutBody(ledger_id=b"\x01" * 32, oracle_set_epoch=0, claim_id=bytes([i]) * 32, policy_id=b"\x03" * 32,
                   device_id=b"\x04" * 32, epoch=0, start_seq=1, end_seq=5, start_ts=1000, end_ts=5000 + i,
                   circuit_id=b"\x05" * 32, beneficiary=bytes(12) + b"\x06" * 20, amount=100,
                   end_chain=(77).to_bytes(32, "big"))
    return chain_body(b, (66).to_bytes(32, "big"))


def _frame(chain: int) -> Any:
    return SignedFrame(frame=Frame(device_id=b"\x04" * 32, epoch=0, seq=7, ts_ms=5000, chain=chain.to_bytes(32, "big")),
                       signature=bytes(64))


def test_a_secp256k1_key_in_the_token_signs_what_the_contract_checks(token_store: dict[str, str]) -> None:
    point = signing.token_generate_secp256k1(token_cfg("chain-0"))
    key = load_chain_key(f"pkcs11:{TOKEN}/chain-0")
    assert isinstance(key, TokenChainKey) and key.address == address_of(point)
    oracle = Identity.generate()
    for i in range(12):  # about half of raw token signatures are high-s: all come out low-s
        body = _body(i)
        sig = key.sign_body(body, CHAIN_ID, CONTRACT)
        assert len(sig.signature) == 65 and sig.signature[64] in (27, 28)
        assert int.from_bytes(sig.signature[32:64], "big") <= SECP256K1_N // 2
        assert recover_signer(body, CHAIN_ID, CONTRACT, sig.signature) == key.address
        ca = sign_chain_approve(key, oracle.public_key, body, CHAIN_ID, CONTRACT)
        assert check_chain_approve(ca, body, key.address, CHAIN_ID, CONTRACT) is None
    # a group's body (DESIGN §14 on the chain): signed under the GroupPayoutBody types, as a file key does
    windows = tuple(CorroboratingWindow(device_id=bytes([d]) * 32, agent_id=bytes([0x20 + d]) * 32, epoch=0,
                                        start_seq=1, end_seq=5, start_ts=1000, end_ts=5000,
                                        end_chain=(70 + d).to_bytes(32, "big")) for d in (1, 2))
    group = chain_group_body(GroupPayoutBody(ledger_id=b"\x01" * 32, oracle_set_epoch=0, claim_id=b"\x0c" * 32,
                                             policy_id=b"\x03" * 32, windows=windows, circuit_id=b"\x05" * 32,
                                             beneficiary=bytes(12) + b"\x06" * 20, amount=100),
                             [(60 + d).to_bytes(32, "big") for d in (1, 2)])
    ca = sign_chain_approve(key, oracle.public_key, group, CHAIN_ID, CONTRACT)
    assert recover_signer(group, CHAIN_ID, CONTRACT, ca.signature) == key.address
    assert check_chain_approve(ca, group, key.address, CHAIN_ID, CONTRACT) is None
    # device slashing evidence (DESIGN §13): the DeviceSlash a peer's share is checked against
    ev = FrameEquivocation(reporter=b"\x0e" * 32, first=_frame(1), second=_frame(2))
    slash = slash_body(0, ev)
    share = DeviceSlashShare(oracle_id=oracle.public_key, oracle_set_epoch=0, evidence=ev,
                             signature=key.sign_device_slash(slash, CHAIN_ID, CONTRACT).signature)
    assert recover_slash_signer(slash, CHAIN_ID, CONTRACT, share.signature) == key.address
    assert check_share(share, slash, key.address, CHAIN_ID, CONTRACT) is None
    assert verify_binding(key.binding(oracle))  # the admin's tooling and the contract take this binding
    with pytest.raises(signing.KeyError_, match="not P-256"):
        signing.load_signer(f"pkcs11:{TOKEN}/chain-0")  # never a protocol signer
    with pytest.raises(signing.KeyError_, match="already holds"):
        signing.token_generate_secp256k1(token_cfg("chain-0"))


def test_a_p256_key_is_not_a_chain_key(token_store: dict[str, str]) -> None:
    signing.token_generate(token_cfg("p256-not-chain"), signing.KeyType.P256)
    with pytest.raises(signing.KeyError_, match="not a secp256k1 key"):
        load_chain_key(f"pkcs11:{TOKEN}/p256-not-chain")
