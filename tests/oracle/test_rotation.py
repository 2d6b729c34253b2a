"""Item 13.1 on real processes: an oracle-set rotation in the middle of a claim does not strand it.

Its own network (tests/netfix.py, 5 oracles, k = 4): rotations change the set for every later test,
so the session network of conftest.py is left alone. A claim is half-voted by stopping two oracles
(3 approvals < k in epoch e), then the admin rotates; the claim must still be paid exactly once,
checked on the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faultproof.identity import Identity
from faultproof.messages import RotateOracles
from tests.netfix import Network, http, incident, wait_until
from tests.oracle.helpers import paid_total


@pytest.fixture(scope="module")
def rnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with Network.running(tmp_path_factory.mktemp("rotation-net"), n=5, k=4) as network:
        yield network


def _epoch(net: Network, i: int) -> int:
    return int(net.status(i)["oracle_set"]["epoch"])


def _half_voted(net: Network) -> tuple[object, bytes]:
    """A claim with 3 approvals of the current epoch (oracles 3 and 4 stopped), still pending."""
    for i in (3, 4):
        net.oracles[i].stop()
    inc = incident(net)
    status, body = net.post_claim(0, inc.claim)
    assert status == 202 and body["status"] == "pending", body
    wait_until(lambda: (net.claim_status(0, inc.claim_id) or {}).get("approvals") == 3, 20,
               what="3 approvals in the old epoch")
    assert net.receipt(inc.claim_id)[0] == 404
    return inc, inc.claim_id


def _rotate(net: Network, members: list[bytes], k: int) -> int:
    before = _epoch(net, 0)
    net.admin_txs([RotateOracles(members=tuple(members), threshold=k)])
    for i in (0, 1, 2):
        wait_until(lambda i=i: _epoch(net, i) == before + 1, 20, what=f"oracle-{i} sees the rotation")
    return before + 1


def _paid_once(net: Network, inc: object, cid: bytes, epoch: int) -> None:
    view = net.wait_status(cid, "paid", oracle=0, timeout=60)
    assert view["qc"]["body"]["oracle_set_epoch"] == epoch  # certified in the new epoch
    status, receipt = net.receipt(cid)
    assert status == 200
    assert paid_total(net, inc.pid) == (inc.terms.amount, 1)  # type: ignore[attr-defined]
    h = net.ledger_height()
    # Old-epoch votes still arriving, re-gossip rounds, QC re-posts: never a second payout.
    wait_until(lambda: all(net.claim_status(i, cid)["status"] == "paid" for i in (0, 1, 2)), 20,
               what="every voter sees the payout")
    assert net.ledger_height() == h and paid_total(net, inc.pid) == (inc.terms.amount, 1)  # type: ignore[attr-defined]


def _alive(url: str) -> bool:
    try:
        return http("GET", url + "/healthz")[0] == 200
    except OSError:  # not listening yet
        return False


def test_rotation_mid_claim_still_pays(rnet: Network) -> None:
    net = rnet
    members = [o.oracle_id for o in net.oracles]

    # (a) rotated to the same members: the 3 voters sign the same body again under the new epoch
    # (one vote per claim per epoch), the 2 returning oracles vote in it: k reached, paid once.
    inc, cid = _half_voted(net)
    epoch = _rotate(net, members, 4)
    for i in (3, 4):
        net.oracles[i].start()
    _paid_once(net, inc, cid, epoch)
    own = [v for v in net.claim_status(0, cid)["votes"] if v["own"]]
    assert sorted(v["epoch"] for v in own) == [epoch - 1, epoch] and {v["vote"] for v in own} == {"approve"}

    # (b) rotated to a set that keeps k = 4 of the old members and adds a stranger (no process):
    # oracles 0-2 re-sign, oracle 3 votes in the new epoch, oracle 4 (rotated out) cannot count.
    inc, cid = _half_voted(net)
    stranger = Identity.generate().public_key
    epoch = _rotate(net, members[:4] + [stranger], 4)
    net.oracles[3].start()
    net.oracles[4].proc.start()  # rotated out: alive, but never ready
    wait_until(lambda: _alive(net.oracles[4].url), 60, what="oracle-4 alive")
    _paid_once(net, inc, cid, epoch)
    # once it has replayed the ledger (it may still be catching up: "not synced"), it says why it
    # is not ready: it is not a member
    readyz = wait_until(lambda: (lambda r: r if any("not a member" in p for p in r[1].get("problems", ())) else None)(
        http("GET", net.oracles[4].url + "/readyz")), 60, what="oracle-4 not ready: not a member")
    assert readyz[0] == 503, readyz
    signers = {s["oracle_id"] for s in net.claim_status(0, cid)["qc"]["signatures"]}
    assert signers == {m.hex() for m in members[:4]}
