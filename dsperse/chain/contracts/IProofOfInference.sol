// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @notice A store of dsperse receipts: one per (prover, job), read by its receipt id. A receipt exists only
/// after its proofs verified on chain (every slice and link, or one aggregate and its layout), so its
/// outputHash is the true output of the model on the input behind inputHash. Implemented by ReceiptBase.
interface IReceipts {
    /// Every field is zero when there is no receipt under `receiptId` (check blockNumber or prover).
    function getReceipt(bytes32 receiptId) external view returns (
        bytes32 modelId, bytes32 inputHash, bytes32 outputHash, int256[] memory outputs, address prover, uint256 blockNumber
    );

    /// The job id a receipt was stored for (zero when there is none).
    function receiptJob(bytes32 receiptId) external view returns (bytes32);
}

/// @notice The view of the ProofOfInference registry that the market reads: receipts of both kinds (linked
/// slice proofs and aggregated proofs) and the models they are for.
interface IProofOfInference is IReceipts {
    /// `verifiers` is empty when `modelId` is unknown (an aggregated model has one: the aggregate's).
    function getModel(bytes32 modelId) external view returns (
        address[] memory verifiers, uint32 inputScale, uint32 outputScale, uint32 numInputs, uint32 numOutputs, address registrant
    );
}
