"""A Solana JSON-RPC 2.0 server on 127.0.0.1 in front of one real LiteSVM runtime.

Every answer is built from solders' own response types (``GetBalanceResp(...).to_json()``), so
solana-py's ``Client`` and ``AsyncClient`` (what the x402 client, the x402 facilitator and the
wallet use) parse them as they parse a real node's. One lock guards the SVM; each HTTP request
runs in its own thread (``ThreadingHTTPServer``), so concurrent clients work.

Chain model (LiteSVM's, plus what a node adds around it):

* LiteSVM accepts only its latest blockhash and never advances the slot by itself. The slot
  (= block height here) moves only with :meth:`SolanaRpcServer.expire_blockhash`, which also
  warps 151 slots ahead, so a blockhash's ``lastValidBlockHeight`` (its slot + 150) is behind
  the chain after it: exactly what "expired" means on a real cluster.
* A transaction *lands* when the runtime charged its fee: success, or an instruction error
  (then it lands failed, fee paid, as on a real cluster). A transaction that fails before
  that (blockhash not found, bad signature, already processed) does not land. With
  ``skipPreflight`` a node returns its signature all the same and the transaction is silently
  dropped; without, the node answers the preflight error (-32002). Both are modelled.
* Fees are LiteSVM's: 5000 lamports per signature; it ignores compute-unit prices.
* Every landed transaction is indexed by each account key it touches (newest first), for
  ``getSignaturesForAddress``, and kept whole for ``getTransaction``.

Test controls are Python methods (``create_mint``, ``fund_sol``, ``mint_to``, ...), and knobs to
misbehave (``fail_next``, ``delay``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from solders.account import Account
from solders.account_decoder import UiTokenAmount
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    GetAccountInfoResp,
    GetBalanceResp,
    GetBlockHeightResp,
    GetFeeForMessageResp,
    GetHealthResp,
    GetLatestBlockhashResp,
    GetMinimumBalanceForRentExemptionResp,
    GetMultipleAccountsResp,
    GetSignaturesForAddressResp,
    GetSignatureStatusesResp,
    GetSlotResp,
    GetTokenAccountBalanceResp,
    GetTokenAccountsByOwnerResp,
    GetTransactionResp,
    GetVersionResp,
    IsBlockhashValidResp,
    RequestAirdropResp,
    RpcBlockhash,
    RpcConfirmedTransactionStatusWithSignature,
    RpcKeyedAccount,
    RpcResponseContext,
    RpcSimulateTransactionResult,
    RpcVersionInfo,
    SendTransactionResp,
    SimulateTransactionResp,
)
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.token.associated import get_associated_token_address
from solders.token.state import Mint, TokenAccount
from solders.transaction import Legacy, VersionedTransaction
from solders.transaction_metadata import TransactionMetadata
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    EncodedTransactionWithStatusMeta,
    TransactionConfirmationStatus,
    TransactionStatus,
    UiCompiledInstruction,
    UiLoadedAddresses,
    UiRawMessage,
    UiTransaction,
    UiTransactionStatusMeta,
    UiTransactionTokenBalance,
)
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import create_idempotent_associated_token_account, mint_to_checked
from spl.token.models import MintToCheckedParams

from chainkit import b58

LAMPORTS_PER_SIGNATURE = 5000  # LiteSVM's fee: per signature, no priority fee
BLOCKHASH_LIFETIME = 150  # slots a blockhash stays valid on a real cluster
MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
FAUCET_LAMPORTS = 10**18
HOLD_LIMIT_S = 30.0  # the longest a delayed method waits for its event


class RpcError(Exception):
    """A JSON-RPC error answer. Use codes solders knows (it parses unknown ones as a bare int,
    which solana-py then returns as if it were a result): -32601 method not found, -32602
    invalid params, -32603 internal, -32005 node unhealthy, -32002 preflight failure, -32015
    unsupported transaction version."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


AUTO = object()  # Fault.data: what a node sends with that code


@dataclass
class Fault:
    code: int = -32005
    message: str = "Node is unhealthy"
    http_status: int | None = None  # answer this HTTP status instead (e.g. 429, 503)
    # The error's data. AUTO: a -32005 gets the node's {"numSlotsBehind": null} (solders
    # *panics* parsing a -32005 without it: pass None to send exactly that), others none.
    data: Any = AUTO

    def error(self) -> RpcError:
        data = self.data
        if data is AUTO:
            data = {"numSlotsBehind": None} if self.code == -32005 else None
        return RpcError(self.code, self.message, data)


@dataclass
class LandedTx:
    """What the node keeps about a transaction that landed."""

    signature: str
    seq: int
    slot: int
    block_time: int
    tx: VersionedTransaction
    err: Any  # TransactionErrorType | None
    fee: int
    pre_balances: list[int]
    post_balances: list[int]
    pre_token_balances: list[UiTransactionTokenBalance]
    post_token_balances: list[UiTransactionTokenBalance]
    logs: list[str]
    units: int
    memo: str | None
    via_rpc: bool  # sent by a client through sendTransaction (not a kit setup transaction)

    @property
    def ok(self) -> bool:
        return self.err is None


@dataclass
class _Hold:
    event: threading.Event
    waiting: int = 0


class SolanaRpcServer:
    """``with SolanaRpcServer() as rpc: Client(rpc.url).get_balance(...)``"""

    def __init__(self) -> None:
        self.svm = LiteSVM()
        self.lock = threading.RLock()
        self.calls: Counter[str] = Counter()  # every method asked for, known or not
        self._landed: dict[str, LandedTx] = {}
        self._order: list[str] = []
        self._by_account: dict[Pubkey, list[str]] = {}
        self._known: set[Pubkey] = set()  # accounts ever touched: token-account discovery
        self._dropped: list[str] = []  # signatures sent with skipPreflight that never landed
        self._faults: dict[str, list[Fault]] = {}
        self._holds: dict[str, _Hold] = {}
        self._mint_authorities: dict[Pubkey, Keypair] = {}
        self._setup_count = 0
        self._faucet = Keypair()
        self.svm.set_account(
            self._faucet.pubkey(), Account(FAUCET_LAMPORTS, b"", Pubkey.default(), False)
        )
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    # -- running ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the RPC server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SolanaRpcServer:
        httpd = QuietServer(("127.0.0.1", 0), _Handler)
        httpd.rpc = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="litesvm-rpc"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        for hold in self._holds.values():
            hold.event.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._conns_lock:
            for conn in list(self._conns):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> SolanaRpcServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ------------------------------------------------------------------------
    def create_mint(
        self, address: str | Pubkey, decimals: int = 6, authority: Keypair | None = None
    ) -> Pubkey:
        """An SPL Token mint at a FIXED address (e.g. the real USDC mint of devnet or mainnet),
        its mint authority a kit keypair (or ``authority``) that :meth:`mint_to` signs with."""
        mint = _pubkey(address)
        authority = authority or Keypair()
        data = bytes(Mint(authority.pubkey(), 0, decimals, True, None))
        with self.lock:
            rent = self.svm.minimum_balance_for_rent_exemption(len(data))
            self.svm.set_account(mint, Account(rent, data, TOKEN_PROGRAM_ID, False))
            self._mint_authorities[mint] = authority
            self._known.add(mint)
            self._fund(authority.pubkey(), 10 * 10**9)
        return mint

    def fund_sol(self, pubkey: str | Pubkey, lamports: int) -> str:
        """A real system transfer from the kit's faucet; returns its signature."""
        with self.lock:
            return self._fund(_pubkey(pubkey), lamports)

    def create_token_account(self, owner: str | Pubkey, mint: str | Pubkey) -> Pubkey:
        """The owner's associated token account for ``mint`` (created if missing)."""
        return self.mint_to(owner, mint, 0)

    def mint_to(self, owner: str | Pubkey, mint: str | Pubkey, atomic: int) -> Pubkey:
        """Mint ``atomic`` units to ``owner``'s associated token account, creating it if
        missing, in one real transaction signed by the mint authority. Returns the ATA."""
        owner_pk, mint_pk = _pubkey(owner), _pubkey(mint)
        with self.lock:
            authority = self._mint_authorities.get(mint_pk)
            if authority is None:
                raise ValueError(f"{mint_pk} is not a mint this server created")
            ata = get_associated_token_address(owner_pk, mint_pk)
            payer = authority.pubkey()
            ixs = [create_idempotent_associated_token_account(payer, owner_pk, mint_pk)]
            if atomic:
                decimals = self._mint_decimals(mint_pk)
                params = MintToCheckedParams(
                    program_id=TOKEN_PROGRAM_ID,
                    mint=mint_pk,
                    dest=ata,
                    mint_authority=authority.pubkey(),
                    amount=atomic,
                    decimals=decimals,
                )
                ixs.append(mint_to_checked(params))
            self._send_setup(authority, ixs)
        return ata

    def token_balance(self, owner: str | Pubkey, mint: str | Pubkey) -> int:
        """Atomic units in ``owner``'s associated token account (0 when it has none)."""
        with self.lock:
            acct = self.svm.get_account(get_associated_token_address(_pubkey(owner), _pubkey(mint)))
        if acct is None or acct.owner != TOKEN_PROGRAM_ID or len(acct.data) != 165:
            return 0
        return TokenAccount.from_bytes(bytes(acct.data)).amount

    def sol_balance(self, pubkey: str | Pubkey) -> int:
        with self.lock:
            return self.svm.get_balance(_pubkey(pubkey)) or 0

    def expire_blockhash(self) -> None:
        """Every blockhash handed out so far stops being valid, and the chain moves past
        their last valid block height: a transaction signed with one can never land."""
        with self.lock:
            self.svm.expire_blockhash()
            self.svm.warp_to_slot(self._slot() + BLOCKHASH_LIFETIME + 1)

    def landed_signatures(self, *, all_transactions: bool = False) -> list[str]:
        """Signatures of the transactions clients sent that landed, oldest first (with
        ``all_transactions``: the kit's own setup transactions too)."""
        with self.lock:
            return [s for s in self._order if all_transactions or self._landed[s].via_rpc]

    def landed(self, signature: str) -> LandedTx | None:
        with self.lock:
            return self._landed.get(signature)

    def dropped_signatures(self) -> list[str]:
        """Signatures clients sent with skipPreflight that did not land (and never will)."""
        with self.lock:
            return list(self._dropped)

    def fail_next(
        self,
        method: str,
        n: int = 1,
        *,
        code: int = -32005,
        message: str = "Node is unhealthy",
        http_status: int | None = None,
        data: Any = AUTO,
    ) -> None:
        """The next ``n`` calls of ``method`` ("*" for any) answer a JSON-RPC error (or the
        HTTP status ``http_status``) instead of their result."""
        with self.lock:
            fault = Fault(code, message, http_status, data)
            self._faults.setdefault(method, []).extend([fault] * n)

    def delay(self, method: str, release: threading.Event) -> None:
        """Calls of ``method`` wait (at most 30 s) until ``release`` is set, then go on."""
        with self.lock:
            self._holds[method] = _Hold(release)

    def waiting(self, method: str) -> int:
        """How many calls of ``method`` wait at their :meth:`delay` now."""
        with self.lock:
            hold = self._holds.get(method)
            return hold.waiting if hold else 0

    # -- chain internals (call with the lock held) --------------------------------------------
    def _slot(self) -> int:
        return int(self.svm.get_clock().slot)

    def _ctx(self) -> RpcResponseContext:
        return RpcResponseContext(self._slot(), api_version="2.2.0")

    def _fund(self, pubkey: Pubkey, lamports: int) -> str:
        ix = transfer(
            TransferParams(from_pubkey=self._faucet.pubkey(), to_pubkey=pubkey, lamports=lamports)
        )
        return self._send_setup(self._faucet, [ix])

    def _send_setup(self, payer: Keypair, ixs: list[Any]) -> str:
        # a memo numbering each setup transaction: two identical ones (the same funding twice)
        # would otherwise be one transaction, and the second "already processed"
        self._setup_count += 1
        memo = Instruction(MEMO_PROGRAM_ID, f"chainkit setup {self._setup_count}".encode(), [])
        msg = MessageV0.try_compile(payer.pubkey(), [*ixs, memo], [], self.svm.latest_blockhash())
        tx = VersionedTransaction(msg, [payer])
        sig, record, err = self._land(tx, via_rpc=False)
        if record is None or not record.ok:
            raise RuntimeError(f"a kit setup transaction failed: {err}")
        return sig

    def _mint_decimals(self, mint: Pubkey) -> int:
        acct = self.svm.get_account(mint)
        if acct is None:
            raise ValueError(f"no mint at {mint}")
        return Mint.from_bytes(bytes(acct.data)).decimals

    def _token_balances(self, keys: list[Pubkey]) -> list[UiTransactionTokenBalance]:
        out = []
        for i, key in enumerate(keys):
            acct = self.svm.get_account(key)
            if acct is None or acct.owner != TOKEN_PROGRAM_ID or len(acct.data) != 165:
                continue
            tok = TokenAccount.from_bytes(bytes(acct.data))
            decimals = self._mint_decimals(tok.mint)
            out.append(
                UiTransactionTokenBalance(
                    i, tok.mint, _ui_amount(tok.amount, decimals), tok.owner, TOKEN_PROGRAM_ID
                )
            )
        return out

    def _land(self, tx: VersionedTransaction, *, via_rpc: bool) -> tuple[str, LandedTx | None, Any]:
        """Run ``tx``; record it if it landed. Returns (signature, record or None, error)."""
        sig = str(tx.signatures[0])
        keys = list(tx.message.account_keys)
        pre = [self.svm.get_balance(k) or 0 for k in keys]
        pre_tok = self._token_balances(keys)
        result = self.svm.send_transaction(tx)
        post = [self.svm.get_balance(k) or 0 for k in keys]
        ok = isinstance(result, TransactionMetadata)
        if not ok and (sig in self._landed or post[0] == pre[0]):
            return sig, None, result.err()  # never reached the ledger: no fee charged
        meta = result if ok else result.meta()
        record = LandedTx(
            signature=sig,
            seq=len(self._order),
            slot=self._slot(),
            block_time=int(time.time()),
            tx=tx,
            err=None if ok else result.err(),
            fee=LAMPORTS_PER_SIGNATURE * len(tx.signatures),
            pre_balances=pre,
            post_balances=post,
            pre_token_balances=pre_tok,
            post_token_balances=self._token_balances(keys),
            logs=list(meta.logs()),
            units=int(meta.compute_units_consumed()),
            memo=_memo_of(tx),
            via_rpc=via_rpc,
        )
        self._landed[sig] = record
        self._order.append(sig)
        for key in dict.fromkeys(keys):
            self._by_account.setdefault(key, []).append(sig)
            self._known.add(key)
        return sig, record, record.err

    # -- the RPC methods ----------------------------------------------------------------------
    def handle(self, request: Any) -> dict[str, Any]:
        """One JSON-RPC request object → one response object."""
        rid = request.get("id") if isinstance(request, dict) else None
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error_obj(rid, RpcError(-32600, "Invalid request"))
        method, params = request["method"], request.get("params") or []
        if not isinstance(params, list):
            return _error_obj(rid, RpcError(-32602, "Invalid params: expected an array"))
        try:
            handler = _METHODS.get(method)
            if handler is None:
                raise RpcError(-32601, "Method not found")
            with self.lock:
                result_json = handler(self, params)
        except RpcError as e:
            return _error_obj(rid, e)
        except (ValueError, TypeError, IndexError, KeyError) as e:
            return _error_obj(rid, RpcError(-32602, f"Invalid params: {e}"))
        except Exception as e:  # a kit bug: answer it rather than drop the connection
            return _error_obj(rid, RpcError(-32603, f"Internal error: {type(e).__name__}: {e}"))
        obj = json.loads(result_json)
        obj["id"] = rid
        return obj

    def _take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for name in (method, "*"):
                queue = self._faults.get(name)
                if queue:
                    return queue.pop(0)
        return None

    def _hold(self, method: str) -> None:
        with self.lock:
            hold = self._holds.get(method)
            if hold is None:
                return
            hold.waiting += 1
        try:
            hold.event.wait(HOLD_LIMIT_S)
        finally:
            with self.lock:
                hold.waiting -= 1

    def m_get_balance(self, params: list[Any]) -> str:
        return GetBalanceResp(self.svm.get_balance(_pubkey(params[0])) or 0, self._ctx()).to_json()

    def m_get_account_info(self, params: list[Any]) -> str:
        _check_encoding(_cfg(params, 1), ("base64", "base64+zstd", None))
        return GetAccountInfoResp(self._account(_pubkey(params[0])), self._ctx()).to_json()

    def m_get_multiple_accounts(self, params: list[Any]) -> str:
        _check_encoding(_cfg(params, 1), ("base64", "base64+zstd", None))
        accounts = [self._account(_pubkey(p)) for p in params[0]]
        return GetMultipleAccountsResp(accounts, self._ctx()).to_json()

    def _account(self, key: Pubkey) -> Account | None:
        acct = self.svm.get_account(key)
        if acct is None or (acct.lamports == 0 and not acct.data):
            return None
        return acct

    def m_get_token_accounts_by_owner(self, params: list[Any]) -> str:
        owner, filt = _pubkey(params[0]), params[1]
        _check_encoding(_cfg(params, 2), ("base64", "base64+zstd", None))
        if not isinstance(filt, dict) or not ({"mint", "programId"} & filt.keys()):
            raise RpcError(-32602, "Invalid params: a mint or programId filter is required")
        if "programId" in filt and _pubkey(filt["programId"]) != TOKEN_PROGRAM_ID:
            return GetTokenAccountsByOwnerResp([], self._ctx()).to_json()
        mint = _pubkey(filt["mint"]) if "mint" in filt else None
        found = []
        for key in sorted(self._known, key=str):
            acct = self.svm.get_account(key)
            if acct is None or acct.owner != TOKEN_PROGRAM_ID or len(acct.data) != 165:
                continue
            tok = TokenAccount.from_bytes(bytes(acct.data))
            if tok.owner == owner and (mint is None or tok.mint == mint):
                found.append(RpcKeyedAccount(key, acct))
        return GetTokenAccountsByOwnerResp(found, self._ctx()).to_json()

    def m_get_token_account_balance(self, params: list[Any]) -> str:
        acct = self.svm.get_account(_pubkey(params[0]))
        if acct is None or acct.owner != TOKEN_PROGRAM_ID or len(acct.data) != 165:
            raise RpcError(-32602, "Invalid param: not a Token account")
        tok = TokenAccount.from_bytes(bytes(acct.data))
        amount = _ui_amount(tok.amount, self._mint_decimals(tok.mint))
        return GetTokenAccountBalanceResp(amount, self._ctx()).to_json()

    def m_get_latest_blockhash(self, params: list[Any]) -> str:
        value = RpcBlockhash(self.svm.latest_blockhash(), self._slot() + BLOCKHASH_LIFETIME)
        return GetLatestBlockhashResp(value, self._ctx()).to_json()

    def m_is_blockhash_valid(self, params: list[Any]) -> str:
        valid = Hash.from_string(params[0]) == self.svm.latest_blockhash()
        return IsBlockhashValidResp(valid, self._ctx()).to_json()

    def m_get_block_height(self, params: list[Any]) -> str:
        return GetBlockHeightResp(self._slot()).to_json()

    def m_get_slot(self, params: list[Any]) -> str:
        return GetSlotResp(self._slot()).to_json()

    def m_get_minimum_balance_for_rent_exemption(self, params: list[Any]) -> str:
        value = self.svm.minimum_balance_for_rent_exemption(int(params[0]))
        return GetMinimumBalanceForRentExemptionResp(value).to_json()

    def m_get_fee_for_message(self, params: list[Any]) -> str:
        msg = from_bytes_versioned(base64.b64decode(params[0]))
        value: int | None = LAMPORTS_PER_SIGNATURE * msg.header.num_required_signatures
        if msg.recent_blockhash != self.svm.latest_blockhash():
            value = None  # what a node answers for a blockhash it no longer (or never) knew
        return GetFeeForMessageResp(value, self._ctx()).to_json()

    def m_simulate_transaction(self, params: list[Any]) -> str:
        cfg = _cfg(params, 1)
        tx = _decode_tx(params[0], cfg.get("encoding") or "base58")
        result = self._simulate(tx, sig_verify=bool(cfg.get("sigVerify", False)))
        return SimulateTransactionResp(result, self._ctx()).to_json()

    def _simulate(
        self, tx: VersionedTransaction, *, sig_verify: bool
    ) -> RpcSimulateTransactionResult:
        if not sig_verify:
            self.svm.with_sigverify(False)
        try:
            sim = self.svm.simulate_transaction(tx)
        finally:
            self.svm.with_sigverify(True)
        if hasattr(sim, "err"):
            meta = sim.meta()
            return RpcSimulateTransactionResult(
                err=sim.err(), logs=list(meta.logs()), units_consumed=meta.compute_units_consumed()
            )
        meta = sim.meta()
        return RpcSimulateTransactionResult(
            err=None, logs=list(meta.logs()), units_consumed=meta.compute_units_consumed()
        )

    def m_send_transaction(self, params: list[Any]) -> str:
        cfg = _cfg(params, 1)
        tx = _decode_tx(params[0], cfg.get("encoding") or "base58")
        if not cfg.get("skipPreflight", False):
            sim = self._simulate(tx, sig_verify=True)
            if sim.err is not None:
                raise RpcError(
                    -32002,
                    f"Transaction simulation failed: {sim.err}",
                    json.loads(sim.to_json()),
                )
        sig, record, _err = self._land(tx, via_rpc=True)
        if record is None and sig not in self._landed:
            self._dropped.append(sig)  # what a node does with skipPreflight: it just drops it
        return SendTransactionResp(Signature.from_string(sig)).to_json()

    def m_get_signature_statuses(self, params: list[Any]) -> str:
        statuses: list[TransactionStatus | None] = []
        for text in params[0]:
            rec = self._landed.get(str(Signature.from_string(text)))
            if rec is None:
                statuses.append(None)
                continue
            statuses.append(
                TransactionStatus(
                    slot=rec.slot,
                    confirmations=None,
                    status=rec.err,
                    err=rec.err,
                    confirmation_status=TransactionConfirmationStatus.Finalized,
                )
            )
        return GetSignatureStatusesResp(statuses, self._ctx()).to_json()

    def m_get_signatures_for_address(self, params: list[Any]) -> str:
        key, cfg = _pubkey(params[0]), _cfg(params, 1)
        limit = int(cfg.get("limit") or 1000)
        if not 1 <= limit <= 1000:
            raise RpcError(-32602, "Invalid limit; max 1000")
        sigs = list(reversed(self._by_account.get(key, [])))  # newest first
        if cfg.get("before"):
            before = str(Signature.from_string(cfg["before"]))
            sigs = sigs[sigs.index(before) + 1 :] if before in sigs else []
        if cfg.get("until"):
            until = str(Signature.from_string(cfg["until"]))
            if until in sigs:
                sigs = sigs[: sigs.index(until)]
        out = []
        for sig in sigs[:limit]:
            rec = self._landed[sig]
            out.append(
                RpcConfirmedTransactionStatusWithSignature(
                    signature=Signature.from_string(sig),
                    slot=rec.slot,
                    err=rec.err,
                    memo=rec.memo,
                    block_time=rec.block_time,
                    confirmation_status=TransactionConfirmationStatus.Finalized,
                )
            )
        return GetSignaturesForAddressResp(out).to_json()

    def m_get_transaction(self, params: list[Any]) -> str:
        sig, cfg = str(Signature.from_string(params[0])), _cfg(params, 1)
        rec = self._landed.get(sig)
        if rec is None:
            return GetTransactionResp(None).to_json()
        versioned = isinstance(rec.tx.message, MessageV0)
        max_version = cfg.get("maxSupportedTransactionVersion")
        if versioned and (max_version is None or int(max_version) < 0):
            raise RpcError(
                -32015,
                "Transaction version (0) is not supported by the requesting client. Please try "
                "the request again with the following configuration parameter: "
                '"maxSupportedTransactionVersion": 0',
            )
        encoding = cfg.get("encoding") or "json"
        if encoding == "base64":
            encoded: Any = rec.tx
        elif encoding == "json":
            encoded = _ui_transaction(rec.tx)
        else:
            raise RpcError(-32602, f"Invalid params: encoding {encoding} is not supported here")
        meta = UiTransactionStatusMeta(
            err=rec.err,
            fee=rec.fee,
            pre_balances=rec.pre_balances,
            post_balances=rec.post_balances,
            inner_instructions=[],
            log_messages=rec.logs,
            pre_token_balances=rec.pre_token_balances,
            post_token_balances=rec.post_token_balances,
            rewards=[],
            loaded_addresses=UiLoadedAddresses([], []),
            compute_units_consumed=rec.units,
        )
        version: Any = 0 if versioned else Legacy.Legacy
        value = EncodedConfirmedTransactionWithStatusMeta(
            rec.slot, EncodedTransactionWithStatusMeta(encoded, meta, version), rec.block_time
        )
        return GetTransactionResp(value).to_json()

    def m_request_airdrop(self, params: list[Any]) -> str:
        sig = self._fund(_pubkey(params[0]), int(params[1]))
        return RequestAirdropResp(Signature.from_string(sig)).to_json()

    def m_get_health(self, params: list[Any]) -> str:
        return GetHealthResp("ok").to_json()

    def m_get_version(self, params: list[Any]) -> str:
        return GetVersionResp(RpcVersionInfo("2.2.0-litesvm", 0)).to_json()


_METHODS: dict[str, Callable[[SolanaRpcServer, list[Any]], str]] = {
    "getBalance": SolanaRpcServer.m_get_balance,
    "getAccountInfo": SolanaRpcServer.m_get_account_info,
    "getMultipleAccounts": SolanaRpcServer.m_get_multiple_accounts,
    "getTokenAccountsByOwner": SolanaRpcServer.m_get_token_accounts_by_owner,
    "getTokenAccountBalance": SolanaRpcServer.m_get_token_account_balance,
    "getLatestBlockhash": SolanaRpcServer.m_get_latest_blockhash,
    "isBlockhashValid": SolanaRpcServer.m_is_blockhash_valid,
    "getBlockHeight": SolanaRpcServer.m_get_block_height,
    "getSlot": SolanaRpcServer.m_get_slot,
    "getMinimumBalanceForRentExemption": SolanaRpcServer.m_get_minimum_balance_for_rent_exemption,
    "getFeeForMessage": SolanaRpcServer.m_get_fee_for_message,
    "simulateTransaction": SolanaRpcServer.m_simulate_transaction,
    "sendTransaction": SolanaRpcServer.m_send_transaction,
    "getSignatureStatuses": SolanaRpcServer.m_get_signature_statuses,
    "getSignaturesForAddress": SolanaRpcServer.m_get_signatures_for_address,
    "getTransaction": SolanaRpcServer.m_get_transaction,
    "requestAirdrop": SolanaRpcServer.m_request_airdrop,
    "getHealth": SolanaRpcServer.m_get_health,
    "getVersion": SolanaRpcServer.m_get_version,
}


class QuietServer(ThreadingHTTPServer):
    """A threaded HTTP server that does not print a traceback when a client hung up before
    its answer (a client that timed out on a delayed method, a test that is over)."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as solana-py's httpx2 pool expects
    # headers and body go out as two writes: without this, Nagle's algorithm and the
    # client's delayed ACK hold every answer ~40 ms
    disable_nagle_algorithm = True
    server_version = "litesvm-rpc/1"

    def setup(self) -> None:
        super().setup()
        with self._rpc._conns_lock:
            self._rpc._conns.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self._rpc._conns_lock:
                self._rpc._conns.discard(self.connection)

    @property
    def _rpc(self) -> SolanaRpcServer:
        return self.server.rpc  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            self._send(200, b"ok", "text/plain")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            self._json(_error_obj(None, RpcError(-32700, "Parse error")))
            return
        batch = isinstance(body, list)
        requests = body if batch else [body]
        out: list[dict[str, Any]] = []
        for req in requests:
            method = req.get("method") if isinstance(req, dict) else None
            if isinstance(method, str):
                self._rpc.calls[method] += 1
                self._rpc._hold(method)
                fault = self._rpc._take_fault(method)
                if fault is not None:
                    if fault.http_status is not None:
                        self._send(fault.http_status, fault.message.encode(), "text/plain")
                        return
                    out.append(_error_obj(req.get("id"), fault.error()))
                    continue
            out.append(self._rpc.handle(req))
        self._json(out if batch else out[0])

    def _json(self, obj: Any) -> None:
        self._send(200, json.dumps(obj, separators=(",", ":")).encode(), "application/json")

    def _send(self, status: int, data: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# -- helpers ----------------------------------------------------------------------------------
def _pubkey(value: str | Pubkey) -> Pubkey:
    return value if isinstance(value, Pubkey) else Pubkey.from_string(str(value))


def _cfg(params: list[Any], index: int) -> dict[str, Any]:
    if len(params) > index and isinstance(params[index], dict):
        return params[index]
    return {}


def _check_encoding(cfg: dict[str, Any], allowed: tuple[str | None, ...]) -> None:
    if cfg.get("encoding") not in allowed:
        raise RpcError(-32602, f"Invalid params: encoding {cfg.get('encoding')} is not served here")


def _decode_tx(text: str, encoding: str) -> VersionedTransaction:
    raw = base64.b64decode(text) if encoding == "base64" else b58.decode(text)
    try:
        return VersionedTransaction.from_bytes(raw)
    except Exception as e:
        raise RpcError(-32602, f"invalid transaction: {e}") from None


def _error_obj(rid: Any, err: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": err.to_json(), "id": rid}


def _ui_amount(amount: int, decimals: int) -> UiTokenAmount:
    # uiAmount (a float) is deprecated on the wire; uiAmountString carries the exact value
    from decimal import Decimal

    text = format(Decimal(amount).scaleb(-decimals), "f") if decimals else str(amount)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return UiTokenAmount(None, decimals, str(amount), text or "0")


def _memo_of(tx: VersionedTransaction) -> str | None:
    keys = list(tx.message.account_keys)
    memos = [
        bytes(ix.data).decode("utf-8", "replace")
        for ix in tx.message.instructions
        if keys[ix.program_id_index] == MEMO_PROGRAM_ID
    ]
    return "; ".join(f"[{len(m)}] {m}" for m in memos) if memos else None


def _ui_transaction(tx: VersionedTransaction) -> UiTransaction:
    msg: Message | MessageV0 = tx.message
    instructions = [
        UiCompiledInstruction(ix.program_id_index, bytes(ix.accounts), b58.encode(bytes(ix.data)))
        for ix in msg.instructions
    ]
    lookups = [] if isinstance(msg, MessageV0) else None
    keys = list(msg.account_keys)
    raw = UiRawMessage(msg.header, keys, msg.recent_blockhash, instructions, lookups)
    return UiTransaction(list(tx.signatures), raw)
