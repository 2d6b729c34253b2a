"""The dashboard's view-model: what the network says, turned into page data. Pure.

Inputs are values: the ledger's signed entries (replayed through `ledger.state`, the very rules the
ledger and every oracle run, so every signature, hash link and rule is checked here too), the
ledger's signed head, the JSON the oracles' public APIs answer (`/v1/status`, `/healthz`,
`/v1/claims/{id}`), receipt checks, and the time `now_ms`. Outputs are plain dataclasses and dicts the
templates render. Nothing here does I/O or reads a clock, so every page can be tested from values.

Rules of presentation (DESIGN §17):
  - money is in the ledger's smallest unit, integers, never rounded;
  - a claim's status is the ledger's when the ledger paid it (`paid`), else the most advanced
    status any oracle reports (rejected > approved > pending), with the rejection's reason;
  - k of n is counted from what was signed: the QC's signers for a paid claim, the votes
    gathered from the oracles otherwise;
  - an oracle is ready only if its /healthz said so on the last poll; unreachable is not ready;
  - the ledger is "verified" only while every entry replayed and the newest signed head verifies
    under the genesis ledger key and names the entry replayed at its height.

This module must never hold a key, never decide anything for the protocol, and never mutate what
it was handed by the collector except its own replica.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from faultproof.chain import dec
from faultproof.errors import Reason
from faultproof.messages import (
    AdminKind,
    ExpirePolicy,
    Genesis,
    IssuePolicy,
    QuorumCertificate,
    SignedAdminTx,
    SignedEntry,
    SignedHead,
    TriggerKind,
)
from ledger.state import (
    EXTERNAL,
    FREE,
    LOCKED_PREFIX,
    PAID,
    PREMIUMS,
    IntegrityError,
    LedgerState,
    TxKind,
)

PAGE_SIZE = 100  # rows per table page: a page's cost must not grow with the ledger
CHART_POINTS = 400  # a chart is downsampled to this many points
STATUS_RANK = {"pending": 0, "approved": 1, "rejected": 2, "paid": 3}


# --------------------------------------------------------------------------- formatting


def fmt_money(units: int) -> str:
    return f"{units:,}"


def fmt_time(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def fmt_duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    if ms < 0:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    s = ms / 1000
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.0f} h"
    return f"{s / 86400:.0f} days"


def fmt_ago(ms: int | None, now_ms: int) -> str:
    if ms is None:
        return "never"
    return fmt_duration(max(0, now_ms - ms)) + " ago"


def short(hex_id: str | None, n: int = 12) -> str:
    return "—" if not hex_id else (hex_id[:n] + "…" if len(hex_id) > n else hex_id)


def reason_words(code: str | None) -> str:
    """A reason code's sentence from the one reason table (docs/reasons.md); "" if unknown."""
    try:
        return Reason(code).description if code else ""
    except ValueError:
        return ""


def trigger_words(terms: IssuePolicy, window: int | None) -> str:
    """A policy's trigger in words, with T/lo/hi decoded from enc() back to readings."""
    of = f" of {window} readings" if window else ""
    kind = TriggerKind(terms.kind)
    if kind is TriggerKind.COUNT_ABOVE:
        return f"at least {terms.count}{of} above {dec(terms.threshold)}"
    if kind is TriggerKind.RUN_ABOVE:
        return f"{terms.count} consecutive readings above {dec(terms.threshold)}" + (f" (window {window})" if window else "")
    if kind is TriggerKind.STUCK:
        return f"stuck: {terms.count} consecutive equal readings" + (f" (window {window})" if window else "")
    if kind is TriggerKind.OUTSIDE_RANGE:
        return f"at least {terms.count}{of} outside [{dec(terms.lo)}, {dec(terms.hi)}]"
    return f"dropout: a gap of at least {fmt_duration(terms.gap_ms)} between readings" + (
        f" (window {window})" if window else "")


def paginate(rows: Sequence[Any], page: int, size: int = PAGE_SIZE) -> dict[str, Any]:
    pages = max(1, -(-len(rows) // size))
    page = min(max(1, page), pages)
    return {"rows": list(rows[(page - 1) * size: page * size]), "page": page, "pages": pages, "total": len(rows)}


# --------------------------------------------------------------------------- the ledger replica


@dataclass(frozen=True)
class EntryRow:
    height: int
    time_ms: int
    kind: str
    summary: str
    entry_hash: str
    prev_hash: str
    paid: int
    policy_id: str | None = None
    claim_id: str | None = None
    device_id: str | None = None


@dataclass(frozen=True)
class PoolPoint:
    height: int
    time_ms: int
    free: int
    locked: int
    premiums: int
    paid: int


@dataclass(frozen=True)
class LedgerPayout:
    claim_id: str
    policy_id: str
    device_id: str
    height: int
    time_ms: int
    paid: int
    amount: int
    signers: tuple[str, ...]
    oracle_set_epoch: int
    members: int  # n of the set that certified
    threshold: int  # k of that set
    start_seq: int
    end_seq: int
    end_ts: int


def _locked_total(balances: dict[str, int]) -> int:
    return sum(v for k, v in balances.items() if k.startswith(LOCKED_PREFIX))


class LedgerReplica:
    """The ledger's state rebuilt from its signed entries, plus the rows the pages show.

    `apply` stops at the first entry that does not follow (bad signature, broken link, a rule the
    replay refuses) and keeps the reason: the ledger page then says "does not verify" at that
    height, and nothing after it is shown as fact."""

    def __init__(self, genesis_entry: SignedEntry) -> None:
        self.state = LedgerState.from_genesis_entry(genesis_entry)
        g = genesis_entry.entry
        self.genesis: Genesis = self.state.genesis
        self.rows: list[EntryRow] = [EntryRow(0, g.time_ms, "genesis",
                                              f"genesis: {len(self.genesis.oracles)} oracles, k = {self.genesis.threshold}",
                                              self.state.head_hash.hex(), bytes(32).hex(), 0)]
        self.pool: list[PoolPoint] = [PoolPoint(0, g.time_ms, 0, 0, 0, 0)]
        self.payouts: dict[str, LedgerPayout] = {}
        self.problem: IntegrityError | None = None
        self.head: SignedHead | None = None
        self.head_problem: str | None = None
        self.device_events: dict[str, list[int]] = {}  # device hex -> heights of entries about it

    @property
    def ledger_id(self) -> str:
        return self.state.ledger_id.hex()

    @property
    def height(self) -> int:
        return self.state.height

    @property
    def verified(self) -> bool:
        return self.problem is None and self.head is not None and self.head_problem is None

    def apply(self, entries: Iterable[SignedEntry]) -> int:
        """Replay entries in order (already applied heights are skipped). Returns how many applied."""
        applied = 0
        for signed in entries:
            if self.problem is not None:
                break
            entry = signed.entry
            if entry.height <= self.state.height:
                continue
            set_before = self.state.oracle_set
            try:
                effect = self.state.apply_entry(signed)
            except IntegrityError as e:
                self.problem = e
                break
            applied += 1
            self._record(signed, effect.kind, effect.policy_id, effect.claim_id, set_before)
        return applied

    def _record(self, signed: SignedEntry, kind: TxKind, pid: bytes | None, cid: bytes | None,
                set_before: Any) -> None:
        entry, st = signed.entry, self.state
        tx = entry.tx
        device: bytes | None = None
        summary = kind.value.replace("_", " ")
        if isinstance(tx, QuorumCertificate):
            body = tx.body
            device = body.device_id
            oset = set_before if body.oracle_set_epoch == set_before.epoch else st.previous_oracle_set or set_before
            self.payouts[body.claim_id.hex()] = LedgerPayout(
                body.claim_id.hex(), body.policy_id.hex(), body.device_id.hex(), entry.height, entry.time_ms,
                entry.paid, body.amount, tuple(s.oracle_id.hex() for s in tx.signatures), body.oracle_set_epoch,
                len(oset.members), oset.threshold, body.start_seq, body.end_seq, body.end_ts)
            summary = f"payout {fmt_money(entry.paid)} for claim {short(body.claim_id.hex())} ({len(tx.signatures)} signatures)"
        elif isinstance(tx, ExpirePolicy):
            summary = f"policy {short(tx.policy_id.hex())} expired and closed"
            pol = st.policies.get(tx.policy_id)
            device = pol.device_id if pol else None
        elif isinstance(tx, SignedAdminTx):
            args, ak = tx.tx.args, AdminKind(tx.tx.kind)
            device = getattr(args, "device_id", None)
            if ak in (AdminKind.DEPOSIT, AdminKind.WITHDRAW):
                summary = f"{ak.name.lower()} {fmt_money(args.amount)}"  # type: ignore[attr-defined]
            elif ak is AdminKind.ISSUE_POLICY:
                assert isinstance(args, IssuePolicy)
                summary = (f"policy {short(pid.hex() if pid else None)} for device {short(args.device_id.hex())}: "
                           f"coverage {fmt_money(args.coverage)}, premium {fmt_money(args.premium)}")
            elif ak is AdminKind.ENROL_DEVICE:
                summary = f"device {short(args.device_id.hex())} enrolled, epoch {args.epoch}"  # type: ignore[attr-defined]
            elif ak is AdminKind.REVOKE_DEVICE:
                summary = f"device {short(args.device_id.hex())} revoked"  # type: ignore[attr-defined]
            elif ak in (AdminKind.ENROL_AGENT, AdminKind.REVOKE_AGENT):
                verb = "enrolled" if ak is AdminKind.ENROL_AGENT else "revoked"
                summary = f"agent {short(args.agent_id.hex())} {verb}"  # type: ignore[attr-defined]
            elif ak is AdminKind.ROTATE_ORACLES:
                summary = f"oracle set rotated to epoch {st.oracle_set.epoch}: {len(st.oracle_set.members)} members, k = {st.oracle_set.threshold}"
            elif ak is AdminKind.REGISTER_CIRCUIT:
                summary = f"circuit registered, window n = {args.n}"  # type: ignore[attr-defined]
            elif ak is AdminKind.ROTATE_ADMIN:
                summary = "admin key rotated"
        dev_hex = device.hex() if device else None
        if dev_hex:
            self.device_events.setdefault(dev_hex, []).append(entry.height)
        self.rows.append(EntryRow(entry.height, entry.time_ms, kind.value, summary, st.head_hash.hex(),
                                  entry.prev_hash.hex(), entry.paid, pid.hex() if pid else None,
                                  cid.hex() if cid else None, dev_hex))
        b = st.balances
        last = self.pool[-1]
        point = PoolPoint(entry.height, entry.time_ms, b.get(FREE, 0), _locked_total(b), b.get(PREMIUMS, 0),
                          b.get(PAID, 0))
        if (point.free, point.locked, point.premiums, point.paid) != (last.free, last.locked, last.premiums, last.paid):
            self.pool.append(point)

    def accept_head(self, head: SignedHead) -> None:
        """Check the ledger's signed head: the genesis key signed it, and it names the entry we
        replayed at its height (a head past our replica is checked on a later call)."""
        if head.ledger_id != self.state.ledger_id or not head.verify(self.genesis.ledger_key):
            self.head_problem = f"the signed head at height {head.height} does not verify under the ledger key"
            self.head = head
            return
        if head.height <= self.state.height and head.entry_hash.hex() != self.rows[head.height].entry_hash:
            self.head_problem = f"the signed head names another entry at height {head.height} (rewritten history)"
        else:
            self.head_problem = None
        self.head = head


# --------------------------------------------------------------------------- oracles


@dataclass
class OracleObservation:
    """One poll of one oracle's public endpoints (the collector fills it; `None` = no answer)."""

    url: str
    observed_ms: int
    healthz: dict[str, Any] | None = None
    healthz_status: int | None = None
    status: dict[str, Any] | None = None
    error: str | None = None
    latency_ms: float | None = None  # /healthz round trip
    verify_mean_ms: float | None = None  # faultproof_oracle_verify_seconds sum / count from /metrics
    verify_count: int = 0
    last_oracle_id: str | None = None  # what this URL said it was on an earlier poll

    @property
    def ready(self) -> bool:
        return self.healthz_status == 200 and bool(self.healthz and self.healthz.get("ok"))

    @property
    def oracle_id(self) -> str | None:
        for src in (self.status, self.healthz):
            if src and src.get("oracle_id"):
                return str(src["oracle_id"])
        return self.last_oracle_id


def parse_verify_latency(metrics_text: str) -> tuple[float | None, int]:
    """Mean proof-verification latency (ms) and count from an oracle's Prometheus text."""
    total = count = None
    for line in metrics_text.splitlines():
        if line.startswith("faultproof_oracle_verify_seconds_sum "):
            total = float(line.split()[1])
        elif line.startswith("faultproof_oracle_verify_seconds_count "):
            count = float(line.split()[1])
    if total is None or not count:
        return None, int(count or 0)
    return total / count * 1000, int(count)


def oracle_fingerprint(o: OracleObservation) -> tuple[Any, ...]:
    """What must change for a page to need a refresh (latencies alone do not)."""
    st = o.status or {}
    led = st.get("ledger") or {}
    return (o.url, o.ready, o.error, o.oracle_id, st.get("synced"), st.get("member"), led.get("height"),
            (st.get("oracle_set") or {}).get("epoch"), tuple(sorted((st.get("claims") or {}).items())),
            o.verify_count)


# --------------------------------------------------------------------------- claims


@dataclass
class ClaimBook:
    """Every claim any oracle reported (`GET /v1/claims/{id}` views), keyed by claim id, per oracle."""

    views: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # claim -> url -> view
    changes: int = 0  # bumped on every update that changed something (the snapshot's cache key)

    def update(self, url: str, view: dict[str, Any]) -> bool:
        cid = str(view["claim_id"])
        per = self.views.setdefault(cid, {})
        changed = per.get(url) != view
        per[url] = view
        self.changes += changed
        return changed

    def status_of(self, cid: str, url: str) -> str | None:
        v = self.views.get(cid, {}).get(url)
        return None if v is None else str(v.get("status"))


@dataclass(frozen=True)
class VoteRow:
    oracle_id: str
    oracle_label: str
    vote: str
    reason: str | None
    amount: int | None


@dataclass
class ClaimRow:
    claim_id: str
    policy_id: str | None
    device_id: str | None
    agent_id: str | None
    status: str
    reason: str | None
    received_ms: int | None
    votes: list[VoteRow]
    approvals: int
    rejects: int
    n: int
    k: int
    oracles_reporting: list[str]
    payout: LedgerPayout | None
    receipt: ReceiptStatus | None
    start_seq: int | None
    end_seq: int | None

    @property
    def signed_k(self) -> int:
        """Approvals that count: the QC's signers once paid, else the approve votes seen."""
        return len(self.payout.signers) if self.payout else self.approvals

    @property
    def claim_to_payout_ms(self) -> int | None:
        if self.payout is None or self.received_ms is None:
            return None
        return max(0, self.payout.time_ms - self.received_ms)


@dataclass(frozen=True)
class ReceiptStatus:
    ok: bool
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None  # could not fetch it


# --------------------------------------------------------------------------- the whole picture


@dataclass
class Snapshot:
    """Everything the collector knows; the page builders below read it and `now_ms`."""

    ledger_url: str
    oracle_urls: list[str]
    replica: LedgerReplica | None = None
    ledger_error: str | None = None
    oracles: dict[str, OracleObservation] = field(default_factory=dict)
    claims: ClaimBook = field(default_factory=ClaimBook)
    receipts: dict[str, ReceiptStatus] = field(default_factory=dict)
    version: int = 0
    _rows: tuple[tuple[Any, ...], list[ClaimRow]] | None = field(default=None, repr=False)

    # -- labels -------------------------------------------------------------------------------

    def oracle_labels(self) -> dict[str, str]:
        """oracle id -> "oracle-i" by its place in the genesis list (then later sets)."""
        labels: dict[str, str] = {}
        if self.replica is not None:
            st = self.replica.state
            for m in (*self.replica.genesis.oracles, *st.oracle_set.members):
                labels.setdefault(m.hex(), f"oracle-{len(labels)}")
        for o in self.oracles.values():
            if o.oracle_id:
                labels.setdefault(o.oracle_id, f"oracle-{len(labels)}")
        return labels

    def url_of(self) -> dict[str, str]:
        return {o.oracle_id: o.url for o in self.oracles.values() if o.oracle_id}

    # -- claims -------------------------------------------------------------------------------

    def claim_rows(self) -> list[ClaimRow]:
        """Every claim, newest first. Built once per change: a page asks for it several times and
        a long ledger has thousands of payouts."""
        key = (self.version, self.claims.changes, self.replica.height if self.replica else None,
               len(self.receipts), len(self.oracles), tuple(o.oracle_id for o in self.oracles.values()))
        if self._rows is None or self._rows[0] != key:
            self._rows = (key, self._build_claim_rows())
        return self._rows[1]

    def _build_claim_rows(self) -> list[ClaimRow]:
        labels = self.oracle_labels()
        oset = self.replica.state.oracle_set if self.replica else None
        n = len(oset.members) if oset else 0
        k = oset.threshold if oset else 0
        payouts = self.replica.payouts if self.replica else {}
        rows: list[ClaimRow] = []
        for cid in set(self.claims.views) | set(payouts):
            rows.append(self._claim_row(cid, labels, n, k, payouts.get(cid)))
        rows.sort(key=lambda r: (r.received_ms if r.received_ms is not None else
                                 (r.payout.time_ms if r.payout else 0), r.claim_id), reverse=True)
        return rows

    def claim_row(self, cid: str) -> ClaimRow | None:
        payouts = self.replica.payouts if self.replica else {}
        if cid not in self.claims.views and cid not in payouts:
            return None
        oset = self.replica.state.oracle_set if self.replica else None
        return self._claim_row(cid, self.oracle_labels(), len(oset.members) if oset else 0,
                               oset.threshold if oset else 0, payouts.get(cid))

    def _claim_row(self, cid: str, labels: dict[str, str], n: int, k: int, payout: LedgerPayout | None) -> ClaimRow:
        views = self.claims.views.get(cid, {})
        status, reason = "pending", None
        votes: dict[str, VoteRow] = {}
        received: list[int] = []
        first: dict[str, Any] = {}
        for url in sorted(views):
            v = views[url]
            first = first or v
            s = str(v.get("status", "pending"))
            if STATUS_RANK.get(s, 0) > STATUS_RANK.get(status, 0):
                status = s
                reason = v.get("reason")
            elif s == status and reason is None:
                reason = v.get("reason")
            if v.get("received_ms") is not None:
                received.append(int(v["received_ms"]))
            for vote in v.get("votes", ()):
                oid = str(vote["oracle_id"])
                if oid not in votes or vote.get("own"):
                    votes[oid] = VoteRow(oid, labels.get(oid, short(oid)), str(vote["vote"]), vote.get("reason"),
                                         vote.get("amount"))
        if payout is not None:
            status, reason = "paid", None
            if not views:
                first = {"policy_id": payout.policy_id, "device_id": payout.device_id}
            n, k = payout.members, payout.threshold
        if status == "rejected" and reason is None:
            # the quorum's reason: the most common reason among the reject votes
            rs = [v.reason for v in votes.values() if v.reason]
            reason = max(set(rs), key=rs.count) if rs else None
        vote_rows = sorted(votes.values(), key=lambda v: (v.oracle_label, v.oracle_id))
        return ClaimRow(
            claim_id=cid, policy_id=first.get("policy_id"), device_id=first.get("device_id"),
            agent_id=first.get("agent_id"), status=status, reason=reason,
            received_ms=min(received) if received else None, votes=vote_rows,
            approvals=sum(1 for v in vote_rows if v.vote == "approve"),
            rejects=sum(1 for v in vote_rows if v.vote == "reject"), n=n, k=k,
            oracles_reporting=sorted(views), payout=payout, receipt=self.receipts.get(cid),
            start_seq=payout.start_seq if payout else first.get("start_seq"),
            end_seq=payout.end_seq if payout else first.get("end_seq"))

    # -- health -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        ready = sum(1 for u in self.oracle_urls if (o := self.oracles.get(u)) and o.ready)
        k = self.replica.state.oracle_set.threshold if self.replica else 0
        problems: list[str] = []
        if self.ledger_error:
            problems.append(f"ledger: {self.ledger_error}")
        if self.replica is None:
            problems.append("ledger: not read yet")
        elif self.replica.problem is not None:
            problems.append(f"ledger does not verify: {self.replica.problem}")
        elif self.replica.head_problem:
            problems.append(f"ledger head: {self.replica.head_problem}")
        elif self.replica.head is None:
            problems.append("ledger: signed head not read yet")
        if self.oracle_urls and ready < k:
            problems.append(f"only {ready} oracles ready, a quorum needs {k}")
        labels = self.oracle_labels()
        not_ready = [u for u in self.oracle_urls if not ((o := self.oracles.get(u)) and o.ready)]
        not_ready_names = [f"{labels.get(o.oracle_id or '', 'oracle')} ({u})" if (o := self.oracles.get(u)) else u
                           for u in not_ready]
        return {"ok": not problems, "problems": problems, "ready": ready, "configured": len(self.oracle_urls),
                "k": k, "not_ready": not_ready, "not_ready_names": not_ready_names,
                "height": self.replica.height if self.replica else None,
                "verified": bool(self.replica and self.replica.verified)}


# --------------------------------------------------------------------------- page builders


def overview_page(s: Snapshot, now_ms: int) -> dict[str, Any]:
    claims = s.claim_rows()
    counts = {st: sum(1 for c in claims if c.status == st) for st in STATUS_RANK}
    return {"health": s.health(), "pool": pool_summary(s), "claims": counts, "recent": claims[:10],
            "oracles": oracle_rows(s, now_ms), "chart": claims_chart_series(s)}


def pool_summary(s: Snapshot) -> dict[str, int]:
    if s.replica is None:
        return {"free": 0, "locked": 0, "premiums": 0, "paid": 0, "total": 0, "deposited": 0}
    b = s.replica.state.balances
    return {"free": b.get(FREE, 0), "locked": _locked_total(b), "premiums": b.get(PREMIUMS, 0),
            "paid": b.get(PAID, 0), "total": s.replica.state.pool_total, "external": b.get(EXTERNAL, 0)}


def pool_page(s: Snapshot, now_ms: int, page: int = 1) -> dict[str, Any]:
    locked: list[dict[str, Any]] = []
    if s.replica is not None:
        st = s.replica.state
        for pid, pol in st.policies.items():
            if pol.locked or pol.paid_total:
                locked.append({"policy_id": pid.hex(), "device_id": pol.device_id.hex(), "locked": pol.locked,
                               "paid": pol.paid_total, "status": pol.status_at(now_ms).value})
        locked.sort(key=lambda r: (-r["locked"], r["policy_id"]))
    series = downsample(s.replica.pool if s.replica else [], CHART_POINTS)
    return {"pool": pool_summary(s), "locked": paginate(locked, page), "series": series,
            "chart": claims_chart_series(s)}


def policy_rows(s: Snapshot, now_ms: int) -> list[dict[str, Any]]:
    if s.replica is None:
        return []
    st = s.replica.state
    rows: list[dict[str, Any]] = []
    for pid, pol in st.policies.items():
        t = pol.terms
        circuit = st.circuits.get(t.circuit_id)
        rows.append({
            "policy_id": pid.hex(), "device_id": t.device_id.hex(), "trigger": trigger_words(t, circuit.n if circuit else None),
            "start_ms": t.start_ms, "end_ms": t.end_ms, "coverage": t.coverage, "left": pol.locked,
            "amount": t.amount, "premium": t.premium, "paid": pol.paid_total, "payouts": len(pol.payouts),
            "status": pol.status_at(now_ms).value, "issued_height": pol.issued_height,
            "claim_ids": [w.claim_id.hex() for w in pol.payouts],
        })
    rows.sort(key=lambda r: -r["issued_height"])
    return rows


def device_rows(s: Snapshot, now_ms: int) -> list[dict[str, Any]]:
    if s.replica is None:
        return []
    st = s.replica.state
    last_frame: dict[str, tuple[int, str]] = {}  # device -> (end_seq, claim id) of the newest claim window
    for c in s.claim_rows():
        if c.device_id and c.end_seq is not None:
            if c.device_id not in last_frame or c.end_seq > last_frame[c.device_id][0]:
                last_frame[c.device_id] = (int(c.end_seq), c.claim_id)
    rows: list[dict[str, Any]] = []
    for did, d in st.devices.items():
        h = did.hex()
        lf = last_frame.get(h)
        rows.append({
            "device_id": h, "epoch": d.epoch, "anchor": d.anchor.hex(), "firmware_hash": d.firmware_hash.hex(),
            "enrolled_ms": d.enrolled_ms, "revoked_ms": d.revoked_ms,
            "status": "revoked" if d.revoked_ms is not None and d.revoked_ms <= now_ms else "enrolled",
            "policies": [p.hex() for p in st.device_policies.get(did, ())],
            "last_frame_seq": lf[0] if lf else None, "last_frame_claim": lf[1] if lf else None,
            "entries": s.replica.device_events.get(h, []),
        })
    rows.sort(key=lambda r: (-r["enrolled_ms"], r["device_id"]))
    return rows


def oracle_rows(s: Snapshot, now_ms: int) -> list[dict[str, Any]]:
    """One row per configured URL, then one per member the dashboard has no URL for."""
    labels = s.oracle_labels()
    members: set[str] = set()
    epoch = None
    if s.replica is not None:
        oset = s.replica.state.oracle_set
        members = {m.hex() for m in oset.members}
        epoch = oset.epoch
    ledger_height = s.replica.height if s.replica else None
    rows, seen = [], set()
    for url in s.oracle_urls:
        o = s.oracles.get(url)
        oid = o.oracle_id if o else None
        st = (o.status if o else None) or {}
        led = st.get("ledger") or {}
        h = led.get("height")
        seen.add(oid)
        rows.append({
            "url": url, "oracle_id": oid, "label": labels.get(oid or "", "unknown"),
            "member": (oid in members) if oid else None,
            "ready": bool(o and o.ready),
            "state": "ready" if o and o.ready else "not ready",
            "error": _not_ready_why(o),
            "synced": st.get("synced"), "epoch": (st.get("oracle_set") or {}).get("epoch"),
            "ledger_epoch": epoch, "height": h, "behind": (ledger_height - h) if (h is not None and ledger_height is not None) else None,
            "integrity_error": led.get("integrity_error"), "peers": (st.get("gossip") or {}).get("peers"),
            "claims": st.get("claims") or {}, "latency_ms": o.latency_ms if o else None,
            "verify_mean_ms": o.verify_mean_ms if o else None, "verify_count": o.verify_count if o else 0,
            "observed_ms": o.observed_ms if o else None,
        })
    for m in sorted(members - seen, key=lambda m: labels.get(m, m)):
        rows.append({"url": None, "oracle_id": m, "label": labels.get(m, short(m)), "member": True, "ready": False,
                     "state": "no URL configured", "error": None, "synced": None, "epoch": None, "ledger_epoch": epoch,
                     "height": None, "behind": None, "integrity_error": None, "peers": None, "claims": {},
                     "latency_ms": None, "verify_mean_ms": None, "verify_count": 0, "observed_ms": None})
    return rows


def _not_ready_why(o: OracleObservation | None) -> str | None:
    if o is None:
        return "not polled yet"
    if o.ready:
        return None
    if o.error:
        return o.error
    h = o.healthz or {}
    if h.get("synced") is False:
        return "not synced with the ledger"
    if h.get("gossip") is False:
        return "gossip not running"
    return f"/healthz answered {o.healthz_status}"


def ledger_page(s: Snapshot, page: int = 1) -> dict[str, Any]:
    rows = list(reversed(s.replica.rows)) if s.replica else []
    r = s.replica
    head = None
    if r is not None and r.head is not None:
        head = {"height": r.head.height, "entry_hash": r.head.entry_hash.hex(), "time_ms": r.head.time_ms,
                "signature": r.head.signature.hex(), "ok": r.head_problem is None, "problem": r.head_problem}
    return {
        "entries": paginate(rows, page), "head": head,
        "ledger_id": r.ledger_id if r else None,
        "ledger_key": r.genesis.ledger_key.hex() if r else None,
        "height": r.height if r else None,
        "verify": {"ok": bool(r and r.verified), "replayed": (r.height + 1) if r else 0,
                   "problem": str(r.problem) if r and r.problem else None,
                   "head_problem": r.head_problem if r else None},
    }


# --------------------------------------------------------------------------- series


def downsample(points: Sequence[Any], limit: int) -> list[Any]:
    """At most `limit` points, the first and the last always kept."""
    if len(points) <= limit:
        return list(points)
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def claims_chart_series(s: Snapshot) -> dict[str, list[tuple[int, int]]]:
    """Cumulative claims seen (first received by any oracle) and payouts (ledger time), over time."""
    claims = sorted(t for c in s.claim_rows() if (t := c.received_ms if c.received_ms is not None else
                                                  (c.payout.time_ms if c.payout else None)) is not None)
    payouts = sorted(p.time_ms for p in (s.replica.payouts.values() if s.replica else ()))
    return {"claims": downsample([(t, i + 1) for i, t in enumerate(claims)], CHART_POINTS),
            "payouts": downsample([(t, i + 1) for i, t in enumerate(payouts)], CHART_POINTS)}

