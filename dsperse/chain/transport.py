"""One way to send a transaction, for the registry, aggregated receipts and the market.

A :class:`Transport` signs with a private key (or lets the node's unlocked account sign), estimates against
the ``pending`` block (where the transaction lands), adds the :class:`GasPolicy` margin capped by the block
gas limit, waits for the receipt, and turns every failure into a :class:`~dsperse.errors.ChainError`:

- the node cannot be reached: :class:`~dsperse.errors.ChainUnavailableError`;
- the call reverts (at estimation or once mined): :class:`~dsperse.errors.TransactionRevertedError` with the
  contract's reason (:func:`revert_reason`, the only parser of revert data in dsperse);
- it needs more gas than a block holds, or ran out: :class:`~dsperse.errors.OutOfGasError`.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import requests
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError, ProviderConnectionError, TimeExhausted, Web3RPCError
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from dsperse.errors import ChainError, ChainUnavailableError, OutOfGasError, TransactionRevertedError

_ERROR_SELECTOR = "0x08c379a0"  # Error(string)
_PANIC_SELECTOR = "0x4e487b71"  # Panic(uint256)
_GAS_WORDS = ("out of gas", "gas required exceeds", "exceeds block gas limit", "intrinsic gas too low", "gas limit reached")
_DOWN = (requests.ConnectionError, requests.Timeout, ProviderConnectionError, ConnectionError, TimeoutError)


def revert_reason(exc: BaseException) -> str:
    """The contract's reason in a web3 revert (``Error(string)`` data, a panic code, or the node's message)."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith((_ERROR_SELECTOR, _PANIC_SELECTOR)):
        try:
            if data.startswith(_ERROR_SELECTOR):
                return abi_decode(["string"], bytes.fromhex(data[10:]))[0]
            return f"panic 0x{abi_decode(['uint256'], bytes.fromhex(data[10:]))[0]:02x}"
        except Exception:  # noqa: BLE001 - undecodable data: fall back to the message
            pass
    msg = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(getattr(exc, "message", None) or exc)
    return msg.removeprefix("execution reverted: ").removeprefix("execution reverted").strip() or "reverted without a reason"


def _is_gas(text: str) -> bool:
    return any(w in text.lower() for w in _GAS_WORDS)


@dataclass(frozen=True)
class GasPolicy:
    """Gas given over the estimate (unused gas is not charged), never more than the block gas limit."""

    margin: float = 1.2
    extra: int = 0
    """Flat headroom on top, for calls whose path another party's transaction can change first (a market
    vote that becomes the quorum vote also slashes)."""

    def limit(self, estimate: int, block_limit: int) -> int:
        return min(int(estimate * self.margin) + self.extra, block_limit)


def http_web3(rpc_url: str, timeout: float = 60.0) -> Web3:
    """A Web3 on ``rpc_url`` that retries a refused connection twice before giving up."""
    retry = ExceptionRetryConfiguration(errors=(requests.ConnectionError,), retries=2, backoff_factor=0.1)
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=retry))


def account_from_key(private_key: str):
    """The eth_account account of a hex private key; a malformed key is a ChainError that does not echo it."""
    try:
        return Account.from_key(private_key)
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise ChainError("not a valid private key: give 64 hex digits (0x optional), via --private-key or "
                         "$DSPERSE_PRIVATE_KEY") from exc


class Transport:
    """Sends transactions from one account over one web3 connection."""

    def __init__(self, w3: Web3, *, private_key: str | None = None, timeout: float = 120.0,
                 gas: GasPolicy = GasPolicy(), where: str | None = None):  # fmt: skip
        self.w3 = w3
        self.account = account_from_key(private_key) if private_key else None
        self.timeout = timeout
        self.gas = gas
        self.where = where or getattr(w3.provider, "endpoint_uri", None) or "the EVM node"
        self._chain_id: int | None = None
        self._address: str | None = self.account.address if self.account is not None else None

    @contextmanager
    def rpc(self, what: str) -> Iterator[None]:
        """Turn a lost connection into ChainUnavailableError naming what was being done."""
        try:
            yield
        except _DOWN as exc:
            raise ChainUnavailableError(f"EVM node at {self.where} is unreachable while {what} ({type(exc).__name__})") from exc

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            with self.rpc("reading the chain id"):
                self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    @property
    def address(self) -> str:
        """The account that signs (private key) or the node's first unlocked account."""
        if self._address is None:
            with self.rpc("listing accounts"):
                accts = self.w3.eth.accounts
            if not accts:
                raise ChainError(f"{self.where} has no unlocked account; pass a private key (--private-key)")
            self._address = Web3.to_checksum_address(accts[0])
        return self._address

    def block_gas_limit(self) -> int:
        with self.rpc("reading the block gas limit"):
            return int(self.w3.eth.get_block("latest")["gasLimit"])

    def codehash(self, address: str) -> str | None:
        """0x keccak256 of the runtime code at ``address``, None when there is none."""
        with self.rpc("reading contract code"):
            code = bytes(self.w3.eth.get_code(Web3.to_checksum_address(address)))
        return "0x" + keccak(code).hex() if code else None

    # -- sending -------------------------------------------------------------------------------

    def transact(self, fn: Any, what: str = "sending a transaction", value: int = 0) -> dict:
        """Send a bound contract call (``contract.functions.f(...)``) or constructor; returns the mined receipt."""
        if hasattr(fn, "data_in_transaction"):  # a ContractConstructor
            tx = {"data": fn.data_in_transaction}
        else:
            tx = {"to": fn.address, "data": fn._encode_transaction_data()}
        if value:
            tx["value"] = value
        return self.send(tx, what)

    def send(self, tx: dict, what: str = "sending a transaction") -> dict:
        """Estimate (to surface the revert reason before paying), sign or send, wait; ChainError on failure."""
        tx = dict(tx, **{"from": self.address})
        if "gas" not in tx:
            limit = self.block_gas_limit()
            est = self._estimate(tx, what, limit)
            if est > limit:
                raise OutOfGasError(what, est, limit)
            tx["gas"] = self.gas.limit(est, limit)
        with self.rpc(what):
            tx_hash = self._broadcast(tx, what)
            try:
                rc = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout)
            except TimeExhausted as exc:
                raise ChainError(f"{what}: transaction {bytes(tx_hash).hex()} not mined within {self.timeout:.0f}s") from exc
        if rc["status"] != 1:
            h = "0x" + bytes(tx_hash).hex()
            if rc["gasUsed"] >= tx["gas"]:
                raise OutOfGasError(what, rc["gasUsed"], tx["gas"], h)
            raise TransactionRevertedError(self._replay_reason(tx, rc["blockNumber"]), h)
        return dict(rc)

    def _estimate(self, tx: dict, what: str, limit: int) -> int:
        try:
            with self.rpc(what):
                return int(self.w3.eth.estimate_gas(tx, "pending"))
        except ContractLogicError as exc:
            reason = revert_reason(exc)
            if _is_gas(reason):
                raise OutOfGasError(what, None, limit) from exc
            raise TransactionRevertedError(reason) from exc
        except (Web3RPCError, ValueError) as exc:
            if _is_gas(str(exc)):
                raise OutOfGasError(what, None, limit) from exc
            if "revert" in str(exc).lower():
                raise TransactionRevertedError(revert_reason(exc)) from exc
            raise ChainError(f"node refused {what} from {self.address}: {exc}") from exc

    def _broadcast(self, tx: dict, what: str) -> Any:
        try:
            if self.account is None:
                return self.w3.eth.send_transaction(tx)
            tx.setdefault("chainId", self.chain_id)
            tx["nonce"] = self.w3.eth.get_transaction_count(self.address, "pending")
            if "maxFeePerGas" not in tx and "gasPrice" not in tx:
                base = int(self.w3.eth.get_block("latest").get("baseFeePerGas") or 0)
                tip = int(self.w3.eth.max_priority_fee)
                tx["maxPriorityFeePerGas"], tx["maxFeePerGas"] = tip, 2 * base + tip
            return self.w3.eth.send_raw_transaction(self.account.sign_transaction(tx).raw_transaction)
        except ContractLogicError as exc:
            raise TransactionRevertedError(revert_reason(exc)) from exc
        except (Web3RPCError, ValueError) as exc:  # node-level refusal: nonce, funds, size
            raise ChainError(f"node refused {what} from {self.address}: {exc}") from exc

    def _replay_reason(self, tx: dict, block: int) -> str:
        """Why a mined transaction failed: the same call replayed at its block."""
        try:
            self.w3.eth.call({k: v for k, v in tx.items() if k in ("from", "to", "data", "value", "gas")}, block)
        except ContractLogicError as exc:
            return revert_reason(exc)
        except Exception as exc:  # noqa: BLE001 - any other answer still explains it best
            return str(exc)
        return "reverted (no reason on replay)"

    def deploy(self, abi: list, bytecode: str, *args: Any, what: str = "deploying a contract", value: int = 0) -> dict:
        """Deploy a contract; returns the mined receipt (``contractAddress``)."""
        return self.transact(self.w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args), what, value)
