// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title AggregatedReceipt
/// @notice One receipt per job from ONE aggregated EZKL proof of a whole sliced model (dsperse, issue 6).
///
/// The aggregate's public instances are [16 accumulator limbs | every inner proof's instances, in order].
/// The aggregated verifier checks the proof and the accumulator (the inner proofs' deferred pairing).
/// This contract adds what binds the proof to the job:
///   * the model input (slice 0's public input) and output (the last slice's public output) are read
///     from fixed positions of the instance vector and stored;
///   * `links` lists instance pairs that must be equal: the Poseidon hashes of a boundary tensor as slice i
///     output it and slice i+1 read it, for boundaries not linked inside the aggregation circuit;
///   * a submitter may pin the job's input hash (keccak of the input field elements) in advance.
/// Layout values come from dsperse.aggregation.receipt.ReceiptLayout and are fixed at deployment,
/// together with the verifier (whose verifying key pins every slice circuit).
contract AggregatedReceipt {
    uint256 internal constant FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant HALF_FIELD = FIELD / 2;
    bytes4 internal constant VERIFY_SELECTOR = bytes4(keccak256("verifyProof(bytes,uint256[])"));

    address public immutable verifier;
    bytes32 public immutable modelId;
    uint256 public immutable numInstances;
    uint256 public immutable inputStart;
    uint256 public immutable numInputs;
    uint256 public immutable outputStart;
    uint256 public immutable numOutputs;
    uint256[] internal links;

    struct Receipt {
        bytes32 inputHash;
        bytes32 outputHash;
        int256[] outputs;
        address prover;
        uint256 blockNumber;
    }

    mapping(bytes32 => Receipt) internal receipts;

    event ReceiptStored(
        bytes32 indexed jobId,
        bytes32 indexed modelId,
        address indexed prover,
        bytes32 inputHash,
        bytes32 outputHash,
        int256[] outputs
    );

    constructor(
        address verifier_,
        bytes32 modelId_,
        uint256 numInstances_,
        uint256 inputStart_,
        uint256 numInputs_,
        uint256 outputStart_,
        uint256 numOutputs_,
        uint256[] memory links_
    ) {
        require(verifier_.code.length > 0, "verifier has no code");
        require(links_.length % 2 == 0, "links must be pairs");
        require(inputStart_ + numInputs_ <= numInstances_ && outputStart_ + numOutputs_ <= numInstances_, "layout out of range");
        require(numOutputs_ > 0, "no public outputs");
        for (uint256 i = 0; i < links_.length; i++) {
            require(links_[i] < numInstances_, "link out of range");
        }
        verifier = verifier_;
        modelId = modelId_;
        numInstances = numInstances_;
        inputStart = inputStart_;
        numInputs = numInputs_;
        outputStart = outputStart_;
        numOutputs = numOutputs_;
        links = links_;
    }

    /// @notice Check the aggregate and store the receipt of `jobId`. `expectedInputHash` = 0 skips the input pin.
    /// Reverts naming the first failed check: job reuse, instance count, input pin, a boundary link, the proof.
    function submit(bytes32 jobId, bytes32 expectedInputHash, bytes calldata proof, uint256[] calldata instances)
        external
    {
        require(receipts[jobId].blockNumber == 0, "job id already used");
        require(instances.length == numInstances, "instance count mismatch");
        bytes32 inputHash = keccak256(abi.encodePacked(instances[inputStart:inputStart + numInputs]));
        require(expectedInputHash == bytes32(0) || expectedInputHash == inputHash, "input differs from the job's");
        for (uint256 i = 0; i < links.length; i += 2) {
            if (instances[links[i]] != instances[links[i + 1]]) {
                revert(string.concat("boundary mismatch at link ", _itoa(i / 2)));
            }
        }
        (bool ok, bytes memory ret) = verifier.staticcall(abi.encodeWithSelector(VERIFY_SELECTOR, proof, instances));
        require(ok && ret.length == 32 && abi.decode(ret, (bool)), "aggregate proof rejected");

        int256[] memory outputs = new int256[](numOutputs);
        for (uint256 j = 0; j < numOutputs; j++) {
            outputs[j] = _signed(instances[outputStart + j]);
        }
        bytes32 outputHash = keccak256(abi.encodePacked(outputs));
        Receipt storage r = receipts[jobId];
        r.inputHash = inputHash;
        r.outputHash = outputHash;
        r.outputs = outputs;
        r.prover = msg.sender;
        r.blockNumber = block.number;
        emit ReceiptStored(jobId, modelId, msg.sender, inputHash, outputHash, outputs);
    }

    function getReceipt(bytes32 jobId)
        external
        view
        returns (bytes32 inputHash, bytes32 outputHash, int256[] memory outputs, address prover, uint256 blockNumber)
    {
        Receipt storage r = receipts[jobId];
        return (r.inputHash, r.outputHash, r.outputs, r.prover, r.blockNumber);
    }

    function getLinks() external view returns (uint256[] memory) {
        return links;
    }

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
