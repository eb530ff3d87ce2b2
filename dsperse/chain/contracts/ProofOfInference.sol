// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import "./AggregatedReceipt.sol";

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
///
/// The registry also keeps aggregated receipts (AggregatedReceipt): a model registered with registerAggregated
/// has one verifier (the aggregate's) and an instance layout, and its receipts land through submitAggregated.
/// Both kinds share the receipt store, its ids and the commit-reveal (ReceiptBase), so a market reads either
/// from this one address.
contract ProofOfInference is AggregatedReceipt, IProofOfInference {
    uint256 internal constant G1_BYTES = 64;

    /// One edge of the slice graph: `length` bytes (whole 64-byte columns) of the producer's proof at
    /// `producerOffset` must equal those of the consumer's proof at `consumerOffset`.
    struct Link {
        uint32 producer;
        uint32 producerOffset;
        uint32 consumer;
        uint32 consumerOffset;
        uint32 length;
    }

    /// A model's fixed-point scales and public I/O counts: how many public input elements open slice 0's
    /// instances (0 for a suffix part) and output elements close the last slice's.
    struct IO {
        uint32 inputScale;
        uint32 outputScale;
        uint32 numInputs;
        uint32 numOutputs;
    }

    struct Model {
        bytes32 label;
        bool part; // a suffix (registerPart): its first input is committed, its receipts bind no input
        address[] verifiers;
        Link[] links;
        uint32 inputScale;
        uint32 outputScale;
        uint32 numInputs;
        uint32 numOutputs;
        bool aggregated; // registered with registerAggregated: receipts come from submitAggregated only
        address registrant;
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
    mapping(bytes32 => Pending) internal pendings; // by receiptId(prover, jobId)
    mapping(bytes32 => mapping(uint256 => bytes32)) internal carried; // receiptId => link => keccak(producer bytes)

    event ModelRegistered(
        bytes32 indexed modelId,
        bytes32 indexed label,
        address indexed registrant,
        address[] verifiers,
        IO io,
        Link[] links
    );
    event ReceiptProgress(bytes32 indexed receiptId, bytes32 indexed jobId, address indexed prover, uint256 next);

    // ---------------------------------------------------------------------------------------------- models

    /// @notice The registry id of a model: a hash of everything that defines it (its off-chain label, the code
    /// of its slice verifiers, scales, public I/O counts and link table). Ids are content addresses: nobody can
    /// take another model's id with other verifiers, scales or links, and the same content always gets the
    /// same id, whoever registers it.
    function modelKey(bytes32 label, address[] calldata verifiers, IO calldata io, Link[] calldata links)
        public
        view
        returns (bytes32)
    {
        bytes32[] memory code = new bytes32[](verifiers.length);
        for (uint256 i = 0; i < verifiers.length; i++) {
            code[i] = verifiers[i].codehash;
        }
        return keccak256(abi.encode(label, code, io, links));
    }

    /// @notice Register a model under its content id (see modelKey): `label` is the off-chain model id
    /// (sha256 over the slices' verifying keys), `verifiers` the slice verifiers in topological order, `io`
    /// the fixed-point scales and how many public inputs (slice 0: the input's elements, or its Poseidon hash)
    /// and outputs (last slice) it has, and `links` its link table (one entry per edge). Every link must run from an earlier
    /// slice to a later one and cover whole columns, and every slice after the first must consume at least one
    /// link. A model must state its input (numInputs > 0): with a committed or private first input, a receipt
    /// would bind no input at all (every inputHash would be keccak of nothing). Returns the id.
    function registerModel(bytes32 label, address[] calldata verifiers, IO calldata io, Link[] calldata links)
        external
        returns (bytes32 modelId)
    {
        require(io.numInputs > 0, "no public inputs: the model input must be public or hashed (a suffix: registerPart)");
        return _registerLinked(label, verifiers, io, links);
    }

    /// @notice Register a suffix of a model (PoSP's always-proven part), which starts at a committed tensor the
    /// rest of the model made: its receipts state an output, not an input (numInputs must be 0), and
    /// isPart(modelId) says so, so nobody can pass one off as a whole-model receipt.
    function registerPart(bytes32 label, address[] calldata verifiers, IO calldata io, Link[] calldata links)
        external
        returns (bytes32 modelId)
    {
        require(io.numInputs == 0, "a part states no input: numInputs must be 0 (a whole model: registerModel)");
        modelId = _registerLinked(label, verifiers, io, links);
        models[modelId].part = true;
    }

    /// @notice True for a suffix registered with registerPart.
    function isPart(bytes32 modelId) external view returns (bool) {
        return models[modelId].part;
    }

    function _registerLinked(bytes32 label, address[] calldata verifiers, IO calldata io, Link[] calldata links)
        internal
        returns (bytes32 modelId)
    {
        require(verifiers.length > 0, "no slice verifiers");
        modelId = modelKey(label, verifiers, io, links);
        Model storage m = _record(modelId, label, verifiers, io);
        uint256 n = verifiers.length;
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
        emit ModelRegistered(modelId, label, msg.sender, verifiers, io, links);
    }

    /// @notice The registry id of an aggregated model: a hash of its label, the code of its aggregate verifier,
    /// its scales and its instance layout (domain-separated from modelKey).
    function aggregatedKey(bytes32 label, address verifier, uint32 inputScale, uint32 outputScale, Layout calldata lay)
        public
        view
        returns (bytes32)
    {
        return keccak256(abi.encode("dsperse.aggregated", label, verifier.codehash, inputScale, outputScale, lay));
    }

    /// @notice Register a model proven by ONE aggregated proof under its content id (aggregatedKey): `verifier`
    /// checks the aggregate, `lay` says where its input and output are and which instances must be equal.
    /// Its receipts are stored with submitAggregated. Returns the id.
    function registerAggregated(bytes32 label, address verifier, uint32 inputScale, uint32 outputScale, Layout calldata lay)
        external
        returns (bytes32 modelId)
    {
        _checkLayout(lay);
        modelId = aggregatedKey(label, verifier, inputScale, outputScale, lay);
        address[] memory verifiers = new address[](1);
        verifiers[0] = verifier;
        IO memory io = IO(inputScale, outputScale, lay.numInputs, lay.numOutputs);
        Model storage m = _record(modelId, label, verifiers, io);
        m.aggregated = true;
        layouts[modelId] = lay;
        emit ModelRegistered(modelId, label, msg.sender, verifiers, io, new Link[](0));
    }

    /// Write a new model's common fields; refuses a zero label, a verifier without code, no outputs, a taken id.
    function _record(bytes32 modelId, bytes32 label, address[] memory verifiers, IO memory io)
        internal
        returns (Model storage m)
    {
        require(label != bytes32(0), "model label is zero");
        for (uint256 i = 0; i < verifiers.length; i++) {
            require(verifiers[i].code.length > 0, "verifier has no code");
        }
        require(io.numOutputs > 0, "no public outputs");
        m = models[modelId];
        require(m.verifiers.length == 0, "model already registered");
        m.label = label;
        m.verifiers = verifiers;
        m.inputScale = io.inputScale;
        m.outputScale = io.outputScale;
        m.numInputs = io.numInputs;
        m.numOutputs = io.numOutputs;
        m.registrant = msg.sender;
    }

    // -------------------------------------------------------------------------------------------- receipts

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
        require(!m.aggregated, "aggregated model: use submitAggregated");
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

    /// @notice Step 2 for an aggregated model (registerAggregated), in one transaction: the aggregate proof and
    /// its instances. `expectedInputHash` = 0 skips the input pin. The commitment's proofsDigest is
    /// keccak256(abi.encode(bytes32(0), keccak256(proof))). Returns the receipt id.
    function submitAggregated(
        bytes32 jobId,
        bytes32 modelId,
        bytes32 expectedInputHash,
        bytes calldata proof,
        uint256[] calldata instances
    ) external returns (bytes32) {
        Model storage m = models[modelId];
        require(m.verifiers.length > 0, "unknown model");
        require(m.aggregated, "not an aggregated model");
        return _submitAggregated(jobId, modelId, m.verifiers[0], expectedInputHash, proof, instances);
    }

    /// Start (first == 0: over) or continue the pending receipt `rid`.
    function _begin(bytes32 rid, bytes32 modelId, uint256 first) internal returns (Pending storage p) {
        _requireFresh(rid);
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
            if (!_verifies(verifiers[first + i], proofs[i], instances[i], "slice")) {
                revert(string.concat("slice proof rejected: ", _itoa(first + i)));
            }
        }
    }

    /// The last part landed: check the commitment, then store the receipt (output = the last slice's last
    /// numOutputs instances, de-mapped to signed integers) and drop the pending state.
    function _store(bytes32 rid, bytes32 jobId, bytes32 modelId, uint256[] calldata last) internal {
        Pending storage p = pendings[rid];
        _requireCommitment(jobId, modelId, p.digest, p.startBlock);
        uint256 numOutputs = models[modelId].numOutputs;
        require(last.length >= numOutputs, "too few public outputs");
        _storeReceipt(rid, jobId, modelId, p.inputHash, last[last.length - numOutputs:]);
        delete pendings[rid];
    }

    /// @notice Progress of a receipt submitted in parts: the first slice still missing (0: none pending).
    function pendingNext(address prover, bytes32 jobId) external view returns (uint256) {
        return pendings[receiptId(prover, jobId)].next;
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
}
