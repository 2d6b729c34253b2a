// SPDX-License-Identifier: UNLICENSED
pragma solidity 0.8.37;

// Economic security on the chain (DESIGN §14): the rules of ledger/economics.py and the economic
// block of ledger/state.py, for InsurancePool.sol. An external library (its own deployment, called
// by DELEGATECALL on the pool's storage): the pool is close to the 24 KB code limit (EIP-170), and
// none of this runs on the payout path, so the extra call costs nothing where gas matters.
//
// What it owns: the economic state inside the pool's storage (`Store`): the parameters, bonds per
// (kind, holder), slashed oracles, reporters' rewards, the oracle sets' member ids (for the
// soundness rule and EC1), and a corroborated policy's group. What it must never do: move tokens
// (the pool does that, after these effects), or decide a rule differently from ledger/state.py:
// the checks run in its order and revert with the same reason codes (custom errors named after
// faultproof/errors.py's reasons). Events are emitted here, on the pool's address (DELEGATECALL);
// ledger/evm/pool.py folds this library's events into the pool's ABI.
//
// Bounded work: loops run over an oracle set (<= 64) and a policy's group (<= 16) only.

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

// Refusals: custom errors named after the shared reason codes (faultproof/errors.py: the error
// `QcStaleEpoch` is Reason.QC_STALE_EPOCH), declared once for the pool and this library, which
// revert with many of the same.
error WrongLedger();
error NotAdmin();
error InvalidParameters();
error InvalidOracleSet();
error InsufficientFreeCapital();
error DevelopmentCircuitOnProduction();
error AlreadyExists();
error NotFound();
error ActivePolicyExists();
error ExpiryTooEarly();
error InvalidStateTransition();
error QcInsufficientSignatures();
error QcDuplicateSigner();
error QcNonMember();
error QcBadSignature();
error QcStaleEpoch();
error PayoutMismatch();
error ClaimConflict();
error PolicyNotActive();
error OutsidePolicyTerm();
error DeviceRevoked();
error WindowOverlap();
error PeriodLimit();
error CoverageExhausted();
error ClaimWindowClosed();
error EndTsInFuture();
error BadProof();
error WrongLength();
error BadHint();
error EvidenceInvalid();
error EvidenceDuplicate();
error EvidenceStale();
error InsufficientBond();
error BondInUse();
error BondLocked();
error SlashedMember();
error EconomicallyUnsound();
error CorroborationTooFew();
error CorroborationSameAgent();
error CorroborationNoOverlap();

/// What oracles sign for a payout (EIP-712; ledger/evm/typed.py PAYOUT_FIELDS): the §3 body plus
/// the window frames' chain values. File-level so the pool and this library share it.
struct PayoutBody {
    bytes32 ledgerId;
    uint32 oracleSetEpoch;
    bytes32 claimId;
    bytes32 policyId;
    bytes32 deviceId;
    uint32 epoch;
    uint32 startSeq;
    uint32 endSeq;
    uint64 startTs;
    uint64 endTs;
    bytes32 circuitId;
    bytes32 beneficiary;
    uint64 amount;
    uint256 cStart; // chain value of the window's start frame (public signal c_start)
    uint256 cEnd; // chain value of the window's end frame (public signal c_end)
}

/// Oracle-certified evidence that a device signed two different frames for one (device, epoch,
/// seq) (DESIGN §14 on the chain): the EVM cannot check a device's Ed25519 (or, cheaply, P-256)
/// frame signature, so k members of the oracle set check both frames and sign this EIP-712 body,
/// as they sign a payout. `reporter` (the FrameEquivocation's, rewarded with `reporterShareBps` of
/// the bond) is signed too: a copy of the certificate naming another reporter does not recover.
struct DeviceSlash {
    uint32 oracleSetEpoch;
    bytes32 deviceId;
    uint32 epoch;
    uint32 seq;
    bytes32 firstFrame; // SHA-256 of each frame's encoding (ledger.evm.typed.frame_hash)
    bytes32 secondFrame;
    uint64 maxTs; // the later of the two frames' ts_ms
    bytes32 reporter; // who is rewarded: the one the k members certified
}

/// A device in the pool's registry (the pool's storage; file-level so the library can take it).
struct Device {
    uint32 epoch;
    uint64 revokedMs;
    bool exists;
    bool revoked;
    bool slashed; // proven double-signer (§14): revoked, and none of its unpaid claims is paid
}

struct OracleSet {
    uint64 sinceMs;
    uint8 threshold;
    uint8 size;
}

/// The current oracle set's epoch, threshold and start, in one slot (read by every payout).
struct CurrentSet {
    uint32 epoch;
    uint8 threshold;
    uint64 sinceMs;
}

// The pool's own records (its storage; file-level so the library can take them by reference).
struct Terms {
    bytes32 deviceId;
    bytes32 beneficiary; // 12 zero bytes then the payee's address
    bytes32 circuitId;
    uint8 kind;
    uint32 threshold;
    uint32 count;
    uint32 lo;
    uint32 hi;
    uint48 gapMs; // < 2^48 (faultproof.zk.params), so the trigger and startMs share a slot
    uint64 startMs;
    uint64 endMs;
    uint64 periodMs;
    uint64 claimWindowMs;
    uint64 coverage;
    uint64 amount;
    uint64 premium;
}


struct Policy {
    Terms terms;
    // What a payout must match, in one slot: keccak(deviceId, circuitId, beneficiary, amount).
    bytes32 matchHash;
    // One storage slot, written once per payout:
    uint64 locked; // coverage left
    uint64 paidTotal;
    uint32 windows; // paid windows so far
    bytes4 headTag; // tag of the paid claim with the LARGEST window start; 0 = none
    bool exists;
    bool closed;
}


struct Circuit {
    address verifier;
    uint32 n;
    bool production;
    bool exists;
    bytes32 transcriptHash;
}


struct Agent {
    uint64 enrolledMs;
    uint64 revokedMs;
    bool exists;
    bool revoked;
}


/// A paid claim and its window, one storage slot. The paid windows of a policy form a list
/// sorted by start, latest first (the usual new incident becomes the head and writes no
/// other window), linked by 32-bit tags of claim ids (tag = low 32 bits | 1, never 0).
/// `bodyTag` tells a replay of the same body (epoch aside) from another body: a tag collision
/// could only turn a CLAIM_CONFLICT into a no-op that pays nothing, so 32 bits are enough.
struct PaidClaim {
    bytes4 bodyTag;
    uint64 paid;
    uint48 startTs;
    uint48 endTs;
    bytes4 policyTag;
    bytes4 nextTag;
}


/// The books in one slot (every amount stays below MAX_POOL = 2^62).
struct Books {
    uint64 free;
    uint64 premiums;
    uint64 paid;
    uint64 locked;
}

/// One device's proven window in a corroborated claim (CorroboratingWindow + the window frames'
/// chain values, which the contract needs to verify the window's proof).
struct GroupWindow {
    bytes32 deviceId;
    bytes32 agentId;
    uint32 epoch;
    uint32 startSeq;
    uint32 endSeq;
    uint64 startTs;
    uint64 endTs;
    uint256 cStart;
    uint256 cEnd;
}

/// What k oracles sign (EIP-712) for a corroborated policy: m or more windows, paid once.
struct GroupPayoutBody {
    bytes32 ledgerId;
    uint32 oracleSetEpoch;
    bytes32 claimId;
    bytes32 policyId;
    GroupWindow[] windows;
    bytes32 circuitId;
    bytes32 beneficiary;
    uint64 amount;
}

/// `groupPayout`'s argument, ABI-encoded as one `bytes` (the pool only forwards it: code size).
struct GroupQc {
    GroupPayoutBody body;
    address[] signers;
    bytes32[] rs;
    bytes32[] vss;
    uint256[8][] proofs; // one per window, in the body's order
    bytes32 laterClaim; // the window-list neighbours of the group's span (as for `payout`)
    bytes32 earlierClaim;
}

/// The pool's events that this library emits too (on the pool's address: DELEGATECALL), declared
/// once at file level so both emit the same event: a slashed device's revocation reads like the
/// admin's, and a group payout is a Paid like any.
event DeviceRevocation(bytes32 indexed deviceId, uint64 atMs);
event Paid(
    bytes32 indexed claimId,
    bytes32 indexed policyId,
    address indexed payee,
    uint256 amount,
    uint32 oracleSetEpoch,
    uint64 startTs,
    uint64 endTs,
    uint64 atMs
);

/// The pool's immutables a group payout needs.
struct Env {
    bytes32 ledgerId;
    bytes32 domainSeparator;
    uint64 graceMs;
    uint64 maxSkewMs;
}

/// A verifier exported by snarkjs from a registered circuit's verification key (10 signals): the
/// pool's payout and this library's group payout call the same one.
interface IGroth16Verifier {
    function verifyProof(
        uint256[2] calldata pA,
        uint256[2][2] calldata pB,
        uint256[2] calldata pC,
        uint256[10] calldata pubSignals
    ) external view returns (bool);
}

library PoolEcon {
    bytes32 internal constant GROUP_WINDOW_TYPEHASH = keccak256(
        "GroupWindow(bytes32 deviceId,bytes32 agentId,uint32 epoch,uint32 startSeq,uint32 endSeq,uint64 startTs,"
        "uint64 endTs,uint256 cStart,uint256 cEnd)"
    );
    bytes32 internal constant GROUP_PAYOUT_TYPEHASH = keccak256(
        "GroupPayoutBody(bytes32 ledgerId,uint32 oracleSetEpoch,bytes32 claimId,bytes32 policyId,GroupWindow[] windows,"
        "bytes32 circuitId,bytes32 beneficiary,uint64 amount)"
        "GroupWindow(bytes32 deviceId,bytes32 agentId,uint32 epoch,uint32 startSeq,uint32 endSeq,uint64 startTs,"
        "uint64 endTs,uint256 cStart,uint256 cEnd)"
    );

    bytes32 internal constant PAYOUT_TYPEHASH = keccak256(
        "PayoutBody(bytes32 ledgerId,uint32 oracleSetEpoch,bytes32 claimId,bytes32 policyId,bytes32 deviceId,"
        "uint32 epoch,uint32 startSeq,uint32 endSeq,uint64 startTs,uint64 endTs,bytes32 circuitId,"
        "bytes32 beneficiary,uint64 amount,uint256 cStart,uint256 cEnd)"
    );
    bytes32 internal constant DEVICE_SLASH_TYPEHASH = keccak256(
        "DeviceSlash(uint32 oracleSetEpoch,bytes32 deviceId,uint32 epoch,uint32 seq,bytes32 firstFrame,"
        "bytes32 secondFrame,uint64 maxTs,bytes32 reporter)"
    );

    uint8 internal constant ORACLE = 1; // faultproof.messages.BondHolder
    uint8 internal constant DEVICE = 2;
    uint8 internal constant VOTE_EQUIVOCATION = 1; // evidence kinds in `Slashed`
    uint8 internal constant CONTRADICTING_APPROVE = 2;
    uint8 internal constant FRAME_EQUIVOCATION = 3;
    uint256 internal constant BPS = 10_000;

    struct Params {
        uint64 minOracleBond;
        uint64 maxStagingCost;
        uint32 reporterShareBps;
        uint64 unlockDelayMs;
        bool enabled; // EC1: once set, the rules always apply
    }

    struct Bond {
        uint64 amount;
        uint64 requestedMs; // when the unbond was requested (if unlocking)
        bool unlocking; // an unlocking bond counts as 0 and can still be slashed
    }

    /// A policy's economic terms (EconPolicy without its IssuePolicy) and what a body must match.
    struct EconTerms {
        bytes32 matchHash; // keccak(deviceId, circuitId, beneficiary, amount) of its IssuePolicy
        uint64 stagingCost;
        uint8 minProofs;
        uint48 overlapToleranceMs;
    }

    struct Store {
        Params params;
        mapping(uint8 kind => mapping(bytes32 holder => Bond)) bonds;
        mapping(bytes32 oracleId => bool) slashedOracle;
        mapping(bytes32 reporter => uint256) rewards;
        uint256 bondTotal;
        uint256 rewardsTotal;
        mapping(uint32 epoch => bytes32[]) members; // Ed25519 ids, in member-index order
        mapping(uint32 epoch => mapping(address signer => bytes32 oracleId)) memberOf;
        mapping(bytes32 policyId => EconTerms) policies;
        mapping(bytes32 policyId => bytes32[]) groups;
    }

    event EconParamsSet(uint64 minOracleBond, uint64 maxStagingCost, uint32 reporterShareBps, uint64 unlockDelayMs);
    event BondPosted(uint8 indexed kind, bytes32 indexed holderId, uint256 amount, uint256 bond);
    event UnbondRequested(uint8 indexed kind, bytes32 indexed holderId, uint64 atMs);
    event BondReleased(uint8 indexed kind, bytes32 indexed holderId, address to, uint256 amount, uint64 atMs);
    event Slashed(
        uint8 indexed kind,
        bytes32 indexed offender,
        bytes32 indexed reporter,
        uint8 evidence,
        uint256 amount,
        uint256 toReporter,
        uint256 toPool,
        uint64 atMs
    );
    event GroupPaid(bytes32 indexed claimId, bytes32 indexed policyId, GroupWindow[] windows);
    event EconPolicyTerms(bytes32 indexed policyId, uint64 stagingCost, bytes32[] group, uint8 minProofs,
                          uint48 overlapToleranceMs);

    function _nowMs() private view returns (uint64) {
        return uint64(block.timestamp * 1000);
    }

    function active(Store storage s, uint8 kind, bytes32 holder) internal view returns (uint256) {
        Bond storage b = s.bonds[kind][holder];
        return b.unlocking ? 0 : b.amount;
    }

    // ------------------------------------------------------------------ EC1, EC2

    /// set_econ_params: validate, then every current member holds the new minimum.
    function setParams(Store storage s, Params calldata p, uint32 epoch) external {
        if (p.reporterShareBps > BPS || p.unlockDelayMs == 0 || p.unlockDelayMs >= 1 << 48) revert InvalidParameters();
        bytes32[] storage ms = s.members[epoch];
        for (uint256 i = 0; i < ms.length; ++i) {
            if (active(s, ORACLE, ms[i]) < p.minOracleBond) revert InsufficientBond();
        }
        s.params = Params(p.minOracleBond, p.maxStagingCost, p.reporterShareBps, p.unlockDelayMs, true);
        emit EconParamsSet(p.minOracleBond, p.maxStagingCost, p.reporterShareBps, p.unlockDelayMs);
    }

    /// EC2 at rotation: no slashed member, and (rules on) every member bonded with the minimum.
    function checkMembers(Store storage s, uint32 epoch) external view {
        bytes32[] storage ms = s.members[epoch];
        Params memory p = s.params;
        for (uint256 i = 0; i < ms.length; ++i) {
            if (s.slashedOracle[ms[i]]) revert SlashedMember();
            if (p.enabled && active(s, ORACLE, ms[i]) < p.minOracleBond) revert InsufficientBond();
        }
    }

    // ------------------------------------------------------------------ EC2, EC3 bonds

    /// post_bond (ledger/state.py `_post_bond`, same order), given the pool's total and the
    /// device's registry state; the pool pulls the tokens after.
    function postBond(Store storage s, mapping(bytes32 => Device) storage devices, uint8 kind, bytes32 holder,
                      uint64 amount, uint256 poolTotal) external {
        if (kind != ORACLE && kind != DEVICE) revert InvalidParameters();
        if (amount == 0 || poolTotal + amount >= 1 << 62) revert InvalidParameters();
        if (kind == DEVICE) {
            Device storage d = devices[holder];
            if (!d.exists) revert NotFound();
            if (d.revoked) revert DeviceRevoked();
        } else if (s.slashedOracle[holder]) {
            revert SlashedMember();
        }
        Bond storage b = s.bonds[kind][holder];
        if (b.unlocking) revert InvalidStateTransition();
        b.amount += amount;
        s.bondTotal += amount;
        emit BondPosted(kind, holder, amount, b.amount);
    }

    /// unbond (ledger/state.py `_unbond`): step 1 starts the delay, refused while the bond is in
    /// use (an oracle of the current set, a device with a policy not closed); step 2, at request + unlock delay or
    /// later, returns what the pool pays back to `to` (0 for step 1).
    function unbond(
        Store storage s,
        mapping(bytes32 => bool) storage currentMembers,
        mapping(bytes32 => bytes32) storage openPolicy,
        uint8 kind,
        bytes32 holder,
        uint8 step,
        address to
    ) external returns (uint64 amount) {
        uint64 now_ = _nowMs();
        bool inUse = kind == ORACLE ? currentMembers[holder] : openPolicy[holder] != bytes32(0);
        if (kind != ORACLE && kind != DEVICE) revert InvalidParameters();
        if (!s.params.enabled) revert InvalidStateTransition();
        Bond storage b = s.bonds[kind][holder];
        if (b.amount == 0) revert NotFound();
        if (step == 1) {
            if (b.unlocking) revert InvalidStateTransition();
            if (inUse) revert BondInUse();
            b.unlocking = true;
            b.requestedMs = now_;
            emit UnbondRequested(kind, holder, now_);
            return 0;
        }
        if (step != 2) revert InvalidParameters();
        if (!b.unlocking) revert BondLocked();
        if (uint256(now_) < uint256(b.requestedMs) + s.params.unlockDelayMs) revert BondLocked();
        amount = b.amount;
        delete s.bonds[kind][holder];
        s.bondTotal -= amount;
        emit BondReleased(kind, holder, to, amount, now_);
    }

    // ------------------------------------------------------------------ EC4, EC5 soundness

    /// Group validity of issue_econ_policy (ledger/state.py `_issue_econ_policy`, same order).
    function checkEconTerms(Store storage s, bytes32 deviceId, bytes32[] calldata group, uint8 m, uint48 tol)
        external
        view
    {
        if (!s.params.enabled) revert InvalidStateTransition();
        uint256 n = group.length;
        if (n != 0) {
            if (n < 2 || n > 16) revert InvalidParameters();
            bool found = false;
            for (uint256 i = 0; i < n; ++i) {
                for (uint256 j = i + 1; j < n; ++j) {
                    if (group[i] == group[j]) revert InvalidParameters();
                }
                if (group[i] == deviceId) found = true;
            }
            if (!found || m < 2 || m > n) revert InvalidParameters();
        } else if (m != 1 || tol != 0) {
            revert InvalidParameters();
        }
    }

    /// EC4/EC5 at issue (ledger/state.py `_econ_check_soundness`): every covered device bonded,
    /// the claim window shorter than the unlock delay, and the payout per period below the
    /// cheapest attack: min(m smallest device bonds + m x min(staging, cap), k smallest oracle
    /// bonds). Devices here are enrolled and not revoked (checked before), so none is slashed.
    function checkSound(
        Store storage s,
        bytes32[] memory devices,
        uint256 m,
        uint64 declaredStaging,
        uint64 amount,
        uint64 claimWindowMs,
        uint32 epoch,
        uint256 k
    ) external view {
        Params memory p = s.params;
        if (!p.enabled) return;
        uint256[] memory dev = new uint256[](devices.length);
        for (uint256 i = 0; i < devices.length; ++i) {
            dev[i] = active(s, DEVICE, devices[i]);
            if (dev[i] == 0) revert InsufficientBond();
        }
        if (claimWindowMs >= p.unlockDelayMs) revert EconomicallyUnsound();
        bytes32[] storage ms = s.members[epoch];
        uint256[] memory orc = new uint256[](ms.length);
        for (uint256 i = 0; i < ms.length; ++i) {
            orc[i] = active(s, ORACLE, ms[i]);
        }
        uint256 staging = declaredStaging < p.maxStagingCost ? declaredStaging : p.maxStagingCost;
        uint256 cost = smallestSum(orc, k);
        if (m <= dev.length) {
            uint256 devicePath = smallestSum(dev, m) + m * staging;
            if (devicePath < cost) cost = devicePath;
        }
        if (amount >= cost) revert EconomicallyUnsound(); // break-even is refused
    }

    /// Sum of the `count` smallest values (count <= values.length): insertion sort, <= 64 items.
    function smallestSum(uint256[] memory v, uint256 count) internal pure returns (uint256 total) {
        for (uint256 i = 1; i < v.length; ++i) {
            uint256 x = v[i];
            uint256 j = i;
            while (j > 0 && v[j - 1] > x) {
                v[j] = v[j - 1];
                --j;
            }
            v[j] = x;
        }
        for (uint256 i = 0; i < count && i < v.length; ++i) {
            total += v[i];
        }
    }

    /// Record a policy's economic terms (and its group), after the pool wrote the policy; an event
    /// when they say more than a plain policy's (m = 1, no staging cost, no group).
    function recordPolicy(Store storage s, bytes32 policyId, bytes32 matchHash, uint64 stagingCost,
                          bytes32[] memory group, uint8 m, uint48 tol) external {
        s.policies[policyId] = EconTerms(matchHash, stagingCost, m, tol);
        if (group.length != 0) s.groups[policyId] = group;
        if (group.length != 0 || stagingCost != 0) emit EconPolicyTerms(policyId, stagingCost, group, m, tol);
    }

    // ------------------------------------------------------------------ S1..S3 slashing

    /// VoteEquivocation (two bodies) or ContradictingApprove (one body), ledger/state.py's order:
    /// the facts (one ledger, epoch and claim; different bodies / a body that is not its
    /// policy's), the signatures by `signer`, then S2 (`_vote_epoch_rejection`), then S3.
    /// Returns the pool's share of the slashed bond.
    function slashVotes(
        Store storage s,
        CurrentSet storage cur,
        PayoutBody[] calldata bodies,
        address signer,
        bytes32[] calldata rs,
        bytes32[] calldata vss,
        bytes32 reporter,
        bytes32 ledgerId,
        bytes32 domainSeparator
    ) external returns (uint64) {
        CurrentSet memory c = cur;
        uint64 now_ = _nowMs();
        if (!s.params.enabled) revert InvalidStateTransition();
        uint256 n = bodies.length;
        if (n == 0 || n > 2 || rs.length != n || vss.length != n) revert EvidenceInvalid();
        PayoutBody calldata a = bodies[0];
        uint8 evidence = CONTRADICTING_APPROVE;
        if (n == 2) {
            PayoutBody calldata b = bodies[1];
            if (a.ledgerId != b.ledgerId || a.oracleSetEpoch != b.oracleSetEpoch || a.claimId != b.claimId) {
                revert EvidenceInvalid(); // not one oracle's votes for one claim in one epoch
            }
            if (a.ledgerId != ledgerId) revert WrongLedger();
            if (keccak256(abi.encode(a)) == keccak256(abi.encode(b))) revert EvidenceInvalid(); // the same twice
            evidence = VOTE_EQUIVOCATION;
        } else {
            if (a.ledgerId != ledgerId) revert WrongLedger();
            bytes32 mh = s.policies[a.policyId].matchHash;
            if (mh == bytes32(0)) revert EvidenceInvalid(); // no policy of this ledger
            if (keccak256(abi.encode(a.deviceId, a.circuitId, a.beneficiary, a.amount)) == mh) {
                revert EvidenceInvalid(); // it agrees with the policy
            }
        }
        for (uint256 i = 0; i < n; ++i) {
            bytes32 digest = MessageHashUtils.toTypedDataHash(
                domainSeparator, keccak256(abi.encode(PAYOUT_TYPEHASH, bodies[i])));
            (address got, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, rs[i], vss[i]);
            if (err != ECDSA.RecoverError.NoError || got != signer || signer == address(0)) revert EvidenceInvalid();
        }
        uint32 epoch = a.oracleSetEpoch;
        bytes32 oracleId = s.memberOf[epoch][signer];
        if (oracleId != bytes32(0) && s.slashedOracle[oracleId]) revert EvidenceDuplicate();
        bool inWindow = epoch == c.epoch
            || (c.epoch > 0 && epoch == c.epoch - 1 && uint256(now_) <= uint256(c.sinceMs) + s.params.unlockDelayMs);
        if (!inWindow) revert EvidenceStale();
        if (oracleId == bytes32(0)) revert EvidenceInvalid(); // not a member of that set
        return _slash(s, ORACLE, oracleId, reporter, evidence, now_);
    }

    /// FrameEquivocation as a DeviceSlash certified by k members of the current (or grace-period
    /// previous) set; any fault of the certificate is EvidenceInvalid, like a forged frame
    /// signature on the ledger. Then the device's registry (NotFound), a second slash
    /// (EvidenceDuplicate) and age (EvidenceStale: now > maxTs + unlock delay). The pool revokes.
    function slashFrames(
        Store storage s,
        CurrentSet storage cur,
        mapping(uint32 => OracleSet) storage sets,
        mapping(bytes32 => Device) storage devices,
        DeviceSlash calldata e,
        address[] calldata signers,
        bytes32[] calldata rs,
        bytes32[] calldata vss,
        bytes32 domainSeparator,
        uint64 graceMs
    ) external returns (uint64 toPool) {
        CurrentSet memory c = cur;
        uint64 now_ = _nowMs();
        if (!s.params.enabled) revert InvalidStateTransition();
        if (e.firstFrame == e.secondFrame) revert EvidenceInvalid(); // the same frame twice
        uint256 k;
        if (e.oracleSetEpoch == c.epoch) {
            k = c.threshold;
        } else if (c.epoch > 0 && e.oracleSetEpoch == c.epoch - 1 && uint256(now_) <= uint256(c.sinceMs) + graceMs) {
            k = sets[e.oracleSetEpoch].threshold;
        } else {
            revert EvidenceInvalid();
        }
        uint256 n = signers.length;
        if (n < k || rs.length != n || vss.length != n || n > 64) revert EvidenceInvalid();
        bytes32 digest = MessageHashUtils.toTypedDataHash(domainSeparator, keccak256(abi.encode(DEVICE_SLASH_TYPEHASH, e)));
        address previous = address(0);
        for (uint256 i = 0; i < n; ++i) {
            address signer = signers[i];
            // distinct members: signers in strictly increasing address order
            if (signer <= previous || s.memberOf[e.oracleSetEpoch][signer] == bytes32(0)) revert EvidenceInvalid();
            previous = signer;
            (address got, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, rs[i], vss[i]);
            if (err != ECDSA.RecoverError.NoError || got != signer) revert EvidenceInvalid();
        }
        Device storage d = devices[e.deviceId];
        if (!d.exists) revert NotFound();
        if (d.slashed) revert EvidenceDuplicate();
        if (uint256(now_) > uint256(e.maxTs) + s.params.unlockDelayMs) revert EvidenceStale();
        toPool = _slash(s, DEVICE, e.deviceId, e.reporter, FRAME_EQUIVOCATION, now_);
        d.slashed = true;
        if (!d.revoked) {
            d.revoked = true;
            d.revokedMs = now_;
            emit DeviceRevocation(e.deviceId, now_);
        }
    }

    /// S3: the whole bond; `reporterShareBps` of it to the reporter's rewards, the rest (with the
    /// rounding) is returned for the pool's free capital. A slashed oracle never joins again.
    function _slash(Store storage s, uint8 kind, bytes32 offender, bytes32 reporter, uint8 evidence, uint64 now_)
        private
        returns (uint64 toPool)
    {
        uint64 amount = s.bonds[kind][offender].amount;
        uint64 toReporter = uint64(uint256(amount) * s.params.reporterShareBps / BPS);
        toPool = amount - toReporter;
        delete s.bonds[kind][offender];
        s.bondTotal -= amount;
        s.rewards[reporter] += toReporter;
        s.rewardsTotal += toReporter;
        if (kind == ORACLE) s.slashedOracle[offender] = true;
        emit Slashed(kind, offender, reporter, evidence, amount, toReporter, toPool, now_);
    }

    // ------------------------------------------------------------------ C1..C3 group payouts

    /// A corroborated policy's payout (ledger/state.py `_check_group_payout`, same order): Q1, Q2
    /// (idempotent by claim_id, epoch aside), Q3 (the pool's quorum rule over the EIP-712
    /// GroupPayoutBody), Q4 (group_payout_mismatch), C1..C3, P1..P8 on the group's span (earliest
    /// start, latest end] with every device's revocation, then every window's Groth16 proof
    /// (defence in depth, as for a payout). Pays once; returns what the pool transfers, last.
    function groupPayout(
        Store storage s,
        mapping(bytes32 => Policy) storage policies,
        mapping(bytes32 => PaidClaim) storage claims,
        mapping(bytes32 => Device) storage devices,
        mapping(bytes32 => Agent) storage agents,
        mapping(bytes32 => Circuit) storage circuits,
        mapping(bytes32 => mapping(uint32 => bytes32)) storage anchors,
        mapping(uint32 => mapping(address => uint8)) storage memberIndex,
        mapping(uint32 => OracleSet) storage sets,
        CurrentSet storage cur,
        Books storage books,
        bytes calldata args,
        Env calldata env
    ) external returns (address payee, uint64 pay, bool existing) {
        GroupQc memory q = abi.decode(args, (GroupQc));
        GroupPayoutBody memory body = q.body;
        if (body.windows.length > 16) revert WrongLength(); // MAX_GROUP: a bounded loop everywhere below
        uint64 now_ = _nowMs();
        if (body.ledgerId != env.ledgerId) revert WrongLedger();
        (bytes32 structHash, bytes4 bodyTag) = _groupHashes(body);
        {
            PaidClaim storage prior = claims[body.claimId];
            if (prior.bodyTag != bytes4(0)) {
                if (prior.bodyTag == bodyTag) return (address(0), prior.paid, true);
                revert ClaimConflict();
            }
        }
        _quorum(memberIndex, sets, cur, body.oracleSetEpoch,
                MessageHashUtils.toTypedDataHash(env.domainSeparator, structHash), q, now_, env.graceMs);
        Policy storage p = policies[body.policyId];
        if (!p.exists) revert NotFound();
        _groupMatches(s, p, circuits[body.circuitId].n, anchors, agents, body);
        EconTerms storage et = s.policies[body.policyId];
        (uint64 start, uint64 end) = _corroborate(body.windows, et.minProofs, et.overlapToleranceMs);
        _spanRules(p, claims, devices, body, start, end, now_, env.maxSkewMs, q.laterClaim, q.earlierClaim);
        _groupProofs(p.terms, circuits[body.circuitId].verifier, body.windows, q.proofs);

        pay = body.amount < p.locked ? body.amount : p.locked;
        p.locked -= pay;
        p.paidTotal += pay;
        p.windows += 1;
        bytes4 tag = _tag(body.claimId);
        if (q.laterClaim == bytes32(0)) p.headTag = tag;
        else claims[q.laterClaim].nextTag = tag;
        books.locked -= pay;
        books.paid += pay;
        claims[body.claimId] = PaidClaim(bodyTag, pay, uint48(start), uint48(end), _tag(body.policyId),
                                         q.earlierClaim == bytes32(0) ? bytes4(0) : _tag(q.earlierClaim));
        payee = address(uint160(uint256(body.beneficiary)));
        emit Paid(body.claimId, body.policyId, payee, pay, body.oracleSetEpoch, start, end, now_);
        emit GroupPaid(body.claimId, body.policyId, body.windows);
    }

    function _tag(bytes32 id) private pure returns (bytes4) {
        return bytes4(uint32(uint256(id)) | 1);
    }

    /// (EIP-712 struct hash, tag of the body with its epoch zeroed: a re-certification by a set
    /// rotated since is the same claim).
    function _groupHashes(GroupPayoutBody memory b) private pure returns (bytes32 structHash, bytes4 tag) {
        bytes32[] memory hs = new bytes32[](b.windows.length);
        for (uint256 i = 0; i < hs.length; ++i) {
            hs[i] = keccak256(abi.encode(GROUP_WINDOW_TYPEHASH, b.windows[i]));
        }
        bytes32 windows = keccak256(abi.encodePacked(hs));
        structHash = keccak256(abi.encode(GROUP_PAYOUT_TYPEHASH, b.ledgerId, b.oracleSetEpoch, b.claimId, b.policyId,
                                          windows, b.circuitId, b.beneficiary, b.amount));
        tag = _tag(keccak256(abi.encode(GROUP_PAYOUT_TYPEHASH, b.ledgerId, uint32(0), b.claimId, b.policyId, windows,
                                        b.circuitId, b.beneficiary, b.amount)));
    }

    /// Q3, as the pool's `_checkQuorum`: epoch, membership and duplicates, signatures, count.
    function _quorum(
        mapping(uint32 => mapping(address => uint8)) storage memberIndex,
        mapping(uint32 => OracleSet) storage sets,
        CurrentSet storage cur,
        uint32 epoch,
        bytes32 digest,
        GroupQc memory q,
        uint64 now_,
        uint64 graceMs
    ) private view {
        uint256 n = q.signers.length;
        if (n != q.rs.length || n != q.vss.length || n > 64) revert WrongLength();
        CurrentSet memory c = cur;
        uint8 threshold;
        if (epoch == c.epoch) {
            threshold = c.threshold;
        } else if (c.epoch > 0 && epoch == c.epoch - 1 && uint256(now_) <= uint256(c.sinceMs) + graceMs) {
            threshold = sets[epoch].threshold;
        } else {
            revert QcStaleEpoch();
        }
        uint256 bitmap = 0;
        for (uint256 i = 0; i < n; ++i) {
            uint8 index = memberIndex[epoch][q.signers[i]];
            if (index == 0) revert QcNonMember();
            uint256 bit = 1 << index;
            if (bitmap & bit != 0) revert QcDuplicateSigner();
            bitmap |= bit;
        }
        for (uint256 i = 0; i < n; ++i) {
            (address got, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, q.rs[i], q.vss[i]);
            if (err != ECDSA.RecoverError.NoError || got != q.signers[i]) revert QcBadSignature();
        }
        if (n < threshold) revert QcInsufficientSignatures();
    }

    /// Q4 of a group body (ledger/state.py `group_payout_mismatch`, same order).
    function _groupMatches(
        Store storage s,
        Policy storage p,
        uint32 n,
        mapping(bytes32 => mapping(uint32 => bytes32)) storage anchors,
        mapping(bytes32 => Agent) storage agents,
        GroupPayoutBody memory body
    ) private view {
        bytes32[] storage group = s.groups[body.policyId];
        Terms storage t = p.terms;
        if (group.length == 0) revert PayoutMismatch(); // not a corroborated policy
        if (body.circuitId != t.circuitId || body.beneficiary != t.beneficiary || body.amount != t.amount) {
            revert PayoutMismatch();
        }
        if (body.claimId != groupClaimId(body.policyId, body.windows)) revert PayoutMismatch();
        GroupWindow[] memory ws = body.windows;
        for (uint256 i = 1; i < ws.length; ++i) {
            if (ws[i].deviceId <= ws[i - 1].deviceId) revert PayoutMismatch(); // sorted, one per device
        }
        for (uint256 i = 0; i < ws.length; ++i) {
            GroupWindow memory w = ws[i];
            bool member = false;
            for (uint256 j = 0; j < group.length; ++j) {
                if (group[j] == w.deviceId) member = true;
            }
            if (!member) revert PayoutMismatch();
            if (w.endSeq < w.startSeq || w.endSeq - w.startSeq != n || w.startTs >= w.endTs) revert PayoutMismatch();
            if (anchors[w.deviceId][w.epoch] == bytes32(0)) revert PayoutMismatch();
            Agent storage a = agents[w.agentId];
            if (!a.exists || a.revoked) revert PayoutMismatch();
        }
    }

    /// faultproof.messages.group_claim_id: SHA-256("faultproof/group-claim-id/v1" || msgpack([policy,
    /// [[device, epoch, start_seq, end_seq], ...]])).
    function groupClaimId(bytes32 policyId, GroupWindow[] memory ws) public pure returns (bytes32) {
        uint256 n = ws.length;
        bytes memory enc = abi.encodePacked("faultproof/group-claim-id/v1", hex"92c420", policyId,
                                            n < 16 ? abi.encodePacked(uint8(0x90 + n)) : abi.encodePacked(hex"dc", uint16(n)));
        for (uint256 i = 0; i < n; ++i) {
            enc = abi.encodePacked(enc, hex"94c420", ws[i].deviceId, _mpUint(ws[i].epoch), _mpUint(ws[i].startSeq),
                                   _mpUint(ws[i].endSeq));
        }
        return sha256(enc);
    }

    function _mpUint(uint32 v) private pure returns (bytes memory) {
        if (v < 0x80) return abi.encodePacked(uint8(v));
        if (v <= 0xff) return abi.encodePacked(hex"cc", uint8(v));
        if (v <= 0xffff) return abi.encodePacked(hex"cd", uint16(v));
        return abi.encodePacked(hex"ce", v);
    }

    /// C1..C3 (ledger/economics.py `corroboration_rejection`): at least m windows, from distinct
    /// agents, overlapping within the tolerance. Returns the group's span.
    function _corroborate(GroupWindow[] memory ws, uint8 m, uint48 tol) private pure returns (uint64 start, uint64 end) {
        uint256 n = ws.length;
        if (n < m || n == 0) revert CorroborationTooFew();
        for (uint256 i = 0; i < n; ++i) {
            for (uint256 j = i + 1; j < n; ++j) {
                if (ws[i].agentId == ws[j].agentId) revert CorroborationSameAgent();
            }
        }
        uint64 latestStart = 0;
        start = type(uint64).max;
        uint64 earliestEnd = type(uint64).max;
        for (uint256 i = 0; i < n; ++i) {
            if (ws[i].startTs > latestStart) latestStart = ws[i].startTs;
            if (ws[i].startTs < start) start = ws[i].startTs;
            if (ws[i].endTs < earliestEnd) earliestEnd = ws[i].endTs;
            if (ws[i].endTs > end) end = ws[i].endTs;
        }
        if (uint256(latestStart) >= uint256(earliestEnd) + tol) revert CorroborationNoOverlap();
    }

    /// P1..P8 on the span, as the pool's `_checkRules` (P3 for the first window's device in its
    /// place, then for the others: the order ledger/state.py's per-window probes give).
    function _spanRules(
        Policy storage p,
        mapping(bytes32 => PaidClaim) storage claims,
        mapping(bytes32 => Device) storage devices,
        GroupPayoutBody memory body,
        uint64 start,
        uint64 end,
        uint64 now_,
        uint64 maxSkewMs,
        bytes32 laterClaim,
        bytes32 earlierClaim
    ) private view {
        Terms storage t = p.terms;
        if (p.closed || now_ < t.startMs || now_ > t.endMs + t.claimWindowMs) revert PolicyNotActive();
        if (start < t.startMs || end > t.endMs) revert OutsidePolicyTerm();
        _revoked(devices[body.windows[0].deviceId], end);
        bytes4 policyTag = _tag(body.policyId);
        PaidClaim memory later;
        bytes4 earlierTag = p.headTag;
        if (laterClaim != bytes32(0)) {
            later = claims[laterClaim];
            if (later.policyTag != policyTag || later.bodyTag == bytes4(0) || later.startTs < start) revert BadHint();
            earlierTag = later.nextTag;
        }
        PaidClaim memory earlier;
        if (earlierClaim != bytes32(0)) {
            earlier = claims[earlierClaim];
            if (earlierTag != _tag(earlierClaim) || earlier.policyTag != policyTag || earlier.startTs >= start) {
                revert BadHint();
            }
        } else if (earlierTag != bytes4(0)) {
            revert BadHint();
        }
        if ((earlierClaim != bytes32(0) && earlier.endTs > start) || (laterClaim != bytes32(0) && later.startTs < end)) {
            revert WindowOverlap();
        }
        uint256 period = (end - t.startMs) / t.periodMs;
        if ((earlierClaim != bytes32(0) && (earlier.endTs - t.startMs) / t.periodMs == period)
                || (laterClaim != bytes32(0) && (later.endTs - t.startMs) / t.periodMs == period)) {
            revert PeriodLimit();
        }
        if (p.locked == 0) revert CoverageExhausted();
        if (now_ > end + t.claimWindowMs) revert ClaimWindowClosed();
        if (end > now_ + maxSkewMs) revert EndTsInFuture();
        for (uint256 i = 1; i < body.windows.length; ++i) {
            _revoked(devices[body.windows[i].deviceId], end);
        }
    }

    function _revoked(Device storage d, uint64 end) private view {
        if (d.revoked && (d.revokedMs <= end || d.slashed)) revert DeviceRevoked();
    }

    /// Every window's Groth16 proof, public signals built from the policy and the window.
    function _groupProofs(Terms storage t, address verifier, GroupWindow[] memory ws, uint256[8][] memory proofs)
        private
        view
    {
        if (proofs.length != ws.length) revert WrongLength();
        for (uint256 i = 0; i < ws.length; ++i) {
            uint256[8] memory w = proofs[i];
            uint256[10] memory pub = [
                ws[i].cStart, ws[i].cEnd, uint256(ws[i].startTs), uint256(ws[i].endTs), uint256(t.kind),
                uint256(t.threshold), uint256(t.count), uint256(t.lo), uint256(t.hi), uint256(t.gapMs)
            ];
            if (!IGroth16Verifier(verifier).verifyProof([w[0], w[1]], [[w[2], w[3]], [w[4], w[5]]], [w[6], w[7]], pub)) {
                revert BadProof();
            }
        }
    }
}
