// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title ProofOfInference
/// @notice On-chain receipts for sliced, EZKL-proven inference runs (dsperse).
/// A model is a list of per-slice Halo2 verifiers in topological order plus its link table. The slices form a
/// graph: slice 0 alone reads the model input (public instances), the last slice alone writes the model output
/// (public instances), and every tensor passed between two slices (an edge) is polycommit on both sides.
/// A receipt is stored for a job only if every link holds and every verifier accepts.
///
/// Identities: a model's id is a content hash (modelKey), so no id can be squatted; a receipt is stored under
/// receiptId(prover, jobId), so one sender cannot block another's job; and a prover commits to its proofs in
/// an earlier block (commit, then submit or submitPart), so proofs copied from the mempool do not make the
/// copier the prover of record. A plan too big for one transaction is submitted in parts (submitPart).
///
/// A link is one edge as byte ranges of the EVM-transcript proofs:
///   proofs[producer][producerOffset : producerOffset + length] == proofs[consumer][consumerOffset : +length].
/// EZKL commits a polycommit tensor with one unblinded KZG G1 point (64 bytes, x||y) per advice column, and a
/// large tensor spans several columns; `length` is 64 * columns, so a link compares EVERY column of the tensor,
/// not only its first point. The polycommit points are the proof's first bytes (committed inputs in order, then
/// committed outputs, each tensor's columns side by side); dsperse derives the offsets from each circuit's
/// settings (dsperse.layout) and registers them with the model (see docs/chain.md).
contract ProofOfInference {
    /// BN254 scalar field modulus: instances are elements of this field.
    uint256 internal constant FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant HALF_FIELD = FIELD / 2;
    uint256 internal constant G1_BYTES = 64;
    bytes4 internal constant VERIFY_SELECTOR = bytes4(keccak256("verifyProof(bytes,uint256[])"));

    /// One edge of the slice graph: `length` bytes (whole 64-byte columns) of the producer's proof at
    /// `producerOffset` must equal those of the consumer's proof at `consumerOffset`.
    struct Link {
        uint32 producer;
        uint32 producerOffset;
        uint32 consumer;
        uint32 consumerOffset;
        uint32 length;
    }

    struct Model {
        bytes32 label;
        address[] verifiers;
        Link[] links;
        uint32 inputScale;
        uint32 outputScale;
        uint32 numInputs;
        uint32 numOutputs;
        address registrant;
    }

    struct Receipt {
        bytes32 modelId;
        bytes32 jobId;
        bytes32 inputHash;
        bytes32 outputHash;
        int256[] outputs;
        address prover;
        uint256 blockNumber;
    }

    /// A receipt being submitted in several transactions (a plan too big for one block or one calldata limit).
    struct Pending {
        bytes32 modelId;
        uint256 startBlock; // block of the first part: the commitment must be older
        uint256 next; // first slice of the next part
        bytes32 digest; // running hash over keccak(proof) of the slices received so far
        bytes32 inputHash;
    }

    mapping(bytes32 => Model) internal models;
    mapping(bytes32 => Receipt) internal receipts; // by receiptId(prover, jobId)
    mapping(bytes32 => Pending) internal pendings; // by receiptId(prover, jobId)
    mapping(bytes32 => mapping(uint256 => bytes32)) internal carried; // receiptId => link => keccak(producer bytes)
    mapping(address => mapping(bytes32 => uint256)) public commitments; // prover => commitment => block

    event ModelRegistered(
        bytes32 indexed modelId,
        bytes32 indexed label,
        address indexed registrant,
        address[] verifiers,
        uint32 inputScale,
        uint32 outputScale,
        uint32 numInputs,
        uint32 numOutputs,
        Link[] links
    );
    event Committed(address indexed prover, bytes32 indexed commitment);
    event ReceiptProgress(bytes32 indexed receiptId, bytes32 indexed jobId, address indexed prover, uint256 next);
    event ReceiptStored(
        bytes32 indexed receiptId,
        bytes32 indexed jobId,
        address indexed prover,
        bytes32 modelId,
        bytes32 inputHash,
        bytes32 outputHash,
        int256[] outputs
    );

    // ---------------------------------------------------------------------------------------------- models

    /// @notice The registry id of a model: a hash of everything that defines it (its off-chain label, the code
    /// of its slice verifiers, scales, public I/O counts and link table). Ids are content addresses: nobody can
    /// take another model's id with other verifiers, scales or links, and the same content always gets the
    /// same id, whoever registers it.
    function modelKey(
        bytes32 label,
        address[] calldata verifiers,
        uint32 inputScale,
        uint32 outputScale,
        uint32 numInputs,
        uint32 numOutputs,
        Link[] calldata links
    ) public view returns (bytes32) {
        bytes32[] memory code = new bytes32[](verifiers.length);
        for (uint256 i = 0; i < verifiers.length; i++) {
            code[i] = verifiers[i].codehash;
        }
        return keccak256(abi.encode(label, code, inputScale, outputScale, numInputs, numOutputs, links));
    }

    /// @notice Register a model under its content id (see modelKey): `label` is the off-chain model id
    /// (sha256 over the slices' verifying keys), `verifiers` the slice verifiers in topological order, then
    /// the fixed-point scales, how many public inputs (slice 0) and outputs (last slice) it has, and its link
    /// table (one entry per edge). Every link must run from an earlier slice to a later one and cover whole
    /// columns, and every slice after the first must consume at least one link. Returns the id.
    function registerModel(
        bytes32 label,
        address[] calldata verifiers,
        uint32 inputScale,
        uint32 outputScale,
        uint32 numInputs,
        uint32 numOutputs,
        Link[] calldata links
    ) external returns (bytes32 modelId) {
        require(label != bytes32(0), "model label is zero");
        uint256 n = verifiers.length;
        require(n > 0, "no slice verifiers");
        for (uint256 i = 0; i < n; i++) {
            require(verifiers[i].code.length > 0, "verifier has no code");
        }
        require(numOutputs > 0, "no public outputs");
        modelId = modelKey(label, verifiers, inputScale, outputScale, numInputs, numOutputs, links);
        require(models[modelId].verifiers.length == 0, "model already registered");
        Model storage m = models[modelId];
        bool[] memory linked = new bool[](n);
        for (uint256 i = 0; i < links.length; i++) {
            Link calldata l = links[i];
            if (l.producer >= l.consumer) revert(string.concat("link ", _itoa(i), ": producer not before consumer"));
            if (l.consumer >= n) revert(string.concat("link ", _itoa(i), ": slice out of range"));
            if (l.length == 0 || l.length % G1_BYTES != 0) {
                revert(string.concat("link ", _itoa(i), ": length not a whole number of columns"));
            }
            linked[l.consumer] = true;
            m.links.push(l);
        }
        for (uint256 j = 1; j < n; j++) {
            if (!linked[j]) revert(string.concat("slice ", _itoa(j), " has no incoming link"));
        }
        m.label = label;
        m.verifiers = verifiers;
        m.inputScale = inputScale;
        m.outputScale = outputScale;
        m.numInputs = numInputs;
        m.numOutputs = numOutputs;
        m.registrant = msg.sender;
        emit ModelRegistered(modelId, label, msg.sender, verifiers, inputScale, outputScale, numInputs, numOutputs, links);
    }

    // -------------------------------------------------------------------------------------------- receipts

    /// @notice Where the receipt of `jobId` by `prover` is stored: one job id per prover, on this chain and
    /// this registry. Another sender taking the same job id first blocks nobody.
    function receiptId(address prover, bytes32 jobId) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), prover, jobId));
    }

    /// @notice The commitment a prover posts (in an earlier block) before its proofs: it binds the prover, the
    /// job, the model and every proof, so whoever copies the proofs from the mempool (and the commitment too)
    /// has no commitment of their own and cannot take the receipt. `proofsDigest` chains keccak256 of each
    /// proof in slice order: d = 0; d = keccak256(abi.encode(d, keccak256(proof_i))).
    function commitmentOf(address prover, bytes32 jobId, bytes32 modelId, bytes32 proofsDigest)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(prover, jobId, modelId, proofsDigest));
    }

    /// @notice Step 1 of a submission: post commitmentOf(msg.sender, jobId, modelId, proofsDigest).
    function commit(bytes32 commitment) external {
        require(commitments[msg.sender][commitment] == 0, "already committed");
        commitments[msg.sender][commitment] = block.number;
        emit Committed(msg.sender, commitment);
    }

    /// @notice Step 2, in one transaction: every slice proof of job `jobId`. Checks, in this order: slice
    /// count, every link of the model's link table (all columns), every slice proof, then the commitment.
    function submit(bytes32 jobId, bytes32 modelId, bytes[] calldata proofs, uint256[][] calldata instances) external {
        uint256 n = models[modelId].verifiers.length;
        require(n == 0 || proofs.length == n, "slice count mismatch");
        submitPart(jobId, modelId, 0, proofs, instances);
    }

    /// @notice Step 2 in parts, for a plan whose proofs do not fit one transaction: slices
    /// [first, first + proofs.length), parts in slice order (first == 0 starts over). Links inside a part are
    /// compared directly; a link whose producer is in an earlier part is compared with the keccak256 of the
    /// producer's bytes kept by that part. The receipt is stored when the last slice has been verified.
    /// Returns true when it was.
    function submitPart(
        bytes32 jobId,
        bytes32 modelId,
        uint256 first,
        bytes[] calldata proofs,
        uint256[][] calldata instances
    ) public returns (bool done) {
        Model storage m = models[modelId];
        uint256 n = m.verifiers.length;
        require(n > 0, "unknown model");
        bytes32 rid = receiptId(msg.sender, jobId);
        Pending storage p = _begin(rid, modelId, first);
        uint256 end = first + proofs.length;
        require(proofs.length > 0 && instances.length == proofs.length && end <= n, "slice count mismatch");

        _checkLinks(rid, m.links, first, end, proofs);
        _verify(m.verifiers, first, proofs, instances);
        for (uint256 i = 0; i < proofs.length; i++) {
            p.digest = keccak256(abi.encode(p.digest, keccak256(proofs[i])));
        }
        if (first == 0) {
            require(instances[0].length >= m.numInputs, "too few public inputs");
            p.inputHash = keccak256(abi.encodePacked(instances[0][0:m.numInputs]));
        }
        if (end < n) {
            p.next = end;
            emit ReceiptProgress(rid, jobId, msg.sender, end);
            return false;
        }
        _store(rid, jobId, modelId, instances[instances.length - 1]);
        return true;
    }

    /// Start (first == 0: over) or continue the pending receipt `rid`.
    function _begin(bytes32 rid, bytes32 modelId, uint256 first) internal returns (Pending storage p) {
        require(receipts[rid].blockNumber == 0, "job id already used");
        p = pendings[rid];
        if (first == 0) {
            p.modelId = modelId;
            p.startBlock = block.number;
            p.digest = bytes32(0);
            p.next = 0;
        } else {
            require(p.startBlock != 0 && first == p.next, string.concat("part out of order: expected slice ", _itoa(p.next)));
            require(p.modelId == modelId, "part of another model");
        }
    }

    /// Check every link that touches slices [first, end): both ends inside, compare the bytes; producer
    /// inside and consumer later, keep the producer bytes' hash; producer earlier, compare with what was kept.
    function _checkLinks(bytes32 rid, Link[] storage links, uint256 first, uint256 end, bytes[] calldata proofs)
        internal
    {
        for (uint256 i = 0; i < links.length; i++) {
            Link memory l = links[i];
            bool producerIn = l.producer >= first && l.producer < end;
            bool consumerIn = l.consumer >= first && l.consumer < end;
            if (!producerIn && !consumerIn) continue;
            bytes32 expected;
            if (producerIn) {
                expected = _range(proofs[l.producer - first], l.producerOffset, l.length);
                if (!consumerIn) {
                    carried[rid][i] = expected;
                    continue;
                }
            } else {
                expected = carried[rid][i];
            }
            if (_range(proofs[l.consumer - first], l.consumerOffset, l.length) != expected) {
                revert(string.concat("link mismatch on edge ", _itoa(i)));
            }
        }
    }

    function _range(bytes calldata proof, uint256 offset, uint256 len) internal pure returns (bytes32) {
        require(proof.length >= offset + len, "proof too short");
        return keccak256(proof[offset:offset + len]);
    }

    function _verify(address[] storage verifiers, uint256 first, bytes[] calldata proofs, uint256[][] calldata instances)
        internal
        view
    {
        for (uint256 i = 0; i < proofs.length; i++) {
            uint256 gasBefore = gasleft();
            (bool ok, bytes memory ret) =
                verifiers[first + i].staticcall(abi.encodeWithSelector(VERIFY_SELECTOR, proofs[i], instances[i]));
            // EIP-150 keeps 1/64 of the gas back: a call that failed with (almost) none left ran out of gas;
            // say so rather than blaming an honest proof.
            if (!ok && gasleft() <= gasBefore / 63) revert("out of gas in slice verifier");
            if (!ok || ret.length != 32 || abi.decode(ret, (bool)) != true) {
                revert(string.concat("slice proof rejected: ", _itoa(first + i)));
            }
        }
    }

    /// The last part landed: check the commitment, then store the receipt (output = the last slice's last
    /// numOutputs instances, de-mapped to signed integers) and drop the pending state.
    function _store(bytes32 rid, bytes32 jobId, bytes32 modelId, uint256[] calldata last) internal {
        Pending storage p = pendings[rid];
        uint256 committedAt = commitments[msg.sender][commitmentOf(msg.sender, jobId, modelId, p.digest)];
        require(committedAt != 0 && committedAt < p.startBlock, "no earlier commitment by this prover");
        Model storage m = models[modelId];
        require(last.length >= m.numOutputs, "too few public outputs");
        int256[] memory outputs = new int256[](m.numOutputs);
        uint256 start = last.length - m.numOutputs;
        for (uint256 j = 0; j < outputs.length; j++) {
            outputs[j] = _signed(last[start + j]);
        }
        Receipt storage r = receipts[rid];
        r.modelId = modelId;
        r.jobId = jobId;
        r.inputHash = p.inputHash;
        r.outputHash = keccak256(abi.encodePacked(outputs));
        r.outputs = outputs;
        r.prover = msg.sender;
        r.blockNumber = block.number;
        emit ReceiptStored(rid, jobId, msg.sender, modelId, r.inputHash, r.outputHash, outputs);
        delete pendings[rid];
    }

    /// @notice Progress of a receipt submitted in parts: the first slice still missing (0: none pending).
    function pendingNext(address prover, bytes32 jobId) external view returns (uint256) {
        return pendings[receiptId(prover, jobId)].next;
    }

    /// @notice The stored receipt under `rid` (= receiptId(prover, jobId)); every field is zero when there is
    /// none (check blockNumber).
    function getReceipt(bytes32 rid)
        external
        view
        returns (
            bytes32 modelId,
            bytes32 inputHash,
            bytes32 outputHash,
            int256[] memory outputs,
            address prover,
            uint256 blockNumber
        )
    {
        Receipt storage r = receipts[rid];
        return (r.modelId, r.inputHash, r.outputHash, r.outputs, r.prover, r.blockNumber);
    }

    function hasReceipt(bytes32 rid) external view returns (bool) {
        return receipts[rid].blockNumber != 0;
    }

    /// @notice The job id a stored receipt is for (zero when there is none).
    function receiptJob(bytes32 rid) external view returns (bytes32) {
        return receipts[rid].jobId;
    }

    /// @notice The off-chain model id (sha256 over the verifying keys) a registered model was labelled with.
    function modelLabel(bytes32 modelId) external view returns (bytes32) {
        return models[modelId].label;
    }

    /// @notice A registered model; `verifiers` is empty when `modelId` is unknown.
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
        )
    {
        Model storage m = models[modelId];
        return (m.verifiers, m.inputScale, m.outputScale, m.numInputs, m.numOutputs, m.registrant);
    }

    /// @notice The link table of a registered model (empty when `modelId` is unknown or has one slice).
    function getLinks(bytes32 modelId) external view returns (Link[] memory) {
        return models[modelId].links;
    }

    /// Field element -> signed integer: values above p/2 encode negatives (x - p).
    function _signed(uint256 x) internal pure returns (int256) {
        require(x < FIELD, "instance not a field element");
        return x > HALF_FIELD ? -int256(FIELD - x) : int256(x);
    }

    function _itoa(uint256 v) internal pure returns (string memory) {
        if (v == 0) return "0";
        uint256 len;
        for (uint256 t = v; t != 0; t /= 10) len++;
        bytes memory b = new bytes(len);
        for (; v != 0; v /= 10) b[--len] = bytes1(uint8(48 + (v % 10)));
        return string(b);
    }
}
