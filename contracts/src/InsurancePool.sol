// SPDX-License-Identifier: UNLICENSED
pragma solidity 0.8.37;

// The insurance pool on an EVM chain (DESIGN §6 and §13): the rules of ledger/state.py, with the
// chain ordering transactions instead of one operator's SQLite database.
//
// What it owns: the pool's ERC-20 balance and its books (free capital, premiums, a lock per
// policy, paid), the registry (circuits with their Groth16 verifier, devices, agents, oracle sets
// with epochs) and the payout rules. A payout needs BOTH a quorum certificate (k distinct members
// of the current, or grace-period previous, oracle set, each an ECDSA signature over the EIP-712
// PayoutBody; a signer bitmap refuses duplicates, as libocr does) AND a Groth16 proof of the
// policy's trigger, whose public signals are built here from the policy and the attested window.
//
// The economic rules of DESIGN §14 (bonds, unbonding, slashing evidence, soundness at issue) are
// in the linked library PoolEcon (contracts/src/PoolEcon.sol), on this contract's storage: the
// contract is near the 24 KB code limit and none of them runs on the payout path.
//
// Refusals are custom errors named after the shared reason codes (faultproof/errors.py: the
// error `QcStaleEpoch` is Reason.QC_STALE_EPOCH; declared once, in PoolEcon.sol, for the pool and
// its library), checked in the order ledger/state.py checks them, so a refused payout reads the
// same on both backends. A refused transaction reverts: the chain is unchanged.
//
// Rules of the code: checks-effects-interactions with a reentrancy guard on every entry point that
// moves tokens; no loop over user data except over a QC's signatures (at most MAX_ORACLES) and an
// oracle set at rotation (at most MAX_ORACLES); the paid windows of a policy are a list sorted by
// start whose insertion point the caller names (`hint`) and the contract checks in O(1); an event
// for every state change. Times are ms (frame time); the chain's time is block.timestamp * 1000.

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {
    PoolEcon, PayoutBody, DeviceSlash, Device, OracleSet, CurrentSet, Terms, Policy, Circuit, Agent, PaidClaim, Books,
    Env, DeviceRevocation, Paid, IGroth16Verifier,
    // the reason-code errors (file-level in PoolEcon.sol: the library reverts with them too)
    WrongLedger, NotAdmin, InvalidParameters, InvalidOracleSet, InsufficientFreeCapital,
    DevelopmentCircuitOnProduction, AlreadyExists, NotFound, ActivePolicyExists, ExpiryTooEarly,
    InvalidStateTransition, QcInsufficientSignatures, QcDuplicateSigner, QcNonMember, QcBadSignature, QcStaleEpoch,
    PayoutMismatch, ClaimConflict, PolicyNotActive, OutsidePolicyTerm, DeviceRevoked, WindowOverlap, PeriodLimit,
    CoverageExhausted, ClaimWindowClosed, EndTsInFuture, BadProof, WrongLength, BadHint
} from "./PoolEcon.sol";

contract InsurancePool is ReentrancyGuardTransient, EIP712 {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------------ types

    // ------------------------------------------------------------------ constants
    bytes32 public constant PAYOUT_TYPEHASH = keccak256(
        "PayoutBody(bytes32 ledgerId,uint32 oracleSetEpoch,bytes32 claimId,bytes32 policyId,bytes32 deviceId,"
        "uint32 epoch,uint32 startSeq,uint32 endSeq,uint64 startTs,uint64 endTs,bytes32 circuitId,"
        "bytes32 beneficiary,uint64 amount,uint256 cStart,uint256 cEnd)"
    );
    uint256 public constant MAX_ORACLES = 64;
    uint256 public constant MAX_POOL = 1 << 62;
    uint256 private constant TIME_LIMIT = 1 << 48;
    bytes private constant CLAIM_ID_TAG = "faultproof/claim-id/v1";

    // ------------------------------------------------------------------ state
    IERC20 public immutable asset;
    bytes32 public immutable ledgerId;
    bool public immutable development;
    uint64 public immutable maxSkewMs;
    uint64 public immutable rotationGraceMs;

    address public admin;
    CurrentSet public current;
    mapping(uint32 epoch => OracleSet) public oracleSets;
    mapping(uint32 epoch => mapping(address signer => uint8 index1)) public memberIndex; // 1-based
    mapping(uint32 epoch => mapping(bytes32 ed25519Id => bool)) private _edMember;

    Books public books;
    uint256 public poolTotal; // deposits + premiums - withdrawals (ledger/state.py `pool_total`)

    mapping(bytes32 => Circuit) public circuits;
    mapping(bytes32 => Device) public devices;
    mapping(bytes32 device => mapping(uint32 epoch => bytes32 anchor)) public deviceAnchors;
    mapping(bytes32 => Agent) public agents;
    mapping(bytes32 => Policy) private _policies;
    mapping(bytes32 device => bytes32 policyId) public openPolicy;
    mapping(bytes32 claimId => PaidClaim) public claims;
    uint256 public policyNonce;
    PoolEcon.Store private _econ; // bonds, slashes, economic terms (DESIGN §14; rules in PoolEcon)
    bool private transient _plainIssue; // set by issuePolicy around its call of issueEconPolicy

    // ------------------------------------------------------------------ events
    event OraclesRotated(uint32 indexed epoch, address[] signers, bytes32[] ed25519Ids, uint8 threshold, uint64 sinceMs);
    event AdminRotated(address indexed previous, address indexed next);
    event CircuitRegistered(bytes32 indexed circuitId, address verifier, uint32 n, bytes32 transcriptHash, bool production);
    event DeviceEnrolled(bytes32 indexed deviceId, uint32 epoch, bytes32 anchor, bytes32 firmwareHash);
    event AgentEnrolled(bytes32 indexed agentId, uint64 atMs);
    event AgentRevoked(bytes32 indexed agentId, uint64 atMs);
    event Deposited(address indexed from, uint256 amount);
    event Withdrawn(address indexed to, uint256 amount);
    event PolicyIssued(bytes32 indexed policyId, bytes32 indexed deviceId, Terms terms, uint64 atMs);
    event PolicyExpired(bytes32 indexed policyId, uint256 released, uint256 premiumEarned, uint64 atMs);
    // DeviceRevocation and Paid are file-level in PoolEcon.sol: the library emits them too.

    constructor(
        IERC20 asset_,
        bytes32 ledgerId_,
        address admin_,
        address[] memory signers,
        bytes32[] memory ed25519Ids,
        uint8 threshold,
        bool development_,
        uint64 maxSkewMs_,
        uint64 rotationGraceMs_
    ) EIP712("faultproof-insurance-pool", "1") {
        asset = asset_;
        ledgerId = ledgerId_;
        development = development_;
        maxSkewMs = maxSkewMs_;
        rotationGraceMs = rotationGraceMs_;
        admin = admin_;
        _installOracleSet(0, signers, ed25519Ids, threshold);
    }

    // ------------------------------------------------------------------ admin
    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin();
        _;
    }

    function _nowMs() private view returns (uint64) {
        return uint64(block.timestamp * 1000);
    }

    /// Admin rights are the single `admin` address; `rotateAdmin` is the only way to change it.
    function rotateAdmin(address next) external onlyAdmin {
        if (next == admin || next == address(0)) revert InvalidParameters();
        address previous = admin;
        admin = next;
        emit AdminRotated(previous, next);
    }

    function registerCircuit(bytes32 circuitId, address verifier, uint32 n, bytes32 transcriptHash, bool production)
        external
        onlyAdmin
    {
        if (circuits[circuitId].exists) revert AlreadyExists();
        if (n < 1 || verifier.code.length == 0) revert InvalidParameters();
        if ((!production || transcriptHash == bytes32(0)) && !development) revert DevelopmentCircuitOnProduction();
        circuits[circuitId] = Circuit(verifier, n, production, true, transcriptHash);
        emit CircuitRegistered(circuitId, verifier, n, transcriptHash, production);
    }

    function enrolDevice(bytes32 deviceId, uint32 epoch, bytes32 anchor, bytes32 firmwareHash) external onlyAdmin {
        Device storage d = devices[deviceId];
        if (d.exists) {
            if (d.revoked) revert InvalidStateTransition();
            if (epoch <= d.epoch) revert AlreadyExists();
        }
        if (anchor == bytes32(0)) revert InvalidParameters(); // a zero anchor would read as "never enrolled"
        d.exists = true;
        d.epoch = epoch;
        deviceAnchors[deviceId][epoch] = anchor;
        emit DeviceEnrolled(deviceId, epoch, anchor, firmwareHash);
    }

    function revokeDevice(bytes32 deviceId) external onlyAdmin {
        Device storage d = devices[deviceId];
        if (!d.exists) revert NotFound();
        if (d.revoked) revert InvalidStateTransition();
        d.revoked = true;
        d.revokedMs = _nowMs();
        emit DeviceRevocation(deviceId, d.revokedMs);
    }

    function enrolAgent(bytes32 agentId) external onlyAdmin {
        Agent storage a = agents[agentId];
        if (a.exists) {
            if (a.revoked) revert InvalidStateTransition();
            revert AlreadyExists();
        }
        a.exists = true;
        a.enrolledMs = _nowMs();
        emit AgentEnrolled(agentId, a.enrolledMs);
    }

    function revokeAgent(bytes32 agentId) external onlyAdmin {
        Agent storage a = agents[agentId];
        if (!a.exists) revert NotFound();
        if (a.revoked) revert InvalidStateTransition();
        a.revoked = true;
        a.revokedMs = _nowMs();
        emit AgentRevoked(agentId, a.revokedMs);
    }

    function deposit(uint256 amount) external onlyAdmin nonReentrant {
        if (amount == 0 || poolTotal + amount >= MAX_POOL) revert InvalidParameters();
        books.free += uint64(amount);
        poolTotal += amount;
        emit Deposited(msg.sender, amount);
        _pull(msg.sender, amount);
    }

    function withdraw(uint256 amount) external onlyAdmin nonReentrant {
        if (amount == 0) revert InvalidParameters();
        if (amount > books.free) revert InsufficientFreeCapital();
        books.free -= uint64(amount);
        poolTotal -= amount;
        emit Withdrawn(msg.sender, amount);
        asset.safeTransfer(msg.sender, amount);
    }

    /// Tokens in, refusing a token that delivers less than asked (fee-on-transfer): the books
    /// must equal the balance.
    function _pull(address from, uint256 amount) private {
        uint256 before = asset.balanceOf(address(this));
        asset.safeTransferFrom(from, address(this), amount);
        if (asset.balanceOf(address(this)) != before + amount) revert InvalidParameters();
    }

    /// issue_policy. One implementation with issueEconPolicy (the code limit): a call to it
    /// through DELEGATECALL to this contract (msg.sender and the guard stay), reverts bubbled up.
    function issuePolicy(Terms calldata t) external returns (bytes32) {
        _plainIssue = true;
        (bool ok, bytes memory ret) = address(this).delegatecall(
            abi.encodeCall(this.issueEconPolicy, (t, 0, new bytes32[](0), 1, 0)));
        _plainIssue = false;
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        return abi.decode(ret, (bytes32));
    }

    /// issue_econ_policy (DESIGN §14): a policy with its declared staging cost and, for a
    /// corroborated policy, its group of devices, m and the overlap tolerance (economic rules on).
    /// Called by issuePolicy (the transient `_plainIssue` set, which no other caller can set), it is
    /// a plain issue_policy: no economic terms, the rules on or off.
    function issueEconPolicy(Terms calldata t, uint64 stagingCost, bytes32[] calldata group, uint8 minProofs,
                             uint48 overlapToleranceMs) external onlyAdmin nonReentrant returns (bytes32 policyId) {
        if (!_plainIssue) PoolEcon.checkEconTerms(_econ, t.deviceId, group, minProofs, overlapToleranceMs);
        bytes32[] memory devs = group;
        if (group.length == 0) {
            devs = new bytes32[](1);
            devs[0] = t.deviceId;
        }
        policyId = _issue(t, devs, minProofs, stagingCost);
        PoolEcon.recordPolicy(_econ, policyId, _policies[policyId].matchHash, stagingCost, group, minProofs,
                              overlapToleranceMs);
        if (group.length != 0) _policies[policyId].matchHash = bytes32(0); // pays only a group claim
        if (t.premium != 0) _pull(msg.sender, t.premium);
    }

    /// A9 for both (ledger/state.py `_issue`, same order): every covered device first.
    function _issue(Terms calldata t, bytes32[] memory devs, uint256 m, uint64 staging)
        private
        returns (bytes32 policyId)
    {
        uint64 now_ = _nowMs();
        for (uint256 i = 0; i < devs.length; ++i) {
            Device storage d = devices[devs[i]];
            if (!d.exists) revert NotFound();
            if (d.revoked) revert DeviceRevoked();
        }
        Circuit storage c = circuits[t.circuitId];
        if (!c.exists) revert NotFound();
        if ((!c.production || c.transcriptHash == bytes32(0)) && !development) revert DevelopmentCircuitOnProduction();
        _validateTrigger(t, c.n);
        if (t.startMs >= t.endMs || t.endMs <= now_) revert InvalidParameters();
        // Times are < 2^48 ms, as on the wire (U48): sums like endMs + claimWindowMs never
        // overflow, and a window inside the term fits its 48-bit slot fields.
        if (t.endMs >= TIME_LIMIT || t.periodMs >= TIME_LIMIT || t.claimWindowMs >= TIME_LIMIT) {
            revert InvalidParameters();
        }
        if (t.amount == 0 || t.amount > t.coverage || t.periodMs == 0) revert InvalidParameters();
        if (uint256(t.beneficiary) >> 160 != 0 || t.beneficiary == bytes32(0)) revert InvalidParameters();
        if (poolTotal + t.premium >= MAX_POOL) revert InvalidParameters();
        for (uint256 i = 0; i < devs.length; ++i) {
            if (openPolicy[devs[i]] != bytes32(0)) revert ActivePolicyExists();
        }
        PoolEcon.checkSound(_econ, devs, m, staging, t.amount, t.claimWindowMs, current.epoch, current.threshold);
        if (t.coverage > books.free) revert InsufficientFreeCapital();

        policyId = keccak256(abi.encode(block.chainid, address(this), ++policyNonce));
        Policy storage p = _policies[policyId];
        p.terms = t;
        p.matchHash = keccak256(abi.encode(t.deviceId, t.circuitId, t.beneficiary, t.amount));
        p.locked = t.coverage;
        p.exists = true;
        for (uint256 i = 0; i < devs.length; ++i) {
            openPolicy[devs[i]] = policyId;
        }
        Books memory b = books;
        b.free -= t.coverage;
        b.locked += t.coverage;
        b.premiums += t.premium;
        books = b;
        poolTotal += t.premium;
        emit PolicyIssued(policyId, t.deviceId, t, now_);
    }

    /// faultproof.zk.params.validate_parameters: the circuit's own rules, so no policy can be
    /// issued whose trigger the circuit would refuse or that is always true.
    function _validateTrigger(Terms calldata t, uint32 n) private pure {
        uint8 k = t.kind;
        if (n < 2 || k < 1 || k > 5 || t.gapMs >= TIME_LIMIT) revert InvalidParameters();
        bool usesT = k == 1 || k == 2;
        bool usesRange = k == 4;
        bool usesG = k == 5;
        if ((!usesT && t.threshold != 0) || (!usesRange && (t.lo != 0 || t.hi != 0)) || (!usesG && t.gapMs != 0)) {
            revert InvalidParameters();
        }
        if (k == 5) {
            if (t.count != 0 || t.gapMs < 2) revert InvalidParameters();
        } else if (k == 3) {
            if (t.count < 2 || t.count > n) revert InvalidParameters();
        } else {
            if (t.count < 1 || t.count > n) revert InvalidParameters();
        }
        if (usesRange && t.lo > t.hi) revert InvalidParameters();
    }

    function rotateOracles(address[] calldata signers, bytes32[] calldata ed25519Ids, uint8 threshold)
        external
        onlyAdmin
    {
        _installOracleSet(current.epoch + 1, signers, ed25519Ids, threshold);
        PoolEcon.checkMembers(_econ, current.epoch); // EC2: bonded, never slashed
    }

    /// G1/A10: n ≥ 1, distinct members, ⌊n/2⌋+1 ≤ k ≤ n; at most MAX_ORACLES (the bitmap's width).
    /// An oracle's secp256k1 address is bound to its Ed25519 gossip id here, one to one.
    function _installOracleSet(uint32 epoch, address[] memory signers, bytes32[] memory edIds, uint8 k) private {
        uint256 n = signers.length;
        if (n == 0 || n > MAX_ORACLES || edIds.length != n || k < n / 2 + 1 || k > n) revert InvalidOracleSet();
        for (uint256 i = 0; i < n; ++i) {
            address s = signers[i];
            if (s == address(0) || memberIndex[epoch][s] != 0 || _edMember[epoch][edIds[i]]) revert InvalidOracleSet();
            memberIndex[epoch][s] = uint8(i + 1);
            _edMember[epoch][edIds[i]] = true;
            _econ.memberOf[epoch][s] = edIds[i];
            _econ.members[epoch].push(edIds[i]);
        }
        uint64 now_ = _nowMs();
        oracleSets[epoch] = OracleSet(now_, k, uint8(n));
        current = CurrentSet(epoch, k, now_);
        emit OraclesRotated(epoch, signers, edIds, k, now_);
    }

    // ------------------------------------------------------------------ payouts
    /// The EIP-712 digest the oracles sign with their secp256k1 keys.
    function payoutDigest(PayoutBody calldata body) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(PAYOUT_TYPEHASH, body)));
    }

    /// Q3 alone, at the chain's current time: reverts with the QC's fault, or returns true. Lets an
    /// oracle check a QC before paying gas for it (and measures the quorum check's cost).
    function verifyQuorum(PayoutBody calldata body, address[] calldata signers, bytes32[] calldata rs,
                          bytes32[] calldata vss) external view returns (bool) {
        _checkQuorum(body.oracleSetEpoch, payoutDigest(body), signers, rs, vss, _nowMs());
        return true;
    }

    /// Pay a claim. `signers[i]` claims to have made `signatures[i]` (65 bytes); `proof` is the
    /// 256-byte EVM form as eight words; `laterClaim` and `earlierClaim` are the paid claims of
    /// this policy whose windows start just at-or-after and just before this one (0 if none),
    /// which the contract checks in O(1) rather than searches for. Returns what was paid (the earlier amount,
    /// with nothing written, for a claim already paid with the same body).
    function payout(
        PayoutBody calldata body,
        address[] calldata signers,
        bytes32[] calldata rs,
        bytes32[] calldata vss,
        uint256[8] calldata proof,
        bytes32 laterClaim,
        bytes32 earlierClaim
    ) external nonReentrant returns (uint256 paid) {
        // Q1
        if (body.ledgerId != ledgerId) revert WrongLedger();
        // Q2: idempotent by claim_id; a set rotated since may re-certify the same incident.
        bytes4 bodyTag = _bodyTag(body);
        PaidClaim storage prior = claims[body.claimId];
        if (prior.bodyTag != bytes4(0)) {
            if (prior.bodyTag == bodyTag) return prior.paid;
            revert ClaimConflict();
        }
        // Q3
        _checkQuorum(body.oracleSetEpoch, payoutDigest(body), signers, rs, vss, _nowMs());
        return _pay(body, proof, laterClaim, earlierClaim, bodyTag);
    }

    function _tag(bytes32 id) private pure returns (bytes4) {
        return bytes4(uint32(uint256(id)) | 1);
    }

    function _pay(PayoutBody calldata body, uint256[8] calldata proof, bytes32 laterClaim, bytes32 earlierClaim,
                  bytes4 bodyTag) private returns (uint256) {
        uint64 now_ = _nowMs();
        // Q4
        Policy storage p = _policies[body.policyId];
        if (!p.exists) revert NotFound();
        _checkMatches(p, body);
        // P1..P8 (ledger/state.py payout_rejection, same order)
        _checkRules(p, body, now_, laterClaim, earlierClaim);
        // Defence in depth: the trigger's proof, with the public signals built here.
        _checkProof(p.terms, body, proof);

        // Effects
        uint64 pay = body.amount < p.locked ? body.amount : p.locked;
        p.locked -= pay;
        p.paidTotal += pay;
        p.windows += 1;
        bytes4 tag = _tag(body.claimId);
        if (laterClaim == bytes32(0)) p.headTag = tag;
        else claims[laterClaim].nextTag = tag;
        Books storage b = books;
        b.locked -= pay;
        b.paid += pay;
        claims[body.claimId] = PaidClaim(bodyTag, pay, uint48(body.startTs), uint48(body.endTs),
                                         _tag(body.policyId), earlierClaim == bytes32(0) ? bytes4(0) : _tag(earlierClaim));
        address payee = address(uint160(uint256(body.beneficiary))); // = the policy's (Q4)
        emit Paid(body.claimId, body.policyId, payee, pay, body.oracleSetEpoch, body.startTs, body.endTs, now_);
        // Interaction, last
        asset.safeTransfer(payee, pay);
        return pay;
    }

    /// The body's 15 static words without word 1 (the oracle-set epoch: a set rotated since may
    /// re-certify the same claim), hashed straight from calldata (no copy of the struct).
    function _bodyTag(PayoutBody calldata body) private pure returns (bytes4) {
        bytes32 h;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, body, 0x20)
            calldatacopy(add(ptr, 0x20), add(body, 0x40), 0x1a0)
            h := keccak256(ptr, 0x1c0)
        }
        return _tag(h);
    }

    /// Q3, in ledger/state.py's order: epoch, then duplicates and membership over every signer,
    /// then the signatures (the expensive part), then the count.
    function _checkQuorum(
        uint32 epoch,
        bytes32 digest,
        address[] calldata signers,
        bytes32[] calldata rs,
        bytes32[] calldata vss,
        uint64 now_
    ) private view {
        if (signers.length != rs.length || signers.length != vss.length) revert WrongLength();
        if (signers.length > MAX_ORACLES) revert WrongLength();
        CurrentSet memory cur = current; // one slot: epoch, k, since
        uint8 threshold;
        if (epoch == cur.epoch) {
            threshold = cur.threshold;
        } else if (cur.epoch > 0 && epoch == cur.epoch - 1 && now_ <= cur.sinceMs + rotationGraceMs) {
            threshold = oracleSets[epoch].threshold;
        } else {
            revert QcStaleEpoch();
        }
        uint256 bitmap = 0;
        for (uint256 i = 0; i < signers.length; ++i) {
            uint8 index = memberIndex[epoch][signers[i]];
            // A non-member is refused at its first appearance, so the bitmap (over member indexes)
            // sees every signer that could appear twice: the same order as ledger/state.py.
            if (index == 0) revert QcNonMember();
            uint256 bit = 1 << index;
            if (bitmap & bit != 0) revert QcDuplicateSigner();
            bitmap |= bit;
        }
        for (uint256 i = 0; i < signers.length; ++i) {
            // ERC-2098 compact signatures (r, vs); OZ refuses a high s (malleability).
            (address got, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, rs[i], vss[i]);
            if (err != ECDSA.RecoverError.NoError || got != signers[i]) revert QcBadSignature();
        }
        if (signers.length < threshold) revert QcInsufficientSignatures();
    }

    /// Q4: the body agrees with its policy and the registry (PayoutMismatch otherwise).
    function _checkMatches(Policy storage p, PayoutBody calldata body) private view {
        if (
            keccak256(abi.encode(body.deviceId, body.circuitId, body.beneficiary, body.amount)) != p.matchHash
                || body.endSeq < body.startSeq || body.endSeq - body.startSeq != circuits[body.circuitId].n
                || body.claimId != claimIdOf(body.policyId, body.deviceId, body.epoch, body.startSeq, body.endSeq)
                || body.startTs >= body.endTs || deviceAnchors[body.deviceId][body.epoch] == bytes32(0)
        ) revert PayoutMismatch();
    }

    /// P1..P8.
    function _checkRules(Policy storage p, PayoutBody calldata body, uint64 now_, bytes32 laterClaim,
                         bytes32 earlierClaim) private view {
        Terms storage t = p.terms;
        // P1: active at ledger time (issued -> active at start, -> expired after end + claim window)
        if (p.closed || now_ < t.startMs || now_ > t.endMs + t.claimWindowMs) revert PolicyNotActive();
        // P2
        if (body.startTs < t.startMs || body.endTs > t.endMs) revert OutsidePolicyTerm();
        // P3: revocation is never retroactive
        Device storage d = devices[body.deviceId];
        if (d.revoked && (d.revokedMs <= body.endTs || d.slashed)) revert DeviceRevoked();
        // P4: (start, end] overlaps no paid window. The caller names the neighbours; the contract
        // checks they are this policy's, adjacent, and on either side of this window's start.
        bytes4 policyTag = _tag(body.policyId);
        PaidClaim memory later;
        bytes4 earlierTag = p.headTag;
        if (laterClaim != bytes32(0)) {
            later = claims[laterClaim];
            if (later.policyTag != policyTag || later.bodyTag == bytes4(0) || later.startTs < body.startTs) {
                revert BadHint();
            }
            earlierTag = later.nextTag;
        }
        PaidClaim memory earlier;
        if (earlierClaim != bytes32(0)) {
            earlier = claims[earlierClaim];
            if (earlierTag != _tag(earlierClaim) || earlier.policyTag != policyTag || earlier.startTs >= body.startTs) {
                revert BadHint();
            }
        } else if (earlierTag != bytes4(0)) {
            revert BadHint();
        }
        if ((earlierClaim != bytes32(0) && earlier.endTs > body.startTs)
                || (laterClaim != bytes32(0) && later.startTs < body.endTs)) revert WindowOverlap();
        // P5: one payout per period, counted from the term start by the window's end. Paid windows
        // never overlap, so sorted by start they are sorted by end, and so by period: a window of
        // this period, if any, is a neighbour. No per-period storage is needed.
        uint256 period = (body.endTs - t.startMs) / t.periodMs;
        if ((earlierClaim != bytes32(0) && (earlier.endTs - t.startMs) / t.periodMs == period)
                || (laterClaim != bytes32(0) && (later.endTs - t.startMs) / t.periodMs == period)) {
            revert PeriodLimit();
        }
        // P6..P8
        if (p.locked == 0) revert CoverageExhausted();
        if (now_ > body.endTs + t.claimWindowMs) revert ClaimWindowClosed();
        if (body.endTs > now_ + maxSkewMs) revert EndTsInFuture();
    }

    function _checkProof(Terms storage t, PayoutBody calldata body, uint256[8] calldata w) private view {
        uint256[10] memory pub = [
            body.cStart,
            body.cEnd,
            uint256(body.startTs),
            uint256(body.endTs),
            uint256(t.kind),
            uint256(t.threshold),
            uint256(t.count),
            uint256(t.lo),
            uint256(t.hi),
            uint256(t.gapMs)
        ];
        bool ok = IGroth16Verifier(circuits[body.circuitId].verifier).verifyProof(
            [w[0], w[1]], [[w[2], w[3]], [w[4], w[5]]], [w[6], w[7]], pub
        );
        // A verifier whose pairing precompile ran out of gas returns false: refused all the same.
        if (!ok) revert BadProof();
    }

    /// faultproof.messages.claim_id: SHA-256("faultproof/claim-id/v1" ‖ msgpack([policy, device,
    /// epoch, start_seq, end_seq])), so a claim has one id on both backends.
    function claimIdOf(bytes32 policyId, bytes32 deviceId, uint32 epoch, uint32 startSeq, uint32 endSeq)
        public
        pure
        returns (bytes32)
    {
        return sha256(
            abi.encodePacked(
                CLAIM_ID_TAG,
                hex"95c420",
                policyId,
                hex"c420",
                deviceId,
                _mpUint(epoch),
                _mpUint(startSeq),
                _mpUint(endSeq)
            )
        );
    }

    function _mpUint(uint32 v) private pure returns (bytes memory) {
        if (v < 0x80) return abi.encodePacked(uint8(v));
        if (v <= 0xff) return abi.encodePacked(hex"cc", uint8(v));
        if (v <= 0xffff) return abi.encodePacked(hex"cd", uint16(v));
        return abi.encodePacked(hex"ce", v);
    }

    // ------------------------------------------------------------------ expiry (anyone)
    function expire(bytes32 policyId) external nonReentrant {
        Policy storage p = _policies[policyId];
        if (!p.exists) revert NotFound();
        if (p.closed) revert InvalidStateTransition();
        uint64 now_ = _nowMs();
        if (now_ <= p.terms.endMs + p.terms.claimWindowMs) revert ExpiryTooEarly();
        uint64 released = p.locked;
        uint64 premium = p.terms.premium;
        p.closed = true;
        p.locked = 0;
        Books memory b = books;
        b.locked -= released;
        b.premiums -= premium;
        b.free += released + premium;
        books = b;
        if (openPolicy[p.terms.deviceId] == policyId) delete openPolicy[p.terms.deviceId];
        bytes32[] storage group = _econ.groups[policyId]; // a corroborated policy's devices (<= 16)
        for (uint256 i = 0; i < group.length; ++i) {
            if (openPolicy[group[i]] == policyId) delete openPolicy[group[i]];
        }
        emit PolicyExpired(policyId, released, premium, now_);
    }

    // ------------------------------------------------------------------ economic security (§14)
    // The rules are in PoolEcon (same order and reasons as ledger/state.py); these entry points
    // hand it the registry's facts, keep the books and move the tokens, last.

    function setEconParams(PoolEcon.Params calldata p) external onlyAdmin {
        PoolEcon.setParams(_econ, p, current.epoch);
    }

    /// post_bond: the admin pays a bond in the pool asset for an oracle (its Ed25519 id) or an
    /// enrolled device. Bonds are their own book (`bondTotal`), outside free capital.
    function postBond(uint8 kind, bytes32 holderId, uint64 amount) external onlyAdmin nonReentrant {
        PoolEcon.postBond(_econ, devices, kind, holderId, amount, poolTotal);
        poolTotal += amount;
        _pull(msg.sender, amount);
    }

    /// unbond: step 1 (REQUEST) starts the unlock delay, refused while the bond secures something
    /// (an oracle of the current set, a device with a policy not closed); step 2 (RELEASE), after
    /// the delay, pays the bond back to the admin.
    function unbond(uint8 kind, bytes32 holderId, uint8 step) external onlyAdmin nonReentrant {
        uint64 amount = PoolEcon.unbond(_econ, _edMember[current.epoch], openPolicy, kind, holderId, step, msg.sender);
        if (amount != 0) {
            poolTotal -= amount;
            asset.safeTransfer(msg.sender, amount);
        }
    }

    /// Oracle evidence, anyone may submit: two bodies = VoteEquivocation (two EIP-712 PayoutBody
    /// signatures by one member's chain key for one claim and epoch over different bodies), one
    /// body = ContradictingApprove (a signature over a body that is not its policy's).
    function reportVotes(PayoutBody[] calldata bodies, address signer, bytes32[] calldata rs, bytes32[] calldata vss,
                         bytes32 reporter) external {
        books.free += PoolEcon.slashVotes(_econ, current, bodies, signer, rs, vss, reporter, ledgerId,
                                          _domainSeparatorV4());
    }

    /// FrameEquivocation on the chain, certified by k members (DeviceSlash; DESIGN §14): the device
    /// is slashed, revoked now, and none of its unpaid claims is paid (P3). The reward goes to
    /// `e.reporter`, which the members signed: anyone may send the certificate, no one re-aims it.
    function reportFrameEquivocation(DeviceSlash calldata e, address[] calldata signers, bytes32[] calldata rs,
                                     bytes32[] calldata vss) external {
        books.free += PoolEcon.slashFrames(_econ, current, oracleSets, devices, e, signers, rs, vss,
                                           _domainSeparatorV4(), rotationGraceMs);
    }

    /// A corroborated policy's payout (DESIGN §14 C1..C3): `args` = abi.encode(GroupQc) (the body,
    /// the QC's signers and compact signatures, one proof per window, the span's neighbours). The
    /// rules are in PoolEcon.groupPayout; the one token transfer is here, last.
    function groupPayout(bytes calldata args) external nonReentrant returns (uint256) {
        (address payee, uint64 pay, bool existing) = PoolEcon.groupPayout(
            _econ, _policies, claims, devices, agents, circuits, deviceAnchors, memberIndex, oracleSets, current, books,
            args, Env(ledgerId, _domainSeparatorV4(), rotationGraceMs, maxSkewMs));
        if (!existing) asset.safeTransfer(payee, pay);
        return pay;
    }

    /// Economic books: (bond of (kind, holder), bonds held, rewards owed to reporters, `reporter`'s).
    function econState(uint8 kind, bytes32 holderId, bytes32 reporter)
        external
        view
        returns (uint256, uint256, uint256, uint256)
    {
        PoolEcon.Store storage e = _econ;
        return (e.bonds[kind][holderId].amount, e.bondTotal, e.rewardsTotal, e.rewards[reporter]);
    }

    // ------------------------------------------------------------------ views
    function policy(bytes32 policyId) external view returns (Policy memory) {
        return _policies[policyId];
    }

    /// ledger/state.py PolicyStatus at the chain's time: 0 issued, 1 active, 2 expired, 3 closed.
    function policyStatus(bytes32 policyId) external view returns (uint8) {
        Policy storage p = _policies[policyId];
        if (!p.exists) revert NotFound();
        if (p.closed) return 3;
        uint64 now_ = _nowMs();
        if (now_ > p.terms.endMs + p.terms.claimWindowMs) return 2;
        return now_ >= p.terms.startMs ? 1 : 0;
    }

    function oracleEpoch() external view returns (uint32) {
        return current.epoch;
    }

    function isMember(uint32 epoch, address signer) external view returns (bool) {
        return memberIndex[epoch][signer] != 0;
    }
}
