"""One exception root, with a family per stage.

Every error names what broke and what the user can do about it, and carries
its context as attributes so callers can react without parsing messages.
"""
from __future__ import annotations


class DsperseError(Exception):
    """Root of every error this library raises on purpose.

    The ``dsperse`` command prints one of these as a single ``error: ...`` line on stderr and exits
    with :attr:`exit_code`: 2 when the request itself cannot be done (bad arguments or data, a missing
    file, a check that fails), 1 when the environment failed it (a node down, a tool missing), so a
    retry may succeed. Argparse's own usage errors exit 2 as well.
    """

    exit_code: int = 2


class UsageError(DsperseError, ValueError):
    """Raised when a command or call is given arguments that do not fit together (a flag that needs another)."""


class InputDataError(DsperseError, ValueError):
    """Raised when input data (a JSON or .npy file, a list of rows) cannot be read as numbers."""

    def __init__(self, source, reason: str):
        self.source, self.reason = source, reason
        super().__init__(f"{source}: not usable input data ({reason}). "
                         'Give JSON {"input_data": [[...numbers...]]}, a list of numbers, or a .npy array.')


class ConfigError(DsperseError, ValueError):
    """Raised when a setting (a config field, a pipeline spec key, a $DSPERSE_* variable) has a bad name or value."""


# -- model loading -----------------------------------------------------------
class ModelError(DsperseError):
    """Raised when an ONNX model cannot be used at all."""


class MalformedModelError(ModelError):
    """Raised when a file is not a valid ONNX model (truncated, corrupt, fails onnx.checker)."""

    def __init__(self, path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: not a valid ONNX model ({reason}). Re-export it, e.g. with torch.onnx.export.")


class UnsupportedOpError(ModelError):
    """Raised when a model uses ONNX ops that EZKL 22.3 cannot turn into a circuit."""

    def __init__(self, path, ops: list[str]):
        self.path, self.ops = path, sorted(set(ops))
        super().__init__(
            f"{path}: EZKL cannot prove these ops: {', '.join(self.ops)}. "
            "Replace them in the model, or keep them outside the proven part."
        )


class DynamicShapeError(ModelError):
    """Raised when an input has a symbolic dimension that cannot be fixed automatically."""

    def __init__(self, name: str, shape):
        self.name, self.shape = name, shape
        super().__init__(
            f"input {name!r} has dynamic shape {shape}; circuits need static shapes. "
            "Pass input_shape=(...) (CLI: --input-shape) to fix it."
        )


class InputShapeError(ModelError):
    """Raised when the data given for a model does not fit its input shape."""

    def __init__(self, expected, got, detail: str = ""):
        self.expected, self.got = tuple(expected), got
        super().__init__(f"input has {got} but the model expects shape {self.expected}{detail}")


# -- slicing -------------------------------------------------------------------
class SlicingError(DsperseError):
    """Raised when a model cannot be cut as asked."""


# -- circuits and keys ---------------------------------------------------------
class CircuitError(DsperseError):
    """Raised when EZKL fails to build settings, compile or set up a slice circuit."""


class MissingArtifactError(DsperseError):
    """Raised when a file a stage needs (key, SRS, witness, proof) is not there."""

    def __init__(self, what: str, path):
        self.what, self.path = what, path
        super().__init__(f"missing {what}: {path}. Run the stage that makes it (see `dsperse --help`).")


class CorruptArtifactError(DsperseError, ValueError):
    """Raised when a file dsperse wrote (plan.json, run.json, manifest.json) is not valid JSON or lacks fields."""

    def __init__(self, what: str, path, reason: str):
        self.what, self.path, self.reason = what, path, reason
        super().__init__(f"{path}: not a usable {what} ({reason}). Make it again with the stage that writes it, "
                         "or restore the file.")


class SRSError(DsperseError):
    """Raised when no SRS of the needed size can be found or made."""


# -- proving and verification --------------------------------------------------
class ProofError(DsperseError):
    """Raised when witness generation or proving fails."""


class VerificationError(DsperseError):
    """Raised when a proof, a link or an output check does not hold."""

    def __init__(self, message: str, slice_index: int | None = None):
        self.slice_index = slice_index
        super().__init__(message)


class LinkError(VerificationError):
    """Raised when slice i's output commitment is not slice i+1's input commitment."""


# -- aggregation ---------------------------------------------------------------
class AggregationError(DsperseError):
    """Raised when an aggregation plan cannot run, e.g. no node has the memory."""


# -- chain ---------------------------------------------------------------------
class ChainError(DsperseError):
    """Raised for chain failures."""


class ChainUnavailableError(ChainError):
    """Raised when the RPC endpoint cannot be reached."""

    exit_code = 1


class TransactionRevertedError(ChainError):
    """Raised when a transaction reverts; carries the revert reason when the chain gives one."""

    def __init__(self, reason: str, tx_hash: str | None = None):
        self.reason, self.tx_hash = reason, tx_hash
        super().__init__(f"transaction reverted: {reason}")


class OutOfGasError(ChainError):
    """Raised when a transaction needs more gas than allowed (usually: more than a block holds)."""

    def __init__(self, what: str, needed: int | None, limit: int | None, tx_hash: str | None = None):
        self.needed, self.limit, self.tx_hash = needed, limit, tx_hash
        if needed and limit:
            amount = f"needs {needed:,} gas, over the limit of {limit:,}"
        elif limit:
            amount = f"needs more gas than the limit of {limit:,}"
        else:
            amount = "ran out of gas"
        super().__init__(
            f"out of gas while {what}: {amount}. Use fewer slices per receipt or a chain with a higher block gas limit."
        )


class ToolchainError(DsperseError):
    """Raised when anvil, cast or solc is missing; says how to install them."""

    exit_code = 1


# -- proof of sampling ---------------------------------------------------------
class SamplingError(DsperseError, ValueError):
    """Raised for bad Proof-of-Sampling parameters (probabilities, shares, costs, strategies).

    Also a ValueError, which is what these checks raised before they had a family of their own.
    """


class MarketError(SamplingError):
    """Raised when a PoSP market call cannot be made as asked (a bad id, address or amount; a missing value)."""


class MarketUsageError(MarketError, UsageError):
    """Raised when a market command is given inconsistent arguments (e.g. --always-proven-from without --part-model)."""


# -- proof ledger ----------------------------------------------------------------
class LedgerError(DsperseError):
    """Raised when the ledger cannot be read or written (a corrupt file, a directory we cannot write)."""

    def __init__(self, message: str, path=None):
        self.path = path
        super().__init__(message)


# -- Ray clusters ----------------------------------------------------------------
class ClusterError(DsperseError, ValueError):
    """Raised when the Ray cluster cannot run the provers as asked, or a cluster file is invalid."""


class NoGPUError(ClusterError):
    """Raised when GPU provers are asked for on a cluster that has no GPU."""

    def __init__(self, resources):
        self.resources = dict(resources)
        super().__init__(
            f"device='gpu' but the Ray cluster has no GPU (CPU={resources.get('CPU', 0):g}, GPU=0). "
            "Use device='cpu' or 'auto' (--device cpu|auto), or add GPU nodes (min_workers >= 1 for a GPU group)."
        )


class ProverPlacementError(ClusterError):
    """Raised when prover actors could not be started within the timeout (resources never free)."""


class ClusterConfigError(ClusterError):
    """Raised when a cluster YAML would be rejected by `ray up` or by KubeRay."""

    def __init__(self, path, reason: str):
        from pathlib import Path

        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")
