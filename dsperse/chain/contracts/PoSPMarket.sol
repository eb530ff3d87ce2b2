// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

/// @notice The view of ProofOfInference that the market reads. A receipt exists only after every slice
/// proof of the job verified on chain and the slice links held, so its outputHash is the true output.
interface IProofOfInference {
    function getReceipt(bytes32 jobId)
        external
        view
        returns (
            bytes32 modelId,
            bytes32 inputHash,
            bytes32 outputHash,
            int256[] memory outputs,
            address prover,
            uint256 blockNumber
        );

    function getModel(bytes32 modelId)
        external
        view
        returns (
            address[] memory verifiers,
            uint32 inputScale,
            uint32 outputScale,
            uint32 numInputs,
            uint32 numOutputs,
            address registrant
        );
}

/// @title Proof of Sampling inference market.
/// @notice Operators stake, serve inference jobs and commit output hashes. A job is audited with
/// probability auditBps/10000, drawn from the hash of a block that did not exist when the output was
/// committed; anyone may also challenge an unaudited job by posting a bond. An audited or challenged job
/// must be backed, before a deadline, by a ProofOfInference receipt (or by a quorum of validators that
/// re-executed it). A proven lie or a missed deadline slashes the operator: a share of the slash goes to
/// the reporter (the challenger, or the requester when the job was sampled), the rest is burned to 0xdead.
/// Money owed to people is credited and pulled with withdrawCredit(); only burns are pushed.
/// See docs/posp.md for the economics (minimum audit probability) and the design choices.
contract PoSPMarket {
    // ------------------------------------------------------------------ types
    struct Config {
        uint256 minStake; // wei an operator must keep staked to be assigned jobs
        uint256 slashAmount; // S: wei slashed per proven lie or missed deadline (capped at the stake left)
        uint256 minChallengeBond; // wei a challenger must post
        uint16 auditBps; // p in basis points (0..10000)
        uint16 reporterShareBps; // share of a slash paid to the reporter, rest burned
        uint32 commitWindow; // blocks after posting within which the output must be committed
        uint32 auditDelay; // k: audit seed = blockhash(commitBlock + k)
        uint32 proofWindow; // blocks an audited/challenged job has to be proven
        uint32 challengeWindow; // blocks after the commit during which anyone may challenge
        uint32 unstakeDelay; // blocks between requestUnstake and withdrawStake
        uint16 validatorQuorum; // matching verdicts that settle an audit (0 = validator path off)
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

    /// Packed into 7 storage slots (posting a job writes 5 of them).
    struct Job {
        bytes32 modelId;
        bytes32 inputHash;
        bytes32 outputHash;
        address requester;
        uint64 postBlock;
        Status status;
        bool partProven; // targeted models: the always-proven part has a matching receipt
        address operator;
        uint64 commitBlock;
        address challenger;
        uint64 proofDeadline;
        uint128 fee;
        uint128 bond;
    }

    struct Operator {
        uint256 stake;
        uint64 unstakeAt; // 0 = no unstake requested
        uint32 openJobs; // jobs assigned and not yet Settled/Slashed
        uint32 openAudits; // of which audited or challenged
        bool registered;
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

    address public immutable owner;
    IProofOfInference public immutable poi;
    Config public config;

    mapping(address => Operator) public operators;
    mapping(bytes32 => Model) public models;
    mapping(bytes32 => Job) public jobs;
    mapping(address => mapping(bytes32 => Offer)) public offers; // operator => modelId => offer
    mapping(address => uint256) public credit; // withdrawable wei owed to an address
    mapping(address => bool) public isValidator;
    mapping(bytes32 => mapping(address => bool)) public hasVoted;
    mapping(bytes32 => mapping(bytes32 => uint256)) public votes; // jobId => outputHash => count

    uint256 public jobCount;
    uint256 public totalStaked; // sum of operator stakes
    uint256 public totalEscrow; // fees and bonds of open jobs
    uint256 public totalCredit; // sum of credit[]
    uint256 public totalBurned;

    // ------------------------------------------------------------------ events
    event Staked(address indexed operator, uint256 amount, uint256 stake);
    event OfferSet(address indexed operator, bytes32 indexed modelId, uint256 minFee, uint32 capacity);
    event UnstakeRequested(address indexed operator, uint256 withdrawableAtBlock);
    event StakeWithdrawn(address indexed operator, uint256 amount);
    event ValidatorAdded(address indexed validator);
    event ModelRegistered(
        bytes32 indexed modelId, address indexed owner, uint16 sliceCount, uint256 alwaysProvenMask, bytes32 provenPartModelId
    );
    event JobPosted(
        bytes32 indexed jobId, bytes32 indexed modelId, address indexed operator, address requester, bytes32 inputHash, uint256 fee
    );
    event JobDeclined(bytes32 indexed jobId, address indexed operator);
    event OutputCommitted(bytes32 indexed jobId, address indexed operator, bytes32 outputHash, uint256 seedBlock);
    event AuditDrawn(bytes32 indexed jobId, bool sampled, bytes32 seed, uint256 proofDeadline);
    event Challenged(bytes32 indexed jobId, address indexed challenger, uint256 bond, uint256 proofDeadline);
    event PartProven(bytes32 indexed jobId, bytes32 receiptId);
    event VerdictSubmitted(bytes32 indexed jobId, address indexed validator, bytes32 outputHash, uint256 count);
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
        require(cfg.auditBps <= 10000, "PoSP: auditBps > 10000");
        require(cfg.reporterShareBps <= 10000, "PoSP: reporterShareBps > 10000");
        require(cfg.minStake > 0 && cfg.slashAmount > 0, "PoSP: zero stake or slash");
        require(cfg.minStake >= cfg.slashAmount, "PoSP: minStake < slashAmount");
        require(cfg.auditDelay > 0, "PoSP: auditDelay must be >= 1 block");
        require(cfg.commitWindow > 0 && cfg.proofWindow > 0, "PoSP: zero window");
        require(cfg.challengeWindow > cfg.auditDelay, "PoSP: challengeWindow <= auditDelay");
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
        (bool inRegistry,) = _poiModel(modelId);
        require(models[modelId].registered || inRegistry, "PoSP: unregistered model");
        require(minFee > 0 || capacity == 0, "PoSP: zero price");
        Offer storage o = offers[msg.sender][modelId];
        o.minFee = minFee;
        o.capacity = capacity;
        emit OfferSet(msg.sender, modelId, minFee, capacity);
    }

    function addValidator(address v) external onlyOwner {
        require(v != address(0), "PoSP: zero address");
        require(!isValidator[v], "PoSP: already a validator");
        isValidator[v] = true;
        emit ValidatorAdded(v);
    }

    // ------------------------------------------------------------------ models
    /// @notice Register a model. alwaysProvenMask marks slices proven for every job (targeted
    /// verification); it must be 0 or a suffix of the slices, proven as the sub-model provenPartModelId
    /// (registered in ProofOfInference), so that its receipt's outputHash is the job's output. The other
    /// slices are only sampled. A model already in ProofOfInference may only be configured here by the
    /// address that registered it there (nobody else can attach a bogus always-proven part to it).
    function registerModel(bytes32 modelId, uint16 sliceCount, uint256 alwaysProvenMask, bytes32 provenPartModelId)
        external
    {
        require(modelId != bytes32(0), "PoSP: zero model id");
        require(!models[modelId].registered, "PoSP: model already registered");
        (bool inRegistry, address registrant) = _poiModel(modelId);
        require(!inRegistry || registrant == msg.sender, "PoSP: only the model's registry registrant may configure it");
        require(sliceCount > 0 && sliceCount <= 255, "PoSP: sliceCount must be 1..255");
        if (alwaysProvenMask == 0) {
            require(provenPartModelId == bytes32(0), "PoSP: part model without mask");
        } else {
            require(provenPartModelId != bytes32(0), "PoSP: mask needs provenPartModelId");
            uint256 lowest = alwaysProvenMask & (~alwaysProvenMask + 1);
            require(alwaysProvenMask + lowest == (uint256(1) << sliceCount), "PoSP: mask must be a suffix of slices");
            (bool partKnown,) = _poiModel(provenPartModelId);
            require(partKnown, "PoSP: part model not in the registry");
        }
        models[modelId] = Model(msg.sender, true, sliceCount, alwaysProvenMask, provenPartModelId);
        emit ModelRegistered(modelId, msg.sender, sliceCount, alwaysProvenMask, provenPartModelId);
    }

    // ------------------------------------------------------------------ jobs
    /// @notice Post a job; the requester picks the operator among those that offer the model (at its price,
    /// within its capacity, with enough stake and no unstake pending). msg.value is the fee, held in escrow
    /// until settlement.
    function postJob(bytes32 modelId, bytes32 inputHash, address operator) external payable returns (bytes32 jobId) {
        (bool inRegistry,) = _poiModel(modelId);
        require(models[modelId].registered || inRegistry, "PoSP: unregistered model");
        require(inputHash != bytes32(0), "PoSP: zero input hash");
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
        uint256 fee = j.fee;
        j.fee = 0;
        j.status = Status.Declined;
        totalEscrow -= fee;
        _release(j);
        _credit(j.requester, fee);
        emit JobDeclined(jobId, msg.sender);
    }

    /// @notice The assigned operator commits keccak of its output. The audit seed is the hash of block
    /// commitBlock + auditDelay, which does not exist yet, so the operator cannot know whether it will be
    /// audited when it commits.
    function commitOutput(bytes32 jobId, bytes32 outputHash) external {
        Job storage j = _job(jobId);
        require(msg.sender == j.operator, "PoSP: not the job's operator");
        require(j.status == Status.Posted, "PoSP: output already committed");
        require(block.number <= j.postBlock + config.commitWindow, "PoSP: commit deadline passed");
        require(outputHash != bytes32(0), "PoSP: zero output hash");
        j.outputHash = outputHash;
        j.commitBlock = uint64(block.number);
        j.status = Status.Committed;
        emit OutputCommitted(jobId, msg.sender, outputHash, block.number + config.auditDelay);
    }

    /// @notice Draw the audit once block commitBlock + auditDelay exists. Anyone may call it.
    function drawAudit(bytes32 jobId) public returns (bool sampled) {
        Job storage j = _job(jobId);
        require(j.status == Status.Committed, "PoSP: audit not drawable in this state");
        uint256 seedBlock = uint256(j.commitBlock) + config.auditDelay;
        require(block.number > seedBlock, "PoSP: seed block not mined yet");
        bytes32 bh = blockhash(seedBlock);
        bytes32 seed;
        if (bh == bytes32(0)) {
            // More than 256 blocks passed: the hash is gone. Nobody drew in time, so audit for sure:
            // stalling can then never help a cheating operator.
            sampled = true;
        } else {
            seed = keccak256(abi.encode(bh, jobId));
            sampled = uint256(seed) % 10000 < config.auditBps;
        }
        uint256 deadline;
        if (sampled) {
            j.status = Status.Audited;
            deadline = block.number + config.proofWindow;
            j.proofDeadline = uint64(deadline);
            operators[j.operator].openAudits += 1;
        } else {
            j.status = Status.Cleared;
            // targeted models: the always-proven part must be proven within proofWindow of the draw
            deadline = block.number + config.proofWindow;
            j.proofDeadline = uint64(deadline);
        }
        emit AuditDrawn(jobId, sampled, seed, deadline);
    }

    /// @notice Anyone may force an audit of an unsampled job by posting a bond. If the job is then
    /// proven honest the bond goes to the operator; if it is proven a lie the challenger gets the bond
    /// back plus the reporter share of the slash.
    function challenge(bytes32 jobId) external payable {
        Job storage j = _job(jobId);
        require(msg.value >= config.minChallengeBond, "PoSP: bond below minimum");
        require(msg.value <= type(uint128).max, "PoSP: bond too large");
        if (j.status == Status.Committed && block.number > uint256(j.commitBlock) + config.auditDelay) {
            drawAudit(jobId);
        }
        require(j.status != Status.Audited, "PoSP: job already audited");
        require(j.status == Status.Committed || j.status == Status.Cleared, "PoSP: job not challengeable");
        require(block.number <= uint256(j.commitBlock) + config.challengeWindow, "PoSP: challenge window closed");
        j.status = Status.Challenged;
        j.challenger = msg.sender;
        j.bond = uint128(msg.value);
        j.proofDeadline = uint64(block.number + config.proofWindow);
        operators[j.operator].openAudits += 1;
        totalEscrow += msg.value;
        emit Challenged(jobId, msg.sender, msg.value, j.proofDeadline);
    }

    /// @notice Settle an audited/challenged job with ProofOfInference receipt `receiptId` (usually the
    /// jobId itself). Any receipt for the same model and input will do, whoever proved it: the quantized
    /// model is deterministic, so its outputHash is the true output and decides honest vs lie. Letting the
    /// caller name the receipt means nobody can block the proof by taking the jobId slot in the registry.
    function proveWithReceipt(bytes32 jobId, bytes32 receiptId) external nonReentrant {
        Job storage j = _job(jobId);
        require(j.status == Status.Audited || j.status == Status.Challenged, "PoSP: job not under audit");
        (bool found, bytes32 m, bytes32 i, bytes32 o) = _receipt(receiptId);
        require(found, "PoSP: no receipt for job");
        require(m == j.modelId, "PoSP: receipt model mismatch");
        require(i == j.inputHash, "PoSP: receipt input mismatch");
        emit ProofAccepted(jobId, true, o);
        _resolveAudit(jobId, j, o == j.outputHash);
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
        require(!j.partProven, "PoSP: part already proven");
        (bool found, bytes32 m, bytes32 i, bytes32 o) = _receipt(receiptId);
        require(found, "PoSP: no receipt for part");
        require(m == part, "PoSP: receipt is not the always-proven part");
        if (models[j.modelId].alwaysProvenMask & 1 == 1) {
            // the "part" is every slice: then it starts at the job's input and must match it too
            require(i == j.inputHash, "PoSP: receipt input mismatch");
        }
        require(o == j.outputHash, "PoSP: part receipt output differs from commitment");
        j.partProven = true;
        emit PartProven(jobId, receiptId);
    }

    /// @notice A validator reports the output hash it got by re-executing the job (EZKL's quantized
    /// witness is deterministic). The first hash to reach validatorQuorum votes decides the audit.
    function submitVerdict(bytes32 jobId, bytes32 outputHash) external nonReentrant {
        require(isValidator[msg.sender], "PoSP: not a validator");
        require(config.validatorQuorum > 0, "PoSP: validator path disabled");
        Job storage j = _job(jobId);
        require(msg.sender != j.operator, "PoSP: operator cannot judge own job");
        require(j.status == Status.Audited || j.status == Status.Challenged, "PoSP: job not under audit");
        require(!hasVoted[jobId][msg.sender], "PoSP: double submit");
        hasVoted[jobId][msg.sender] = true;
        uint256 n = ++votes[jobId][outputHash];
        emit VerdictSubmitted(jobId, msg.sender, outputHash, n);
        if (n == config.validatorQuorum) {
            emit ProofAccepted(jobId, false, outputHash);
            _resolveAudit(jobId, j, outputHash == j.outputHash);
        }
    }

    /// @notice Move a job forward once its time has come: pay an unchallenged, unsampled job after the
    /// challenge window (targeted models: once the always-proven part's receipt matches), or slash an
    /// operator that missed the commit or proof deadline. Anyone may call it.
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
            operators[j.operator].openAudits -= 1;
            _slash(jobId, j, "missed proof deadline", s == Status.Challenged ? j.challenger : j.requester);
            return;
        }
        require(s == Status.Cleared, "PoSP: job already closed");
        if (models[j.modelId].provenPartModelId != bytes32(0) && !j.partProven) {
            require(block.number > j.proofDeadline, "PoSP: always-proven part not proven yet");
            _slash(jobId, j, "missed always-proven part", j.requester);
            return;
        }
        require(block.number > uint256(j.commitBlock) + config.challengeWindow, "PoSP: challenge window still open");
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

    // ------------------------------------------------------------------ internals
    function _job(bytes32 jobId) private view returns (Job storage j) {
        j = jobs[jobId];
        require(j.status != Status.None, "PoSP: unknown job");
    }

    function _receipt(bytes32 id) private view returns (bool found, bytes32 m, bytes32 i, bytes32 o) {
        if (address(poi) == address(0) || address(poi).code.length == 0) return (false, 0, 0, 0);
        try poi.getReceipt(id) returns (bytes32 m_, bytes32 i_, bytes32 o_, int256[] memory, address prover, uint256) {
            return (prover != address(0), m_, i_, o_);
        } catch {
            return (false, 0, 0, 0);
        }
    }

    /// A model registered in ProofOfInference (with slice verifiers) may be used without registering
    /// it here; it then has no always-proven part.
    function _poiModel(bytes32 modelId) private view returns (bool found, address registrant) {
        if (address(poi) == address(0) || address(poi).code.length == 0) return (false, address(0));
        try poi.getModel(modelId) returns (address[] memory verifiers, uint32, uint32, uint32, uint32, address who) {
            return (verifiers.length > 0, who);
        } catch {
            return (false, address(0));
        }
    }

    function _resolveAudit(bytes32 jobId, Job storage j, bool honest) private {
        operators[j.operator].openAudits -= 1;
        if (honest) {
            if (j.status == Status.Challenged) {
                uint256 bond = j.bond;
                j.bond = 0;
                totalEscrow -= bond;
                _credit(j.operator, bond);
                emit ChallengeFailed(jobId, j.challenger, bond);
            }
            _pay(jobId, j);
        } else {
            address reporter = j.status == Status.Challenged ? j.challenger : j.requester;
            _slash(jobId, j, "proven wrong output", reporter);
        }
    }

    function _pay(bytes32 jobId, Job storage j) private {
        uint256 fee = j.fee;
        j.fee = 0;
        j.status = Status.Settled;
        totalEscrow -= fee;
        _release(j);
        _credit(j.operator, fee);
        emit JobSettled(jobId, j.operator, fee);
    }

    /// Slash S (capped at what is left): reporter gets reporterShareBps of it, the rest is burned; the
    /// requester gets the fee back and a challenger its bond back.
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
        totalBurned += burned;
        emit Slashed(jobId, j.operator, reason, amount, reporter, toReporter, burned);
        if (burned > 0) {
            (bool ok,) = BURN.call{value: burned}("");
            require(ok, "PoSP: burn failed");
        }
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
}
