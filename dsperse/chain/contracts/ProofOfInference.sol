// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title ProofOfInference
/// @notice On-chain receipts for sliced, EZKL-proven inference runs (dsperse).
/// A model is a list of per-slice Halo2 verifiers in topological order plus its link table. The slices form a
/// graph: slice 0 alone reads the model input (public instances), the last slice alone writes the model output
/// (public instances), and every tensor passed between two slices (an edge) is polycommit on both sides.
/// A receipt is stored for a job only if every link holds and every verifier accepts.
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
        bytes32 inputHash;
        bytes32 outputHash;
        int256[] outputs;
        address prover;
        uint256 blockNumber;
    }

    mapping(bytes32 => Model) internal models;
    mapping(bytes32 => Receipt) internal receipts;

    event ModelRegistered(
        bytes32 indexed modelId,
        address indexed registrant,
        address[] verifiers,
        uint32 inputScale,
        uint32 outputScale,
        uint32 numInputs,
        uint32 numOutputs,
        Link[] links
    );
    event ReceiptStored(
        bytes32 indexed jobId,
        bytes32 indexed modelId,
        address indexed prover,
        bytes32 inputHash,
        bytes32 outputHash,
        int256[] outputs
    );

    /// @notice Register a model: its id (sha256 over the slices' verifying keys), its slice verifiers in
    /// topological order, its fixed-point scales, how many public inputs (slice 0) and outputs (last slice) it
    /// has, and its link table (one entry per edge). Every link must run from an earlier slice to a later one
    /// and cover whole columns, and every slice after the first must consume at least one link.
    function registerModel(
        bytes32 modelId,
        address[] calldata verifiers,
        uint32 inputScale,
        uint32 outputScale,
        uint32 numInputs,
        uint32 numOutputs,
        Link[] calldata links
    ) external {
        require(modelId != bytes32(0), "model id is zero");
        require(models[modelId].verifiers.length == 0, "model already registered");
        uint256 n = verifiers.length;
        require(n > 0, "no slice verifiers");
        for (uint256 i = 0; i < n; i++) {
            require(verifiers[i].code.length > 0, "verifier has no code");
        }
        require(numOutputs > 0, "no public outputs");
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
        m.verifiers = verifiers;
        m.inputScale = inputScale;
        m.outputScale = outputScale;
        m.numInputs = numInputs;
        m.numOutputs = numOutputs;
        m.registrant = msg.sender;
        emit ModelRegistered(modelId, msg.sender, verifiers, inputScale, outputScale, numInputs, numOutputs, links);
    }

    /// @notice Store the receipt of job `jobId` after checking, in this order: slice count, every link of the
    /// model's link table (all columns), every slice proof. Reverts with a reason naming the first check that fails.
    function submit(bytes32 jobId, bytes32 modelId, bytes[] calldata proofs, uint256[][] calldata instances) external {
        Model storage m = models[modelId];
        uint256 n = m.verifiers.length;
        require(n > 0, "unknown model");
        require(receipts[jobId].blockNumber == 0, "job id already used");

        // 1. one proof and one instance list per slice
        require(proofs.length == n && instances.length == n, "slice count mismatch");

        // 2. links: every edge's producer and consumer commitments agree on every column
        _checkLinks(m.links, proofs);

        // 3. every slice verifier accepts its proof
        for (uint256 i = 0; i < n; i++) {
            uint256 gasBefore = gasleft();
            (bool ok, bytes memory ret) =
                m.verifiers[i].staticcall(abi.encodeWithSelector(VERIFY_SELECTOR, proofs[i], instances[i]));
            // EIP-150 keeps 1/64 of the gas back: a call that failed with (almost) none left ran out of gas;
            // say so rather than blaming an honest proof.
            if (!ok && gasleft() <= gasBefore / 63) revert("out of gas in slice verifier");
            if (!ok || ret.length != 32 || abi.decode(ret, (bool)) != true) {
                revert(string.concat("slice proof rejected: ", _itoa(i)));
            }
        }

        _store(jobId, modelId, m, instances);
    }

    /// Compare each link's two calldata byte ranges word by word; revert at the first edge that differs.
    function _checkLinks(Link[] storage links, bytes[] calldata proofs) internal view {
        for (uint256 i = 0; i < links.length; i++) {
            Link memory l = links[i];
            bytes calldata out = proofs[l.producer];
            bytes calldata inp = proofs[l.consumer];
            uint256 a = l.producerOffset;
            uint256 b = l.consumerOffset;
            uint256 len = l.length;
            require(out.length >= a + len && inp.length >= b + len, "proof too short");
            for (uint256 j = 0; j < len; j += 32) {
                if (bytes32(out[a + j:a + j + 32]) != bytes32(inp[b + j:b + j + 32])) {
                    revert(string.concat("link mismatch on edge ", _itoa(i)));
                }
            }
        }
    }

    /// Store the receipt: input = slice 0's first numInputs instances, output = the last slice's
    /// last numOutputs instances, de-mapped to signed integers (kept in their own frame: stack depth).
    function _store(bytes32 jobId, bytes32 modelId, Model storage m, uint256[][] calldata instances) internal {
        // The verifiers accepted these instance lists, so their lengths already fit; kept as a guard.
        require(instances[0].length >= m.numInputs, "too few public inputs");
        uint256[] calldata last = instances[instances.length - 1];
        require(last.length >= m.numOutputs, "too few public outputs");
        int256[] memory outputs = new int256[](m.numOutputs);
        uint256 start = last.length - m.numOutputs;
        for (uint256 j = 0; j < outputs.length; j++) {
            outputs[j] = _signed(last[start + j]);
        }
        bytes32 inputHash = keccak256(abi.encodePacked(instances[0][0:m.numInputs]));
        bytes32 outputHash = keccak256(abi.encodePacked(outputs));
        Receipt storage r = receipts[jobId];
        r.modelId = modelId;
        r.inputHash = inputHash;
        r.outputHash = outputHash;
        r.outputs = outputs;
        r.prover = msg.sender;
        r.blockNumber = block.number;
        emit ReceiptStored(jobId, modelId, msg.sender, inputHash, outputHash, outputs);
    }

    /// @notice The stored receipt of `jobId`; every field is zero when there is none (check blockNumber).
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
        )
    {
        Receipt storage r = receipts[jobId];
        return (r.modelId, r.inputHash, r.outputHash, r.outputs, r.prover, r.blockNumber);
    }

    function hasReceipt(bytes32 jobId) external view returns (bool) {
        return receipts[jobId].blockNumber != 0;
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
