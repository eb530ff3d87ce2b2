// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

/// @notice Test double of ProofOfInference's two views the market reads (getModel, getReceipt), with
/// setters: market tests on anvil need models and receipts without minutes of EZKL proving. The real
/// registry's receipts are exercised in test_receipts.py.
contract MockRegistry {
    struct M {
        uint32 numInputs;
        address[] verifiers;
        uint32 outputScale;
        uint32 numOutputs;
        address registrant;
    }

    struct R {
        bytes32 jobId;
        bytes32 modelId;
        bytes32 inputHash;
        bytes32 outputHash;
        address prover;
    }

    mapping(bytes32 => M) internal models;
    mapping(bytes32 => R) internal receipts;

    /// Register `modelId` as the caller (the registrant), like ProofOfInference.registerModel.
    function setModel(bytes32 modelId, address[] calldata verifiers, uint32 outputScale, uint32 numOutputs) external {
        models[modelId] = M(1, verifiers, outputScale, numOutputs, msg.sender);
    }

    /// Make `modelId` a suffix part (numInputs 0, as ProofOfInference.registerPart) or give it n inputs.
    function setInputs(bytes32 modelId, uint32 n) external {
        models[modelId].numInputs = n;
    }

    /// Store a receipt as if its proofs verified: outputHash = keccak256(abi.encodePacked(outputs)).
    function setReceipt(bytes32 rid, bytes32 modelId, bytes32 inputHash, int256[] calldata outputs) external {
        receipts[rid] = R(rid, modelId, inputHash, keccak256(abi.encodePacked(outputs)), msg.sender);
    }

    /// Receipts stored here are for the job named by their id (a market job id names its own receipt).
    function receiptJob(bytes32 rid) external view returns (bytes32) {
        return receipts[rid].jobId;
    }

    function getReceipt(bytes32 rid)
        external
        view
        returns (bytes32, bytes32, bytes32, int256[] memory, address, uint256)
    {
        R storage r = receipts[rid];
        return (r.modelId, r.inputHash, r.outputHash, new int256[](0), r.prover, r.prover == address(0) ? 0 : 1);
    }

    function getModel(bytes32 modelId)
        external
        view
        returns (address[] memory, uint32, uint32, uint32, uint32, address)
    {
        M storage m = models[modelId];
        return (m.verifiers, 7, m.outputScale, m.numInputs, m.numOutputs, m.registrant);
    }
}

/// Stands in for one slice verifier: its runtime code differs per `tag` (an immutable), so its codehash
/// names a circuit, and two deployments with the same tag share a codehash, as two deployments of one
/// EZKL verifier do.
contract MockSlice {
    uint256 public immutable tag;

    constructor(uint256 t) {
        tag = t;
    }
}
