"""`faultproof admin ...`: the underwriter's commands, one per AdminTx kind, plus read-outs.

    faultproof admin --key admin.key deposit 100000
    faultproof admin --key admin.key issue-policy configs/policies/overheat.example.toml --device-id HEX ...
    faultproof admin policies [--device-id HEX]
    faultproof admin nonce
    faultproof admin expire POLICY_ID               # anyone may; no key needed
    faultproof admin --key admin.key bond --device HEX 1500000     # economic security (DESIGN §14)

Each signing command reads the ledger_id and next nonce from the ledger, signs the AdminTx with the
admin key file and submits it. Only wiring: the ledger applies the rules.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from faultproof.chain import chain_anchor, chain_to_bytes
from faultproof.commandline import json_option, ledger_option
from faultproof.errors import FaultproofError
from faultproof.identity import Identity, KeyFileError, domain_tag
from faultproof.messages import (
    AdminTx,
    BindTransportKey,
    BondHolder,
    Deposit,
    EconParams,
    EconPolicy,
    EnrolAgent,
    EnrolDevice,
    EnrolGatewayKey,
    ExpirePolicy,
    IssuePolicy,
    Message,
    PostBond,
    RegisterCircuit,
    RevokeAgent,
    RevokeDevice,
    RotateAdmin,
    RotateOracles,
    TransferDevice,
    Unbond,
    UnbondStep,
    Withdraw,
    transport_binding_message,
)
from faultproof.operator_errors import OperatorError
from faultproof.signing import KeyError_ as SignerKeyError
from faultproof.signing import KeyType, load_signer
from ledger.client import LedgerClient, SubmitResult
from ledger.policy_file import PolicyFileError, load_policy
from ledger.service import wall_clock_ms
from ledger.state import default_threshold

T = TypeVar("T")
_F = TypeVar("_F", bound=Callable[..., Any])


def _run(coro_fn: Callable[[LedgerClient], Awaitable[T]], url: str) -> T:
    async def main() -> T:
        async with LedgerClient(url) as client:
            return await coro_fn(client)

    try:
        return asyncio.run(main())
    except FaultproofError as e:
        raise OperatorError(f"{e.reason.value}: {e.message}") from None


def hex32(value: str, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise click.BadParameter(f"{name} must be hex") from None
    if len(raw) != 32:
        raise click.BadParameter(f"{name} must be 32 bytes (64 hex characters)")
    return raw


def _result_json(r: SubmitResult) -> dict[str, Any]:
    return {"height": r.height, "entry_hash": r.entry_hash.hex(), "kind": r.kind, "existing": r.existing,
            "policy_id": r.policy_id.hex() if r.policy_id else None, "paid": r.paid}


@click.group()
@ledger_option("--url")
@click.option("--key", "key_path", envvar="FAULTPROOF_ADMIN_KEY", default=None,
              help="The admin key file, or pkcs11:TOKEN/LABEL (needed by every signing command).")
@click.pass_context
def admin(ctx: click.Context, url: str, key_path: str | None) -> None:
    """Underwriter commands: every admin transaction, signed with the admin key file."""
    ctx.obj = {"url": url, "key": key_path}


def load_admin_key(key_path: str | None) -> Any:
    """The admin's signer: a key file, or pkcs11:TOKEN/LABEL (DESIGN §15); Ed25519 only."""
    if key_path is None:
        raise OperatorError("--key (or FAULTPROOF_ADMIN_KEY) is required to sign an admin transaction")
    try:  # the ledger checks admin keys as Ed25519
        admin_key = load_signer(key_path)
    except (KeyFileError, SignerKeyError) as e:
        raise OperatorError(str(e)) from None
    if admin_key.public.key_type is not KeyType.ED25519:
        raise OperatorError("the admin key must be an Ed25519 key")
    return admin_key


async def submit_admin(client: LedgerClient, admin_key: Any, args: Message) -> SubmitResult:
    """Sign `args` with the next admin nonce of the ledger and submit it."""
    state = await client.state()
    tx = AdminTx.make(bytes.fromhex(state["ledger_id"]), int(state["next_admin_nonce"]), args)
    # Any faultproof.signing Signer signs like an Identity (public_key, sign(tag, msg)).
    return await client.submit(tx.sign(admin_key))


def _sign_and_submit(ctx: click.Context, args: Message, **extra: str) -> None:
    admin_key = load_admin_key(ctx.obj["key"])
    click.echo(json.dumps({**_result_json(_run(lambda c: submit_admin(c, admin_key, args), ctx.obj["url"])),
                           **extra}))


@admin.command("register-circuit")
@click.option("--vkey-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The canonical verification key bytes (faultproof.zk export).")
@click.option("--n", "n", type=int, required=True, help="Readings per window.")
@click.option("--layout-version", type=int, default=1, show_default=True)
@click.option("--transcript-hash", default="00" * 32, help="Ceremony transcript hash (hex); zero = development.")
@click.option("--production/--development", default=False, help="Production flag (development by default).")
@click.pass_context
def register_circuit(ctx: click.Context, vkey_file: Path, n: int, layout_version: int, transcript_hash: str,
                     production: bool) -> None:
    """Register a circuit (verification key, n, layout, ceremony transcript, production flag).

    Prints the circuit_id that policies name (`issue-policy --circuit-id`)."""
    tx = RegisterCircuit(vkey=vkey_file.read_bytes(), n=n, layout_version=layout_version,
                         transcript_hash=hex32(transcript_hash, "transcript hash"), production=int(production))
    _sign_and_submit(ctx, tx, circuit_id=tx.circuit_id.hex())


@admin.command("enrol-device")
@click.argument("device_id", required=False)
@click.option("--from", "from_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The <name>.enrol.json that `faultproof device provision` wrote (instead of the options).")
@click.option("--epoch", type=int, default=0, show_default=True)
@click.option("--anchor", default=None, help="c_0 of the epoch (hex); computed from the device id if omitted.")
@click.option("--firmware-hash", default=None, help="SHA-256 of the attested firmware (hex).")
@click.pass_context
def enrol_device(ctx: click.Context, device_id: str | None, from_file: Path | None, epoch: int, anchor: str | None,
                 firmware_hash: str | None) -> None:
    """Enrol a device (DEVICE_ID and --firmware-hash, or --from FILE), or re-anchor it with a higher epoch."""
    if from_file is not None:
        if device_id or anchor or firmware_hash:
            raise click.UsageError("give --from FILE or DEVICE_ID with options, not both")
        try:
            msg = EnrolDevice.from_json(json.loads(from_file.read_text()))
        except FileNotFoundError:
            raise OperatorError(f"{from_file} not found; `faultproof device provision --out DIR` writes "
                                "DIR/<name>.enrol.json") from None
        except (ValueError, FaultproofError) as e:
            raise OperatorError(f"{from_file} is not an enrolment file from `device provision`: {e}") from None
        _sign_and_submit(ctx, msg, device_id=msg.device_id.hex())
        return
    if device_id is None or firmware_hash is None:
        raise click.UsageError("give DEVICE_ID and --firmware-hash, or --from FILE")
    did = hex32(device_id, "device id")
    anchor_bytes = hex32(anchor, "anchor") if anchor else chain_to_bytes(chain_anchor(did, epoch))
    _sign_and_submit(ctx, EnrolDevice(device_id=did, epoch=epoch, anchor=anchor_bytes,
                                      firmware_hash=hex32(firmware_hash, "firmware hash")))


@admin.command("revoke-device")
@click.argument("device_id")
@click.pass_context
def revoke_device(ctx: click.Context, device_id: str) -> None:
    """Revoke a device (from now on; windows that ended before stay claimable)."""
    _sign_and_submit(ctx, RevokeDevice(device_id=hex32(device_id, "device id")))


@admin.command("transfer-device")
@click.argument("device_id")
@click.option("--to", "to_agent", required=True, help="The receiving agent's id (64 hex).")
@click.pass_context
def transfer_device(ctx: click.Context, device_id: str, to_agent: str) -> None:
    """Hand a device to another agent (DESIGN §15 H9): the previous agent's anchors and claims
    for it are refused from this entry on."""
    _sign_and_submit(ctx, TransferDevice(device_id=hex32(device_id, "device id"),
                                         to_agent=hex32(to_agent, "agent id")))


@admin.command("bind-transport-key")
@click.option("--principal-key", required=True,
              help="The oracle's or agent's signing key: pkcs11:TOKEN/LABEL or a key file (it endorses).")
@click.option("--transport-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The libp2p key file the daemon gossips under (only its public key is sent).")
@click.pass_context
def bind_transport_key(ctx: click.Context, principal_key: str, transport_key_file: Path) -> None:
    """Bind a token-keyed oracle's or agent's libp2p transport key on the ledger (DESIGN §15 H8)."""
    try:
        principal = load_signer(principal_key)
        transport = Identity.load(transport_key_file).public_key
    except (KeyFileError, SignerKeyError) as e:
        raise OperatorError(str(e)) from None
    if principal.public.key_type is not KeyType.ED25519:
        raise OperatorError("oracle and agent keys are Ed25519 keys")
    state = _run(lambda c: c.state(), ctx.obj["url"])
    msg = transport_binding_message(bytes.fromhex(state["ledger_id"]), principal.public_key, transport)
    _sign_and_submit(ctx, BindTransportKey(principal=principal.public_key, transport_key=transport,
                                           endorsement=principal.sign(domain_tag(BindTransportKey.NAME), msg)))


@admin.command("enrol-gateway-key")
@click.argument("agent_id")
@click.option("--ak", "ak_hex", required=True, help="The gateway TPM's attestation key: uncompressed P-256 point (hex).")
@click.pass_context
def enrol_gateway_key(ctx: click.Context, agent_id: str, ak_hex: str) -> None:
    """Pin a gateway's TPM attestation key so the ledger appraises its quotes (DESIGN §15 H10)."""
    try:
        ak = bytes.fromhex(ak_hex)
    except ValueError:
        raise OperatorError("--ak must be hex (65 bytes: 04 || X || Y)") from None
    if len(ak) != 65:
        raise OperatorError("--ak must be 65 bytes: an uncompressed P-256 point (04 || X || Y)")
    _sign_and_submit(ctx, EnrolGatewayKey(agent_id=hex32(agent_id, "agent id"), ak_point=ak))


@admin.command("enrol-agent")
@click.argument("agent_id")
@click.pass_context
def enrol_agent(ctx: click.Context, agent_id: str) -> None:
    """Enrol a gateway agent."""
    _sign_and_submit(ctx, EnrolAgent(agent_id=hex32(agent_id, "agent id")))


@admin.command("revoke-agent")
@click.argument("agent_id")
@click.pass_context
def revoke_agent(ctx: click.Context, agent_id: str) -> None:
    """Revoke a gateway agent."""
    _sign_and_submit(ctx, RevokeAgent(agent_id=hex32(agent_id, "agent id")))


@admin.command("deposit")
@click.argument("amount", type=click.IntRange(min=1))
@click.pass_context
def deposit(ctx: click.Context, amount: int) -> None:
    """Deposit AMOUNT (smallest unit) as free capital."""
    _sign_and_submit(ctx, Deposit(amount=amount))


@admin.command("withdraw")
@click.argument("amount", type=click.IntRange(min=1))
@click.pass_context
def withdraw(ctx: click.Context, amount: int) -> None:
    """Withdraw AMOUNT of free capital."""
    _sign_and_submit(ctx, Withdraw(amount=amount))


def _policy_file(command: _F) -> _F:
    """A policy TOML FILE (see configs/policies/) and the options that override its ids."""
    for decorate in reversed((
        click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
        click.option("--device-id", default=None, help="Override the file's device_id."),
        click.option("--beneficiary", default=None, help="Override the file's beneficiary."),
        click.option("--circuit-id", default=None, help="Override the file's circuit_id."),
    )):
        command = decorate(command)
    return command


def _policy_terms(file: Path, device_id: str | None, beneficiary: str | None, circuit_id: str | None) -> IssuePolicy:
    overrides = {k: hex32(v, k) for k, v in (("device_id", device_id), ("beneficiary", beneficiary),
                                              ("circuit_id", circuit_id)) if v}
    try:
        return load_policy(file, overrides, now_ms=wall_clock_ms())
    except PolicyFileError as e:
        raise OperatorError(str(e)) from None


@admin.command("issue-policy")
@_policy_file
@click.pass_context
def issue_policy(ctx: click.Context, file: Path, device_id: str | None, beneficiary: str | None,
                 circuit_id: str | None) -> None:
    """Issue the policy described by a TOML FILE (see configs/policies/)."""
    _sign_and_submit(ctx, _policy_terms(file, device_id, beneficiary, circuit_id))


@admin.command("rotate-oracles")
@click.option("--member", "members", multiple=True, required=True, help="An oracle id (hex); repeat.")
@click.option("--threshold", type=int, default=0, help="k (default ⌊2n/3⌋+1).")
@click.pass_context
def rotate_oracles(ctx: click.Context, members: tuple[str, ...], threshold: int) -> None:
    """Replace the oracle set (a new epoch; the old one is honoured for the grace period)."""
    ids = tuple(hex32(m, "member") for m in members)
    _sign_and_submit(ctx, RotateOracles(members=ids, threshold=threshold or default_threshold(len(ids))))


@admin.command("rotate-admin")
@click.option("--new-admin", default=None, help="The new admin public key (hex).")
@click.option("--new-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="...or the new admin key file.")
@click.pass_context
def rotate_admin(ctx: click.Context, new_admin: str | None, new_key: Path | None) -> None:
    """Hand the admin role to another key."""
    if (new_admin is None) == (new_key is None):
        raise click.UsageError("give exactly one of --new-admin or --new-key")
    if new_key is not None:
        try:
            key = Identity.load(new_key).public_key
        except KeyFileError as e:
            raise OperatorError(str(e)) from None
    else:
        key = hex32(new_admin or "", "new admin")
    _sign_and_submit(ctx, RotateAdmin(new_admin=key))


@admin.command("expire")
@click.argument("policy_id")
@click.pass_context
def expire(ctx: click.Context, policy_id: str) -> None:
    """Close an expired policy and release its unused lock (anyone may; no key needed)."""
    pid = hex32(policy_id, "policy id")
    result = _run(lambda c: c.submit(ExpirePolicy(policy_id=pid)), ctx.obj["url"])
    click.echo(json.dumps(_result_json(result)))


@admin.command("policies")
@click.option("--device-id", default=None, help="Only this device's policies.")
@json_option
@click.pass_context
def policies(ctx: click.Context, device_id: str | None, as_json: bool) -> None:
    """List policies with their status, lock and payouts."""
    did = hex32(device_id, "device id") if device_id else None
    rows = _run(lambda c: c.policies(did), ctx.obj["url"])
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="policies")
    for col in ("policy", "device", "status", "locked", "paid", "payouts", "term (ms)"):
        table.add_column(col)
    for p in rows:
        t = p["terms"]
        table.add_row(p["policy_id"][:16], t["device_id"][:16], p["status"], f"{p['locked']:,}",
                      f"{p['paid_total']:,}", str(len(p["payouts"])), f"{t['start_ms']}..{t['end_ms']}")
    Console().print(table)


@admin.command("nonce")
@click.pass_context
def nonce(ctx: click.Context) -> None:
    """Show the last and the next admin nonce."""
    state = _run(lambda c: c.state(), ctx.obj["url"])
    click.echo(json.dumps({"admin": state["admin"], "admin_nonce": state["admin_nonce"],
                           "next_admin_nonce": state["next_admin_nonce"]}))


# --------------------------------------------------------------------------- economic security (DESIGN §14)


@admin.command("econ-params")
@click.option("--min-oracle-bond", type=click.IntRange(min=0), required=True)
@click.option("--max-staging-cost", type=click.IntRange(min=0), required=True)
@click.option("--reporter-share-bps", type=click.IntRange(0, 10_000), required=True,
              help="Share of a slashed bond paid to its reporter, in 1/10000.")
@click.option("--unlock-delay-ms", type=click.IntRange(min=1), required=True,
              help="How long after an unbond request a bond is paid back (longer than any claim window).")
@click.pass_context
def econ_params(ctx: click.Context, min_oracle_bond: int, max_staging_cost: int, reporter_share_bps: int,
                unlock_delay_ms: int) -> None:
    """Set the economic parameters (switches the economic rules on; every oracle must be bonded)."""
    _sign_and_submit(ctx, EconParams(min_oracle_bond=min_oracle_bond, max_staging_cost=max_staging_cost,
                                     reporter_share_bps=reporter_share_bps, unlock_delay_ms=unlock_delay_ms))


def _holder(oracle: str | None, device: str | None) -> tuple[BondHolder, bytes]:
    if (oracle is None) == (device is None):
        raise click.UsageError("name exactly one of --oracle ID or --device ID")
    if oracle is not None:
        return BondHolder.ORACLE, hex32(oracle, "oracle id")
    assert device is not None
    return BondHolder.DEVICE, hex32(device, "device id")


@admin.command("bond")
@click.option("--oracle", default=None, help="Bond for this oracle id (hex).")
@click.option("--device", default=None, help="Bond for this device id (hex).")
@click.argument("amount", type=click.IntRange(min=1))
@click.pass_context
def bond(ctx: click.Context, oracle: str | None, device: str | None, amount: int) -> None:
    """Post AMOUNT as the bond of an oracle or an enrolled device."""
    kind, holder = _holder(oracle, device)
    _sign_and_submit(ctx, PostBond(holder_kind=kind, holder_id=holder, amount=amount))


@admin.command("unbond")
@click.option("--oracle", default=None, help="The oracle id (hex).")
@click.option("--device", default=None, help="The device id (hex).")
@click.option("--release", is_flag=True, help="Pay the bond back (after the unlock delay); default: request it.")
@click.pass_context
def unbond(ctx: click.Context, oracle: str | None, device: str | None, release: bool) -> None:
    """Request a bond back (starts the unlock delay), or --release it once the delay has passed."""
    kind, holder = _holder(oracle, device)
    _sign_and_submit(ctx, Unbond(holder_kind=kind, holder_id=holder,
                                 step=UnbondStep.RELEASE if release else UnbondStep.REQUEST))


@admin.command("issue-econ-policy")
@_policy_file
@click.option("--staging-cost", type=click.IntRange(min=0), default=0, show_default=True,
              help="What staging the condition on one device costs (capped by the network).")
@click.option("--group", "group", multiple=True, help="A device of a corroborated policy (hex); repeat.")
@click.option("--m", "m", type=click.IntRange(min=1), default=1, show_default=True,
              help="Proofs a corroborated claim needs.")
@click.option("--tolerance-ms", type=click.IntRange(min=0), default=0, show_default=True,
              help="How far corroborating windows may disagree in time.")
@click.pass_context
def issue_econ_policy(ctx: click.Context, file: Path, device_id: str | None, beneficiary: str | None,
                      circuit_id: str | None, staging_cost: int, group: tuple[str, ...], m: int,
                      tolerance_ms: int) -> None:
    """Issue a policy with its economic terms (single-device, or corroborated with --group and --m)."""
    terms = _policy_terms(file, device_id, beneficiary, circuit_id)
    _sign_and_submit(ctx, EconPolicy(terms=terms, staging_cost=staging_cost,
                                     group=tuple(hex32(g, "group device") for g in group), min_proofs=m,
                                     overlap_tolerance_ms=tolerance_ms))



# --------------------------------------------------------------------------- hardware (DESIGN §15)


_COMPONENTS = {"bootloader": 1, "firmware": 2, "config": 3, "gateway-pcrs": 4}


@admin.command("set-measurement")
@click.argument("component", type=click.Choice(sorted(_COMPONENTS)))
@click.option("--digest", default=None, help="SHA-256 of the image (hex).")
@click.option("--file", "image", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="...or the image file itself.")
@click.option("--deny", is_flag=True, help="Take it off the allowlist instead.")
@click.pass_context
def set_measurement(ctx: click.Context, component: str, digest: str | None, image: Path | None, deny: bool) -> None:
    """Allow (or deny) a known-good measurement of a boot stage."""
    import hashlib

    from faultproof.messages import SetMeasurement

    if (digest is None) == (image is None):
        raise click.UsageError("give exactly one of --digest or --file")
    d = hashlib.sha256(image.read_bytes()).digest() if image is not None else hex32(digest or "", "digest")
    _sign_and_submit(ctx, SetMeasurement(component=_COMPONENTS[component], digest=d, allowed=0 if deny else 1))


@admin.command("set-lockdown")
@click.option("--breaker-window-ms", type=int, default=0, show_default=True)
@click.option("--breaker-share-bps", type=int, default=0, show_default=True, help="0 turns the breaker off.")
@click.option("--attestation-max-age-ms", type=int, default=0, show_default=True,
              help="0: payouts need no device attestation.")
@click.pass_context
def set_lockdown(ctx: click.Context, breaker_window_ms: int, breaker_share_bps: int, attestation_max_age_ms: int) -> None:
    """The pool circuit breaker and the attestation requirement for payouts."""
    from faultproof.messages import SetLockdown

    _sign_and_submit(ctx, SetLockdown(breaker_window_ms=breaker_window_ms, breaker_share_bps=breaker_share_bps,
                                      attestation_max_age_ms=attestation_max_age_ms))


@admin.command("resume-payouts")
@click.option("--note", default="", help="Why (recorded on the ledger).")
@click.pass_context
def resume_payouts(ctx: click.Context, note: str) -> None:
    """Resume payouts after the circuit breaker tripped."""
    from faultproof.messages import Lift, LiftTarget

    _sign_and_submit(ctx, Lift(target=int(LiftTarget.PAYOUTS), device_id=bytes(32), note=note.encode()[:256]))


@admin.command("reinstate-device")
@click.argument("device_id")
@click.option("--note", default="", help="Why (recorded on the ledger).")
@click.pass_context
def reinstate_device(ctx: click.Context, device_id: str, note: str) -> None:
    """Lift the oracles' suspension of a device (windows already refused stay refused)."""
    from faultproof.messages import Lift, LiftTarget

    _sign_and_submit(ctx, Lift(target=int(LiftTarget.SUSPENSION), device_id=hex32(device_id, "device id"),
                               note=note.encode()[:256]))


@admin.command("enrol-device-key")
@click.option("--key-type", type=click.Choice(["ed25519", "p256"]), required=True)
@click.option("--public-key", required=True, help="Ed25519: 32 bytes; P-256: SEC1 point, compressed or not (hex).")
@click.option("--epoch", type=int, default=0, show_default=True)
@click.option("--firmware-hash", default="00" * 32, help="SHA-256 of the firmware image (hex).")
@click.pass_context
def enrol_device_key(ctx: click.Context, key_type: str, public_key: str, epoch: int, firmware_hash: str) -> None:
    """Enrol a device by its public key and key type (its device_id is derived from the key)."""
    from faultproof.messages import EnrolDeviceKey
    from faultproof.signing import KeyType, compress_p256, key_id

    try:
        raw = bytes.fromhex(public_key)
        kt = KeyType.P256 if key_type == "p256" else KeyType.ED25519
        data = compress_p256(raw) if kt is KeyType.P256 else raw
    except (ValueError, FaultproofError):
        raise click.BadParameter(f"--public-key is not a {key_type} public key") from None
    did = key_id(kt, data)
    enrol = EnrolDevice(device_id=did, epoch=epoch, anchor=chain_to_bytes(chain_anchor(did, epoch)),
                        firmware_hash=hex32(firmware_hash, "firmware hash"))
    _sign_and_submit(ctx, EnrolDeviceKey(enrol=enrol, key_type=int(kt), public_key=data))
