// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import "./ReceiptBase.sol";

/// @title AggregatedReceipt
/// @notice Receipts from ONE aggregated EZKL proof of a whole sliced model (dsperse, issue 6), with the same
/// defences as linked receipts (ReceiptBase: per-prover receipt ids, commit-reveal).
///
/// The aggregate's public instances are [16 accumulator limbs | every inner proof's instances, in order].
/// The aggregated verifier checks the proof and the accumulator (the inner proofs' deferred pairing).
/// The model's Layout adds what binds the proof to the job:
///   * the model input (slice 0's public input) and output (the last slice's public output) are read
///     from fixed positions of the instance vector and stored;
///   * `links` lists instance pairs that must be equal: the Poseidon hashes of a boundary tensor as slice i
///     output it and slice i+1 read it, for boundaries not linked inside the aggregation circuit;
///   * a submitter may pin the job's input hash (keccak of the input field elements) in advance.
/// Layout values come from dsperse.aggregation.receipt.ReceiptLayout and are fixed when the model is
/// registered, together with the verifier (whose verifying key pins every slice circuit).
abstract contract AggregatedReceipt is ReceiptBase {
    struct Layout {
        uint32 numInstances;
        uint32 inputStart;
        uint32 numInputs;
        uint32 outputStart;
        uint32 numOutputs;
        uint256[] links; // pairs of instance positions that must hold equal values
    }

    mapping(bytes32 => Layout) internal layouts; // by model id; numInstances == 0: not an aggregated model

    /// @notice The instance layout of an aggregated model (all zero when `modelId` is not one).
    function getLayout(bytes32 modelId) external view returns (Layout memory) {
        return layouts[modelId];
    }

    /// Refuse a layout that reads outside the instance vector.
    function _checkLayout(Layout calldata lay) internal pure {
        require(lay.links.length % 2 == 0, "links must be pairs");
        require(
            uint256(lay.inputStart) + lay.numInputs <= lay.numInstances
                && uint256(lay.outputStart) + lay.numOutputs <= lay.numInstances,
            "layout out of range"
        );
        require(lay.numOutputs > 0, "no public outputs");
        // the first 16 instances are the accumulator's limbs; a receipt must state its input
        require(lay.numInputs > 0 && lay.inputStart >= 16 && lay.outputStart >= 16, "layout must state the input after the accumulator");
        for (uint256 i = 0; i < lay.links.length; i++) {
            require(lay.links[i] < lay.numInstances, "link out of range");
        }
    }

    /// Check the aggregate of `jobId` against the model's layout and `verifier`, then store the sender's
    /// receipt. `expectedInputHash` = 0 skips the input pin. Reverts naming the first failed check: job reuse,
    /// instance count, input pin, a boundary link, the proof, the sender's earlier commitment.
    function _submitAggregated(
        bytes32 jobId,
        bytes32 modelId,
        address verifier,
        bytes32 expectedInputHash,
        bytes calldata proof,
        uint256[] calldata instances
    ) internal returns (bytes32 rid) {
        Layout storage lay = layouts[modelId];
        rid = receiptId(msg.sender, jobId);
        _requireFresh(rid);
        require(instances.length == lay.numInstances, "instance count mismatch");
        uint256 inStart = lay.inputStart;
        bytes32 inputHash = keccak256(abi.encodePacked(instances[inStart:inStart + lay.numInputs]));
        require(expectedInputHash == bytes32(0) || expectedInputHash == inputHash, "input differs from the job's");
        uint256[] storage links = lay.links;
        for (uint256 i = 0; i < links.length; i += 2) {
            if (instances[links[i]] != instances[links[i + 1]]) {
                revert(string.concat("boundary mismatch at link ", _itoa(i / 2)));
            }
        }
        require(_verifies(verifier, proof, instances, "aggregate"), "aggregate proof rejected");
        _requireCommitment(jobId, modelId, keccak256(abi.encode(bytes32(0), keccak256(proof))), block.number);
        uint256 outStart = lay.outputStart;
        _storeReceipt(rid, jobId, modelId, inputHash, instances[outStart:outStart + lay.numOutputs]);
    }
}
