// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

import "./IProofOfInference.sol";

/// @title Proof of Sampling inference market.
/// @notice Operators stake, serve inference jobs and commit output hashes. A job is audited with
/// probability auditBps/10000, drawn from a secret the requester committed to when posting, mixed with the
/// hash of the block that holds the operator's commitment: the operator (or whoever builds blocks) cannot
/// see the draw before committing, and the requester cannot choose it. Anyone may also challenge an
/// unaudited job by posting a bond. An audited or challenged job must be backed, before a deadline, by a
/// ProofOfInference receipt, or by a quorum of staked validators that re-executed it; a receipt always wins
/// over the validators' vote, and validators that voted against a receipt are slashed. A proven lie or a
/// missed deadline slashes the operator: at most half of the slash goes to the reporter, the rest is burned
/// to 0xdead. The operator is paid only after its output is revealed on chain (hash-checked).
/// Money owed to people is credited and pulled with withdrawCredit(); only burns are pushed.
/// See docs/posp.md for the economics (minimum audit probability) and the threat model.
contract PoSPMarket {
    // ------------------------------------------------------------------ types
    struct Config {
        uint256 minStake; // wei an operator must keep staked to be assigned jobs
        uint256 slashAmount; // S: wei slashed per proven lie or missed deadline (operators and validators)
        uint256 minChallengeBond; // wei a challenger must post
        uint16 auditBps; // p in basis points (0..10000)
        uint16 reporterShareBps; // share of a slash paid to the reporter (<= 5000), the rest is burned
        uint32 commitWindow; // blocks after posting within which the output must be committed
        uint32 auditDelay; // k: the requester reveals its seed secret no earlier than commitBlock + k
        uint32 proofWindow; // blocks an audited/challenged job has to be proven
        uint32 challengeWindow; // blocks after the commit to challenge, reveal the seed and reveal the output
        uint32 unstakeDelay; // blocks between requestUnstake and withdrawStake
        uint16 validatorQuorum; // matching verdicts that decide an audit at its deadline (0 = validator path off)
    }

    enum Status {
        None,
        Posted, // waiting for the operator's output commitment
        Committed, // output committed, audit not drawn yet
        Cleared, // not sampled: challengeable until the window closes, then settleable
        Audited, // sampled: needs a proof before proofDeadline
        Challenged, // challenged: needs a proof before proofDeadline
        Settled, // operator was paid
        Slashed, // operator was slashed, requester refunded
        Declined // operator declined before committing (e.g. the input never arrived), requester refunded
    }

    /// Packed into 8 storage slots (posting a job writes 6 of them).
    struct Job {
        bytes32 modelId;
        bytes32 inputHash;
        bytes32 outputHash;
        address requester;
        uint64 postBlock;
        Status status;
        bool partProven; // the always-proven part has a matching receipt, or the model had none when posted
        bool outputRevealed; // the outputs behind outputHash are public (revealOutput, or a matching receipt)
        address operator;
        uint64 commitBlock;
        address challenger;
        uint64 proofDeadline;
        uint128 fee;
        uint128 bond;
        bytes32 seedCommit; // keccak256(abi.encode(secret)) of the requester's audit secret; 0 once revealed
    }

    struct Operator {
        uint256 stake;
        uint64 unstakeAt; // 0 = no unstake requested
        uint32 openJobs; // jobs assigned and not yet Settled/Slashed
        uint32 openAudits; // of which audited or challenged
        bool registered;
    }

    /// A validator re-executes audited jobs. The owner admits and removes it; its stake answers for every
    /// verdict that a receipt may still contradict (S per open verdict).
    struct ValidatorState {
        uint256 stake;
        uint32 openVerdicts; // verdicts on jobs not closed yet
        bool active; // admitted by the owner and not removed
    }

    /// What an operator agreed to serve: jobs for a model are only posted to operators that offer it.
    struct Offer {
        uint128 minFee; // lowest fee (wei) the operator accepts for one job of this model
        uint32 capacity; // most open jobs of this model at once (0 = not serving it)
        uint32 open; // open jobs of this model now
    }

    struct Model {
        address owner;
        bool registered;
        uint16 sliceCount;
        uint256 alwaysProvenMask; // bit i set = slice i is proven for every job (a suffix of the slices)
        bytes32 provenPartModelId; // ProofOfInference model id of that suffix sub-model (0 = none)
    }

    // ------------------------------------------------------------------ state
    address public constant BURN = address(0xdEaD);
    uint16 public constant MAX_REPORTER_SHARE_BPS = 5000; // a self-report always loses >= half the slash

    address public immutable owner;
    IProofOfInference public immutable poi;
    Config public config;

    mapping(address => Operator) public operators;
    mapping(address => ValidatorState) public validators;
    mapping(bytes32 => Model) public models;
    mapping(bytes32 => Job) internal jobs; // read with getJob
    mapping(address => mapping(bytes32 => Offer)) public offers; // operator => modelId => offer
    mapping(address => uint256) public credit; // withdrawable wei owed to an address
    mapping(bytes32 => mapping(address => bytes32)) public verdictOf; // jobId => validator => voted hash
    mapping(bytes32 => mapping(bytes32 => uint256)) public votes; // jobId => outputHash => count
    mapping(bytes32 => address[]) internal voters; // jobId => validators that voted on it
    mapping(bytes32 => bytes32) public quorumHash; // jobId => the hash that reached the quorum first

    uint256 public jobCount;
    uint256 public totalStaked; // sum of operator and validator stakes
    uint256 public totalEscrow; // fees and bonds of open jobs
    uint256 public totalCredit; // sum of credit[]
    uint256 public totalBurned;

    // ------------------------------------------------------------------ events
    event Staked(address indexed operator, uint256 amount, uint256 stake);
    event OfferSet(address indexed operator, bytes32 indexed modelId, uint256 minFee, uint32 capacity);
    event UnstakeRequested(address indexed operator, uint256 withdrawableAtBlock);
    event StakeWithdrawn(address indexed operator, uint256 amount);
    event ValidatorAdded(address indexed validator);
    event ValidatorRemoved(address indexed validator);
    event ValidatorStaked(address indexed validator, uint256 amount, uint256 stake);
    event ValidatorSlashed(bytes32 indexed jobId, address indexed validator, bytes32 votedHash, uint256 amount, uint256 toReporter);
    event ModelRegistered(
        bytes32 indexed modelId, address indexed owner, uint16 sliceCount, uint256 alwaysProvenMask, bytes32 provenPartModelId
    );
    event JobPosted(
        bytes32 indexed jobId, bytes32 indexed modelId, address indexed operator, address requester, bytes32 inputHash, uint256 fee
    );
    event JobDeclined(bytes32 indexed jobId, address indexed operator);
    event OutputCommitted(bytes32 indexed jobId, address indexed operator, bytes32 outputHash, uint256 revealFromBlock);
    event OutputRevealed(bytes32 indexed jobId, int256[] outputs);
    event AuditDrawn(bytes32 indexed jobId, bool sampled, bytes32 seed, uint256 proofDeadline);
    event Challenged(bytes32 indexed jobId, address indexed challenger, uint256 bond, uint256 proofDeadline);
    event PartProven(bytes32 indexed jobId, bytes32 receiptId);
    event VerdictSubmitted(bytes32 indexed jobId, address indexed validator, bytes32 outputHash, uint256 count);
    event QuorumReached(bytes32 indexed jobId, bytes32 outputHash, uint256 decidesAfterBlock);
    event ProofAccepted(bytes32 indexed jobId, bool viaReceipt, bytes32 provenOutputHash);
    event ChallengeFailed(bytes32 indexed jobId, address indexed challenger, uint256 bondToOperator);
    event JobSettled(bytes32 indexed jobId, address indexed operator, uint256 fee);
    event Slashed(
        bytes32 indexed jobId,
        address indexed operator,
        string reason,
        uint256 amount,
        address reporter,
        uint256 toReporter,
        uint256 burned
    );
    event CreditWithdrawn(address indexed to, uint256 amount);

    // ------------------------------------------------------------------ guards
    uint256 private _lock = 1;

    modifier nonReentrant() {
        require(_lock == 1, "PoSP: reentrant call");
        _lock = 2;
        _;
        _lock = 1;
    }

    modifier onlyOwner() {
        require(msg.sender == owner, "PoSP: only owner");
        _;
    }

    constructor(address poi_, Config memory cfg) {
        require(poi_.code.length > 0, "PoSP: no ProofOfInference registry at poi");
        require(cfg.auditBps <= 10000, "PoSP: auditBps > 10000");
        // A cheater that reports itself (a sock-puppet challenge) gets the reporter share back: capping it at
        // half the slash keeps every self-report a loss of at least S/2.
        require(cfg.reporterShareBps <= MAX_REPORTER_SHARE_BPS, "PoSP: reporterShareBps > 5000");
        require(cfg.minStake > 0 && cfg.slashAmount > 0, "PoSP: zero stake or slash");
        require(cfg.minStake >= cfg.slashAmount, "PoSP: minStake < slashAmount");
        require(cfg.auditDelay > 0, "PoSP: auditDelay must be >= 1 block");
        require(cfg.commitWindow > 0 && cfg.proofWindow > 0, "PoSP: zero window");
        require(cfg.challengeWindow > cfg.auditDelay, "PoSP: challengeWindow <= auditDelay");
        // the seed mixes blockhash(commitBlock), which the EVM serves for 256 blocks only
        require(cfg.challengeWindow <= 256, "PoSP: challengeWindow > 256 blocks");
        owner = msg.sender;
        poi = IProofOfInference(poi_);
        config = cfg;
    }

    // ------------------------------------------------------------------ operators
    /// @notice Register as an operator, or top up. The stake backs every job the operator serves.
    function stake() external payable {
        require(msg.value > 0, "PoSP: zero stake");
        Operator storage op = operators[msg.sender];
        require(op.unstakeAt == 0, "PoSP: unstake pending");
        require(op.stake + msg.value >= config.minStake, "PoSP: stake below minimum");
        op.stake += msg.value;
        op.registered = true;
        totalStaked += msg.value;
        emit Staked(msg.sender, msg.value, op.stake);
    }

    /// @notice Step 1 of leaving: stops new assignments; refused while jobs or audits are open.
    function requestUnstake() external {
        Operator storage op = operators[msg.sender];
        require(op.registered && op.stake > 0, "PoSP: not an operator");
        require(op.unstakeAt == 0, "PoSP: unstake already requested");
        require(op.openAudits == 0, "PoSP: open audit or challenge");
        require(op.openJobs == 0, "PoSP: unfinished jobs");
        op.unstakeAt = uint64(block.number + config.unstakeDelay);
        emit UnstakeRequested(msg.sender, op.unstakeAt);
    }

    /// @notice Step 2 of leaving: after unstakeDelay blocks, take the whole stake back.
    function withdrawStake() external nonReentrant {
        Operator storage op = operators[msg.sender];
        require(op.unstakeAt != 0, "PoSP: no unstake requested");
        require(block.number >= op.unstakeAt, "PoSP: unstake delay not over");
        require(op.openAudits == 0, "PoSP: open audit or challenge");
        require(op.openJobs == 0, "PoSP: unfinished jobs");
        uint256 amount = op.stake;
        op.stake = 0;
        op.unstakeAt = 0;
        op.registered = false;
        totalStaked -= amount;
        emit StakeWithdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok, "PoSP: transfer failed");
    }

    /// @notice Opt in to serve ``modelId`` at ``minFee`` or more, at most ``capacity`` open jobs at once
    /// (capacity 0 stops new jobs). Nobody can post a job to an operator that has not opted in: without this,
    /// anyone could post a 1-wei job naming any operator and grief it into a missed deadline.
    function offer(bytes32 modelId, uint128 minFee, uint32 capacity) external {
        require(_provable(modelId), "PoSP: model not provable (not in the registry)");
        require(minFee > 0 || capacity == 0, "PoSP: zero price");
        Offer storage o = offers[msg.sender][modelId];
        o.minFee = minFee;
        o.capacity = capacity;
        emit OfferSet(msg.sender, modelId, minFee, capacity);
    }

    // ------------------------------------------------------------------ validators
    /// @notice Admit a validator. It can vote once it has staked S per verdict it has open.
    function addValidator(address v) external onlyOwner {
        require(v != address(0), "PoSP: zero address");
        require(!validators[v].active, "PoSP: already a validator");
        validators[v].active = true;
        emit ValidatorAdded(v);
    }

    /// @notice Remove a validator (the owner), or leave (the validator itself). Its open verdicts stay
    /// slashable until their jobs close; only then can it withdraw its stake.
    function removeValidator(address v) external {
        require(msg.sender == owner || msg.sender == v, "PoSP: only owner or the validator");
        require(validators[v].active, "PoSP: not a validator");
        validators[v].active = false;
        emit ValidatorRemoved(v);
    }

    function stakeValidator() external payable {
        require(msg.value > 0, "PoSP: zero stake");
        ValidatorState storage v = validators[msg.sender];
        require(v.active, "PoSP: not a validator");
        v.stake += msg.value;
        totalStaked += msg.value;
        emit ValidatorStaked(msg.sender, msg.value, v.stake);
    }

    /// @notice A removed validator takes its stake back once none of its verdicts can be contradicted.
    function withdrawValidatorStake() external nonReentrant {
        ValidatorState storage v = validators[msg.sender];
        require(!v.active, "PoSP: remove the validator first");
        require(v.openVerdicts == 0, "PoSP: verdicts still open");
        uint256 amount = v.stake;
        require(amount > 0, "PoSP: nothing to withdraw");
        v.stake = 0;
        totalStaked -= amount;
        emit StakeWithdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok, "PoSP: transfer failed");
    }

    // ------------------------------------------------------------------ models
    /// @notice Configure targeted verification for a ProofOfInference model. Only its registry registrant
    /// may do it (nobody else can attach a part to it), sliceCount must be the registry's, and
    /// alwaysProvenMask marks slices proven for every job: 0, or a suffix of the slices proven as the
    /// registry sub-model provenPartModelId, whose slice verifiers must run exactly the model's last slices'
    /// code (same codehash) with the same output scale and count, so its receipt's outputHash is the job's.
    function registerModel(bytes32 modelId, uint16 sliceCount, uint256 alwaysProvenMask, bytes32 provenPartModelId)
        external
    {
        require(modelId != bytes32(0), "PoSP: zero model id");
        require(!models[modelId].registered, "PoSP: model already registered");
        (address[] memory full, uint32 outScale, uint32 nOut, address registrant,) = _poiModel(modelId);
        require(full.length > 0, "PoSP: model not in the registry");
        require(registrant == msg.sender, "PoSP: only the model's registry registrant may configure it");
        require(sliceCount == full.length, "PoSP: sliceCount differs from the registry");
        if (alwaysProvenMask == 0) {
            require(provenPartModelId == bytes32(0), "PoSP: part model without mask");
        } else {
            require(provenPartModelId != bytes32(0), "PoSP: mask needs provenPartModelId");
            uint256 lowest = alwaysProvenMask & (~alwaysProvenMask + 1);
            require(alwaysProvenMask + lowest == (uint256(1) << sliceCount), "PoSP: mask must be a suffix of slices");
            _checkSuffix(full, outScale, nOut, _popcount(alwaysProvenMask), provenPartModelId);
        }
        models[modelId] = Model(msg.sender, true, sliceCount, alwaysProvenMask, provenPartModelId);
        emit ModelRegistered(modelId, msg.sender, sliceCount, alwaysProvenMask, provenPartModelId);
    }

    /// The part must run the model's last `n` slices' verifier code (codehash: the same circuits, wherever
    /// deployed) and publish the same outputs, so its receipt's outputHash is the full model's.
    function _checkSuffix(address[] memory full, uint32 outScale, uint32 nOut, uint256 n, bytes32 partId) private view {
        (address[] memory part, uint32 pOutScale, uint32 pOut,, uint32 pIn) = _poiModel(partId);
        require(part.length > 0, "PoSP: part model not in the registry");
        // a proper suffix starts at a committed tensor (registerPart); a full mask is a whole model again
        require((pIn == 0) == (n < full.length), "PoSP: part's inputs do not fit a suffix");
        require(part.length == n, "PoSP: part slice count differs from the mask");
        uint256 first = full.length - n;
        for (uint256 i = 0; i < n; i++) {
            require(part[i].codehash == full[first + i].codehash, "PoSP: part is not the model's suffix");
        }
        require(pOutScale == outScale && pOut == nOut, "PoSP: part outputs differ from the model's");
    }

    // ------------------------------------------------------------------ jobs
    /// @notice Post a job; the requester picks the operator among those that offer the model (at its price,
    /// within its capacity, with enough stake and no unstake pending). msg.value is the fee, held in escrow
    /// until settlement. seedCommit = keccak256(abi.encode(secret)) for a random 32-byte secret the
    /// requester reveals after the commitment (revealSeed); it decides the audit together with the hash of
    /// the commitment's block. Only models in the registry (provable by receipt) take jobs.
    function postJob(bytes32 modelId, bytes32 inputHash, address operator, bytes32 seedCommit)
        external
        payable
        returns (bytes32 jobId)
    {
        require(_provable(modelId), "PoSP: model not provable (not in the registry)");
        require(inputHash != bytes32(0), "PoSP: zero input hash");
        require(seedCommit != bytes32(0), "PoSP: zero seed commitment");
        require(msg.value > 0, "PoSP: zero fee");
        require(msg.value <= type(uint128).max, "PoSP: fee too large");
        Operator storage op = operators[operator];
        require(op.registered, "PoSP: unknown operator");
        require(op.unstakeAt == 0, "PoSP: operator is unstaking");
        require(op.stake >= config.minStake, "PoSP: operator stake below minimum");
        // every open job must be able to lose a full S: stake >= S * open jobs, always
        require(op.stake >= config.slashAmount * (uint256(op.openJobs) + 1), "PoSP: stake does not cover another job");
        Offer storage o = offers[operator][modelId];
        require(o.capacity > 0, "PoSP: operator does not serve this model");
        require(msg.value >= o.minFee, "PoSP: fee below the operator's price");
        require(o.open < o.capacity, "PoSP: operator at capacity for this model");
        o.open += 1;
        jobId = keccak256(abi.encode(block.chainid, address(this), ++jobCount));
        Job storage j = jobs[jobId];
        j.modelId = modelId;
        j.inputHash = inputHash;
        j.requester = msg.sender;
        j.operator = operator;
        j.fee = uint128(msg.value);
        j.postBlock = uint64(block.number);
        j.status = Status.Posted;
        j.seedCommit = seedCommit;
        // the model's targeting is fixed for this job now: a part configured later cannot be asked of it
        j.partProven = models[modelId].provenPartModelId == bytes32(0);
        op.openJobs += 1;
        totalEscrow += msg.value;
        emit JobPosted(jobId, modelId, operator, msg.sender, inputHash, msg.value);
    }

    /// @notice The assigned operator refuses a job it has not committed to, e.g. because the input that
    /// matches inputHash never reached it off chain. The fee goes back to the requester; no slash. It
    /// leaks nothing about audits, which are drawn only after a commitment.
    function declineJob(bytes32 jobId) external {
        Job storage j = _job(jobId);
        require(msg.sender == j.operator, "PoSP: not the job's operator");
        require(j.status == Status.Posted, "PoSP: output already committed");
        _close(j, Status.Declined, j.requester);
        emit JobDeclined(jobId, msg.sender);
    }

    /// @notice The assigned operator commits keccak of its output. The audit depends on the requester's
    /// secret, which the operator does not know, so it cannot tell whether it will be audited.
    function commitOutput(bytes32 jobId, bytes32 outputHash) external {
        Job storage j = _job(jobId);
        require(msg.sender == j.operator, "PoSP: not the job's operator");
        require(j.status == Status.Posted, "PoSP: output already committed");
        require(block.number <= j.postBlock + config.commitWindow, "PoSP: commit deadline passed");
        require(outputHash != bytes32(0), "PoSP: zero output hash");
        j.outputHash = outputHash;
        j.commitBlock = uint64(block.number);
        j.status = Status.Committed;
        emit OutputCommitted(jobId, msg.sender, outputHash, block.number + config.auditDelay + 1);
    }

    /// @notice Publish the committed outputs: keccak256(abi.encodePacked(outputs)) must equal the commitment.
    /// The operator is paid only once its outputs are public (here, or in a matching receipt).
    function revealOutput(bytes32 jobId, int256[] calldata outputs) external {
        Job storage j = _job(jobId);
        require(
            j.status == Status.Committed || j.status == Status.Cleared || j.status == Status.Audited
                || j.status == Status.Challenged,
            "PoSP: no open commitment"
        );
        require(!j.outputRevealed, "PoSP: output already revealed");
        require(keccak256(abi.encodePacked(outputs)) == j.outputHash, "PoSP: outputs do not match the commitment");
        j.outputRevealed = true;
        emit OutputRevealed(jobId, outputs);
    }

    /// @notice The requester (or anyone it gave the secret to) reveals the audit secret, from auditDelay
    /// blocks after the commitment until the challenge window closes. seed = keccak256(secret,
    /// blockhash(commitBlock), jobId): the operator and the block builders did not know the secret when the
    /// commitment's block was made, and the requester committed to it before that block existed.
    function revealSeed(bytes32 jobId, bytes32 secret) external returns (bool sampled) {
        Job storage j = _job(jobId);
        require(j.status == Status.Committed, "PoSP: audit not drawable in this state");
        require(keccak256(abi.encode(secret)) == j.seedCommit, "PoSP: secret does not match the commitment");
        require(block.number > uint256(j.commitBlock) + config.auditDelay, "PoSP: seed block not mined yet");
        require(block.number <= uint256(j.commitBlock) + config.challengeWindow, "PoSP: reveal window closed");
        bytes32 seed = keccak256(abi.encode(secret, blockhash(j.commitBlock), jobId));
        sampled = uint256(seed) % 10000 < config.auditBps;
        _draw(jobId, j, sampled, seed);
    }

    /// @notice Draw without the secret. Anyone may call it. With p = 0 or 100% nothing is random, so it
    /// decides auditDelay blocks after the commitment. Otherwise it waits for the reveal window to close and
    /// then audits for sure: withholding or censoring the secret can never help a cheating operator.
    function drawAudit(bytes32 jobId) public returns (bool sampled) {
        Job storage j = _job(jobId);
        require(j.status == Status.Committed, "PoSP: audit not drawable in this state");
        require(block.number > uint256(j.commitBlock) + config.auditDelay, "PoSP: seed block not mined yet");
        uint16 bps = config.auditBps;
        if (bps == 0 || bps == 10000) {
            sampled = bps == 10000;
        } else {
            require(block.number > uint256(j.commitBlock) + config.challengeWindow, "PoSP: seed reveal window still open");
            sampled = true;
        }
        _draw(jobId, j, sampled, bytes32(0));
    }

    /// @notice Anyone may force an audit of an unsampled job by posting a bond. If the job is then
    /// proven honest the bond goes to the operator; if it is proven a lie the challenger gets the bond
    /// back plus the reporter share of the slash.
    function challenge(bytes32 jobId) external payable {
        Job storage j = _job(jobId);
        require(msg.value >= config.minChallengeBond, "PoSP: bond below minimum");
        require(msg.value <= type(uint128).max, "PoSP: bond too large");
        require(j.status != Status.Audited, "PoSP: job already audited");
        require(j.status == Status.Committed || j.status == Status.Cleared, "PoSP: job not challengeable");
        require(block.number <= uint256(j.commitBlock) + config.challengeWindow, "PoSP: challenge window closed");
        j.status = Status.Challenged;
        j.seedCommit = bytes32(0);
        j.challenger = msg.sender;
        j.bond = uint128(msg.value);
        j.proofDeadline = uint64(block.number + config.proofWindow);
        operators[j.operator].openAudits += 1;
        totalEscrow += msg.value;
        emit Challenged(jobId, msg.sender, msg.value, j.proofDeadline);
    }

    /// @notice Settle an audited/challenged job with ProofOfInference receipt `receiptId`. Any receipt for
    /// the same model and input will do, whoever proved it: the quantized model is deterministic, so its
    /// outputHash is the true output and decides honest vs lie. It wins over the validators' vote (which only
    /// takes effect after the proof deadline), and validators that voted another hash are slashed.
    function proveWithReceipt(bytes32 jobId, bytes32 receiptId) external nonReentrant {
        Job storage j = _job(jobId);
        require(j.status == Status.Audited || j.status == Status.Challenged, "PoSP: job not under audit");
        (bool found, bytes32 m, bytes32 i, bytes32 o) = _receipt(receiptId);
        require(found, "PoSP: no receipt for job");
        require(m == j.modelId, "PoSP: receipt model mismatch");
        require(i == j.inputHash, "PoSP: receipt input mismatch");
        emit ProofAccepted(jobId, true, o);
        bool honest = o == j.outputHash;
        if (honest) j.outputRevealed = true; // the receipt holds the outputs
        _closeVerdicts(jobId, o, true);
        _resolveAudit(jobId, j, honest);
    }

    /// @notice Targeted verification: show receipt `receiptId` of the model's always-proven part (the
    /// sub-model provenPartModelId) whose output is the committed output. Needed, before the proof
    /// deadline, for every unsampled job of a model that has an always-proven part.
    function provePart(bytes32 jobId, bytes32 receiptId) external {
        Job storage j = _job(jobId);
        bytes32 part = models[j.modelId].provenPartModelId;
        require(part != bytes32(0), "PoSP: model has no always-proven part");
        require(
            j.status == Status.Committed || j.status == Status.Cleared || j.status == Status.Audited
                || j.status == Status.Challenged,
            "PoSP: job not awaiting a proof"
        );
        require(!j.partProven, "PoSP: part already proven (or not asked of this job)");
        (bool found, bytes32 m, bytes32 i, bytes32 o) = _receipt(receiptId);
        require(found, "PoSP: no receipt for part");
        require(m == part, "PoSP: receipt is not the always-proven part");
        require(poi.receiptJob(receiptId) == jobId, "PoSP: part receipt is for another job");
        if (models[j.modelId].alwaysProvenMask & 1 == 1) {
            // the "part" is every slice: then it starts at the job's input and must match it too
            require(i == j.inputHash, "PoSP: receipt input mismatch");
        }
        require(o == j.outputHash, "PoSP: part receipt output differs from commitment");
        j.partProven = true;
        j.outputRevealed = true; // the part's receipt holds the outputs
        emit PartProven(jobId, receiptId);
    }

    /// @notice A staked validator reports the output hash it got by re-executing the job (EZKL's quantized
    /// witness is deterministic). The first hash to reach validatorQuorum votes decides the audit at its
    /// proof deadline, unless a receipt decides it first; a verdict a receipt contradicts is slashed.
    function submitVerdict(bytes32 jobId, bytes32 outputHash) external {
        ValidatorState storage v = validators[msg.sender];
        require(v.active, "PoSP: not a validator");
        require(config.validatorQuorum > 0, "PoSP: validator path disabled");
        require(v.stake >= config.slashAmount * (uint256(v.openVerdicts) + 1), "PoSP: validator stake does not cover another verdict");
        Job storage j = _job(jobId);
        require(msg.sender != j.operator, "PoSP: operator cannot judge own job");
        require(j.status == Status.Audited || j.status == Status.Challenged, "PoSP: job not under audit");
        require(block.number <= j.proofDeadline, "PoSP: proof window closed");
        require(outputHash != bytes32(0), "PoSP: zero output hash");
        require(verdictOf[jobId][msg.sender] == bytes32(0), "PoSP: double submit");
        verdictOf[jobId][msg.sender] = outputHash;
        voters[jobId].push(msg.sender);
        v.openVerdicts += 1;
        uint256 n = ++votes[jobId][outputHash];
        emit VerdictSubmitted(jobId, msg.sender, outputHash, n);
        if (n == config.validatorQuorum && quorumHash[jobId] == bytes32(0)) {
            quorumHash[jobId] = outputHash;
            emit QuorumReached(jobId, outputHash, j.proofDeadline);
        }
    }

    /// @notice Move a job forward once its time has come: pay an unchallenged, unsampled job after the
    /// challenge window (targeted models: once the always-proven part's receipt matches; always: once the
    /// output is revealed), apply the validators' quorum after the proof deadline, or slash an operator
    /// that missed the commit or proof deadline. Anyone may call it.
    function settle(bytes32 jobId) external nonReentrant {
        Job storage j = _job(jobId);
        Status s = j.status;
        if (s == Status.Posted) {
            require(block.number > j.postBlock + config.commitWindow, "PoSP: commit window still open");
            // no reporter reward: the requester chose the input and could have withheld it on purpose
            _slash(jobId, j, "missed commit deadline", address(0));
            return;
        }
        if (s == Status.Committed) {
            drawAudit(jobId);
            s = j.status;
        }
        if (s == Status.Audited || s == Status.Challenged) {
            require(block.number > j.proofDeadline, "PoSP: proof window still open");
            bytes32 q = quorumHash[jobId];
            _closeVerdicts(jobId, q, false);
            if (q != bytes32(0)) {
                emit ProofAccepted(jobId, false, q);
                _resolveAudit(jobId, j, q == j.outputHash);
            } else {
                operators[j.operator].openAudits -= 1;
                _slash(jobId, j, "missed proof deadline", s == Status.Challenged ? j.challenger : j.requester);
            }
            return;
        }
        require(s == Status.Cleared, "PoSP: job already closed");
        if (!j.partProven) {
            require(block.number > j.proofDeadline, "PoSP: always-proven part not proven yet");
            _slash(jobId, j, "missed always-proven part", j.requester);
            return;
        }
        require(block.number > uint256(j.commitBlock) + config.challengeWindow, "PoSP: challenge window still open");
        if (!j.outputRevealed) {
            _slash(jobId, j, "output not revealed", j.requester);
            return;
        }
        _pay(jobId, j);
    }

    /// @notice Pull the wei credited to the caller (fees, refunds, bonds, slash rewards).
    function withdrawCredit() external nonReentrant {
        uint256 amount = credit[msg.sender];
        require(amount > 0, "PoSP: nothing to withdraw");
        credit[msg.sender] = 0;
        totalCredit -= amount;
        emit CreditWithdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok, "PoSP: transfer failed");
    }

    // ------------------------------------------------------------------ views
    function getJob(bytes32 jobId) external view returns (Job memory) {
        return jobs[jobId];
    }

    function getModel(bytes32 modelId) external view returns (Model memory) {
        return models[modelId];
    }

    function getConfig() external view returns (Config memory) {
        return config;
    }

    function hasVoted(bytes32 jobId, address validator) external view returns (bool) {
        return verdictOf[jobId][validator] != bytes32(0);
    }

    function getVoters(bytes32 jobId) external view returns (address[] memory) {
        return voters[jobId];
    }

    // ------------------------------------------------------------------ internals
    function _job(bytes32 jobId) private view returns (Job storage j) {
        j = jobs[jobId];
        require(j.status != Status.None, "PoSP: unknown job");
    }

    function _draw(bytes32 jobId, Job storage j, bool sampled, bytes32 seed) private {
        j.seedCommit = bytes32(0);
        uint256 deadline = block.number + config.proofWindow;
        j.proofDeadline = uint64(deadline); // unsampled targeted jobs: the part is due by then
        if (sampled) {
            j.status = Status.Audited;
            operators[j.operator].openAudits += 1;
        } else {
            j.status = Status.Cleared;
        }
        emit AuditDrawn(jobId, sampled, seed, deadline);
    }

    function _receipt(bytes32 id) private view returns (bool found, bytes32 m, bytes32 i, bytes32 o) {
        try poi.getReceipt(id) returns (bytes32 m_, bytes32 i_, bytes32 o_, int256[] memory, address prover, uint256) {
            return (prover != address(0), m_, i_, o_);
        } catch {
            return (false, 0, 0, 0);
        }
    }

    function _poiModel(bytes32 modelId)
        private
        view
        returns (address[] memory verifiers, uint32 outScale, uint32 nOut, address registrant, uint32 nIn)
    {
        try poi.getModel(modelId) returns (address[] memory v, uint32, uint32 os, uint32 ni, uint32 no, address who) {
            return (v, os, no, who, ni);
        } catch {
            return (new address[](0), 0, 0, address(0), 0);
        }
    }

    /// Only a model in the registry whose receipts state the input (numInputs > 0: not a suffix part) can be
    /// proven by receipt for a job, so only it takes jobs.
    function _provable(bytes32 modelId) private view returns (bool) {
        (address[] memory v,,,, uint32 nIn) = _poiModel(modelId);
        return v.length > 0 && nIn > 0;
    }

    /// Close the validators' verdicts on a job. With a receipt (`proven`), every verdict other than the
    /// receipt's output hash is slashed S: the reporter share goes to whoever showed the receipt.
    function _closeVerdicts(bytes32 jobId, bytes32 truth, bool proven) private {
        address[] storage vs = voters[jobId];
        for (uint256 k = 0; k < vs.length; k++) {
            ValidatorState storage v = validators[vs[k]];
            v.openVerdicts -= 1;
            bytes32 voted = verdictOf[jobId][vs[k]];
            if (proven && voted != truth) {
                uint256 amount = config.slashAmount < v.stake ? config.slashAmount : v.stake;
                v.stake -= amount;
                totalStaked -= amount;
                uint256 toReporter = (amount * config.reporterShareBps) / 10000;
                _credit(msg.sender, toReporter);
                _burn(amount - toReporter);
                emit ValidatorSlashed(jobId, vs[k], voted, amount, toReporter);
            }
        }
    }

    function _resolveAudit(bytes32 jobId, Job storage j, bool honest) private {
        operators[j.operator].openAudits -= 1;
        if (honest && j.status == Status.Challenged) {
            uint256 bond = j.bond;
            j.bond = 0;
            totalEscrow -= bond;
            _credit(j.operator, bond);
            emit ChallengeFailed(jobId, j.challenger, bond);
        }
        address reporter = j.status == Status.Challenged ? j.challenger : j.requester;
        if (!honest) {
            _slash(jobId, j, "proven wrong output", reporter);
        } else if (!j.outputRevealed) {
            _slash(jobId, j, "output not revealed", j.requester);
        } else {
            _pay(jobId, j);
        }
    }

    function _pay(bytes32 jobId, Job storage j) private {
        emit JobSettled(jobId, j.operator, _close(j, Status.Settled, j.operator));
    }

    /// End a job without a slash: its fee leaves escrow for `to` (the operator when paid, the requester when
    /// declined) and the operator's slot for the model is freed.
    function _close(Job storage j, Status status, address to) private returns (uint256 fee) {
        fee = j.fee;
        j.fee = 0;
        j.status = status;
        totalEscrow -= fee;
        _release(j);
        _credit(to, fee);
    }

    /// Slash S (capped at what is left): the reporter gets reporterShareBps (<= 50%) of it, the rest is
    /// burned; the requester gets the fee back and a challenger its bond back.
    function _slash(bytes32 jobId, Job storage j, string memory reason, address reporter) private {
        Operator storage op = operators[j.operator];
        uint256 amount = config.slashAmount < op.stake ? config.slashAmount : op.stake;
        op.stake -= amount;
        _release(j);
        totalStaked -= amount;
        uint256 toReporter = reporter == address(0) ? 0 : (amount * config.reporterShareBps) / 10000;
        uint256 burned = amount - toReporter;
        uint256 fee = j.fee;
        uint256 bond = j.bond;
        j.fee = 0;
        j.bond = 0;
        j.status = Status.Slashed;
        totalEscrow -= fee + bond;
        _credit(j.requester, fee);
        if (bond > 0) _credit(j.challenger, bond);
        _credit(reporter, toReporter);
        emit Slashed(jobId, j.operator, reason, amount, reporter, toReporter, burned);
        _burn(burned);
    }

    function _burn(uint256 amount) private {
        if (amount == 0) return;
        totalBurned += amount;
        (bool ok,) = BURN.call{value: amount}("");
        require(ok, "PoSP: burn failed");
    }

    /// A job closed: one fewer open job for its operator, overall and for its model's offer.
    function _release(Job storage j) private {
        operators[j.operator].openJobs -= 1;
        offers[j.operator][j.modelId].open -= 1;
    }

    function _credit(address to, uint256 amount) private {
        if (amount == 0) return;
        credit[to] += amount;
        totalCredit += amount;
    }

    function _popcount(uint256 x) private pure returns (uint256 n) {
        for (; x != 0; x &= x - 1) n++;
    }
}
