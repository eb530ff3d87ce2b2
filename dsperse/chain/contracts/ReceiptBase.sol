// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import "./IProofOfInference.sol";

/// @title ReceiptBase
/// @notice What every dsperse receipt shares, whatever kind of proof stored it: the record, where it is kept,
/// the prover's commit-reveal, the event, the getters and the field helpers.
///
/// Identities: a receipt is stored under receiptId(prover, jobId), so a sender taking a job id first blocks
/// nobody; a prover commits to its proofs (commitmentOf) in an earlier block than it reveals them, so proofs
/// copied from the mempool do not make the copier the prover of record.
abstract contract ReceiptBase is IReceipts {
    /// BN254 scalar field modulus: instances are elements of this field.
    uint256 internal constant FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant HALF_FIELD = FIELD / 2;
    bytes4 internal constant VERIFY_SELECTOR = bytes4(keccak256("verifyProof(bytes,uint256[])"));

    struct Receipt {
        bytes32 modelId;
        bytes32 jobId;
        bytes32 inputHash;
        bytes32 outputHash;
        int256[] outputs;
        address prover;
        uint256 blockNumber;
    }

    mapping(bytes32 => Receipt) internal receipts; // by receiptId(prover, jobId)
    mapping(address => mapping(bytes32 => uint256)) public commitments; // prover => commitment => block

    event Committed(address indexed prover, bytes32 indexed commitment);
    event ReceiptStored(
        bytes32 indexed receiptId,
        bytes32 indexed jobId,
        address indexed prover,
        bytes32 modelId,
        bytes32 inputHash,
        bytes32 outputHash,
        int256[] outputs
    );

    /// @notice Where the receipt of `jobId` by `prover` is stored: one job id per prover, on this chain and
    /// this contract. Another sender taking the same job id first blocks nobody.
    function receiptId(address prover, bytes32 jobId) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), prover, jobId));
    }

    /// @notice The commitment a prover posts (in an earlier block) before its proofs: it binds the prover, the
    /// job, the model and every proof, so whoever copies the proofs from the mempool (and the commitment too)
    /// has no commitment of their own and cannot take the receipt. `proofsDigest` chains keccak256 of each
    /// proof in order: d = 0; d = keccak256(abi.encode(d, keccak256(proof_i))) (one step for an aggregate).
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

    // ------------------------------------------------------------------------------------------- internals

    /// A prover has one receipt per job id: refuse a replay.
    function _requireFresh(bytes32 rid) internal view {
        require(receipts[rid].blockNumber == 0, "job id already used");
    }

    /// The sender committed to exactly these proofs of this job and model in a block before `beforeBlock`.
    function _requireCommitment(bytes32 jobId, bytes32 modelId, bytes32 proofsDigest, uint256 beforeBlock)
        internal
        view
    {
        uint256 committedAt = commitments[msg.sender][commitmentOf(msg.sender, jobId, modelId, proofsDigest)];
        require(committedAt != 0 && committedAt < beforeBlock, "no earlier commitment by this prover");
    }

    /// Ask `verifier` about one proof. A call that failed with (almost) no gas left ran out of gas (EIP-150
    /// keeps 1/64 back): revert saying so rather than blaming an honest proof.
    function _verifies(address verifier, bytes calldata proof, uint256[] calldata instances, string memory kind)
        internal
        view
        returns (bool)
    {
        uint256 gasBefore = gasleft();
        (bool ok, bytes memory ret) = verifier.staticcall(abi.encodeWithSelector(VERIFY_SELECTOR, proof, instances));
        if (!ok && gasleft() <= gasBefore / 63) revert(string.concat("out of gas in ", kind, " verifier"));
        return ok && ret.length == 32 && abi.decode(ret, (bool));
    }

    /// Store the sender's receipt: `outs` (field elements) de-mapped to signed integers, hashed as
    /// keccak256(abi.encodePacked(int256[])).
    function _storeReceipt(bytes32 rid, bytes32 jobId, bytes32 modelId, bytes32 inputHash, uint256[] calldata outs)
        internal
    {
        int256[] memory outputs = new int256[](outs.length);
        for (uint256 j = 0; j < outs.length; j++) {
            outputs[j] = _signed(outs[j]);
        }
        Receipt storage r = receipts[rid];
        r.modelId = modelId;
        r.jobId = jobId;
        r.inputHash = inputHash;
        r.outputHash = keccak256(abi.encodePacked(outputs));
        r.outputs = outputs;
        r.prover = msg.sender;
        r.blockNumber = block.number;
        emit ReceiptStored(rid, jobId, msg.sender, modelId, inputHash, r.outputHash, outputs);
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
