"""Pairing tokens sealed per tenant: envelope encryption under the stack's KMS key, AES-GCM in the code.

A table export, a backup or the change stream shows a pairing's tokens only as one binary attribute that
nothing but KMS can open, and KMS opens it only for a role allowed `kms:Decrypt` under this encryption
context, which names the table and the tenant:

    {"purpose": "pairing-tokens", "table": <pairings table>, "tenant": <tenant>}

KMS makes a data key under that context (GenerateDataKey); the tokens are sealed with it by AES-256-GCM,
whose associated data is the blob's header, the same context and the pairing the tokens belong to: its
generation, the gateway its calls go to and the X3 identity its grant reaches. So a blob copied to
another tenant's item is refused twice (by KMS: the context differs; and by GCM), and a blob of the same
tenant written back over a later pairing, another gateway or another X3 does not open either: the row
cannot be made to serve tokens it was not sealed for.

The blob: version (1 byte) | length of the encrypted data key (2 bytes, big-endian) | encrypted data key |
nonce (12 bytes, random for every blob) | AES-GCM ciphertext and tag of `{"access_token", "refresh_token"}`.

Each execution environment keeps the data keys it obtained (made, or opened by KMS) for a bounded time
(`DataKeyCache`): a warm read opens a blob with no KMS call, and a warm write reuses the tenant's data key
(a new nonce each time) with none either. A key is kept from when KMS gave it, never refreshed by use, so
a revoked `kms:Decrypt` stops a warm environment within the cache's time at most.

A keep-alive worker is told a pairing's encrypted data key with its order (read by the scheduled run), so
it can start KMS's Decrypt on a side thread (`start_opening`) while it writes the lease: `open` then waits
for that answer instead of asking KMS after the lease. The key so opened is still cached only once a blob
proved it was sealed for the tenant.
"""

from __future__ import annotations

import contextvars
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from x3link.errors import ConfigurationError, SealedTokensUnreadable

if TYPE_CHECKING:  # imported on first use: a function that never seals or opens never loads `cryptography`
    from concurrent.futures import Future, ThreadPoolExecutor

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.type_defs import DecryptRequestTypeDef

FORMAT_VERSION = 2  # 1: sealed before blobs were bound to their pairing; no longer opened
PURPOSE = "pairing-tokens"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
# KMS refuses ciphertext blobs over 6144 bytes: a longer encrypted data key cannot be ours.
KMS_CIPHERTEXT_LIMIT = 6144
DEFAULT_TTL_SECONDS = 300.0
DEFAULT_MAX_KEYS = 500
OPENING_WAIT_SECONDS = 5.0  # past this, `open` stops waiting for a side thread's Decrypt and asks KMS itself
MAX_OPENING = 32  # Decrypts started beside a lease and not yet claimed: the oldest is forgotten first
# KMS's own verdicts on a ciphertext: not sealed by this key under this context. Anything else it says
# (throttling, 5xx, a disabled key, a missing permission) is about KMS or the bundle, not the blob.
_NOT_OURS = frozenset({"InvalidCiphertextException", "IncorrectKeyException", "ValidationException"})


def encryption_context(table: str, tenant: str) -> dict[str, str]:
    return {"purpose": PURPOSE, "table": table, "tenant": tenant}


def _associated_data(header: bytes, context: Mapping[str, str], binding: Mapping[str, str]) -> bytes:
    bound = {"context": dict(context), "pairing": dict(binding)}
    return header + json.dumps(bound, sort_keys=True, separators=(",", ":")).encode()


class _Key:
    """One plaintext data key and when it stops being used. Its repr never shows the key."""

    __slots__ = ("expires_at", "plaintext")

    def __init__(self, plaintext: bytes, expires_at: float) -> None:
        self.plaintext = plaintext
        self.expires_at = expires_at

    def __repr__(self) -> str:
        return "<data key>"


class DataKeyCache:
    """The data keys this execution environment obtained from KMS, each kept `ttl_seconds` from when KMS
    gave it and never longer; at most `max_keys` of them (the least recently used goes first).

    Keyed by tenant and encrypted data key: a key KMS opened for one tenant never serves another.
    """

    def __init__(
        self,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds < 0 or max_keys < 1:
            raise ValueError("a data key cache needs a time of 0 s or more and room for one key or more")
        self.ttl_seconds = ttl_seconds
        self.max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[tuple[str, bytes], _Key] = OrderedDict()
        self._newest: dict[str, bytes] = {}  # tenant → its encrypted data key obtained last
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"DataKeyCache({len(self._keys)} keys, ttl={self.ttl_seconds} s, max_keys={self.max_keys})"

    def get(self, tenant: str, encrypted_key: bytes) -> bytes | None:
        """The plaintext of this encrypted data key for this tenant, while it is fresh."""
        with self._lock:
            entry = self._keys.get((tenant, encrypted_key))
            if entry is None:
                return None
            if entry.expires_at <= self._clock():
                self._drop(tenant, encrypted_key)
                return None
            self._keys.move_to_end((tenant, encrypted_key))
            return entry.plaintext

    def put(self, tenant: str, encrypted_key: bytes, plaintext: bytes) -> None:
        with self._lock:
            self._keys[(tenant, encrypted_key)] = _Key(plaintext, self._clock() + self.ttl_seconds)
            self._keys.move_to_end((tenant, encrypted_key))
            self._newest[tenant] = encrypted_key
            while len(self._keys) > self.max_keys:
                (old_tenant, old_key), _ = self._keys.popitem(last=False)
                if self._newest.get(old_tenant) == old_key:
                    del self._newest[old_tenant]

    def for_sealing(self, tenant: str, valid_for: float = 0.0) -> tuple[bytes, bytes] | None:
        """The tenant's newest data key (encrypted, plaintext) if it stays fresh `valid_for` seconds more."""
        with self._lock:
            encrypted_key = self._newest.get(tenant)
            entry = self._keys.get((tenant, encrypted_key)) if encrypted_key is not None else None
            if encrypted_key is None or entry is None:
                return None
            if entry.expires_at <= self._clock() + valid_for:
                if entry.expires_at <= self._clock():
                    self._drop(tenant, encrypted_key)
                return None
            self._keys.move_to_end((tenant, encrypted_key))
            return encrypted_key, entry.plaintext

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._newest.clear()

    def _drop(self, tenant: str, encrypted_key: bytes) -> None:
        self._keys.pop((tenant, encrypted_key), None)
        if self._newest.get(tenant) == encrypted_key:
            del self._newest[tenant]


class TokenSealer:
    """Seals and opens a pairing's secret fields for one table, with the stack's key.

    `kms` builds the KMS client on first use, so a function that never seals never pays for one. KMS's
    transient failures (throttling, 5xx, the network) propagate as botocore raises them; a blob that is not
    ours raises SealedTokensUnreadable.
    """

    def __init__(
        self, kms: Callable[[], KMSClient], key_id: str, table: str, cache: DataKeyCache | None = None
    ) -> None:
        self._kms = kms
        self._key_id = key_id
        self.table = table
        self.cache = cache if cache is not None else DataKeyCache()
        self._opening: OrderedDict[tuple[str, bytes], Future[bytes]] = OrderedDict()
        self._opening_lock = threading.Lock()
        self._side: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"TokenSealer(table={self.table!r}, {self.cache!r})"

    def context(self, tenant: str) -> dict[str, str]:
        return encryption_context(self.table, tenant)

    def prepare(self, tenant: str, valid_for: float) -> None:
        """Have a data key for the tenant that stays usable `valid_for` seconds: 0 or 1 GenerateDataKey.

        Called before a refresh token is spent, so that storing what Sage answers needs no KMS call.
        """
        if self.cache.for_sealing(tenant, valid_for) is None:
            self._new_data_key(tenant)

    def start_opening(self, tenant: str, encrypted_key: bytes) -> None:
        """Start KMS's Decrypt of the tenant's data key on a side thread, unless it is cached or already
        being opened: the next `open` of a blob holding this key waits for it rather than asking KMS.

        What the key opens is proved only by a blob (`open`); a key that is not the tenant's fails in KMS
        (its context names the tenant) and `open` then says the blob is unreadable.
        """
        if not 0 < len(encrypted_key) <= KMS_CIPHERTEXT_LIMIT or self.cache.get(tenant, encrypted_key):
            return
        slot = (tenant, encrypted_key)
        with self._opening_lock:
            if slot in self._opening:
                return
            while len(self._opening) >= MAX_OPENING:
                self._opening.popitem(last=False)[1].cancel()
            if self._side is None:
                from concurrent.futures import ThreadPoolExecutor

                self._side = ThreadPoolExecutor(max_workers=2, thread_name_prefix="x3link-kms")
            # Run in a copy of the caller's context, so that what it set there (a trace, a log's keys) holds.
            run = contextvars.copy_context().run
            context = self.context(tenant)
            self._opening[slot] = self._side.submit(run, self._decrypt_data_key, encrypted_key, context)

    def stop_opening(self, tenant: str, encrypted_key: bytes) -> None:
        """Forget a Decrypt started for the tenant and not claimed (its refresh did not happen)."""
        with self._opening_lock:
            future = self._opening.pop((tenant, encrypted_key), None)
        if future is not None:
            future.cancel()

    def forget(self) -> None:
        """Drop every data key this environment holds or is opening (a SnapStart snapshot, a restore)."""
        with self._opening_lock:
            opening, self._opening = list(self._opening.values()), OrderedDict()
        for future in opening:
            future.cancel()
        self.cache.clear()

    def _opened_beside(self, tenant: str, encrypted_key: bytes) -> bytes | None:
        """The plaintext a side thread's Decrypt of this key answers, if one was started; None when none was,
        or it failed for a reason that is KMS's (the caller asks KMS itself)."""
        with self._opening_lock:
            future = self._opening.pop((tenant, encrypted_key), None)
        if future is None:
            return None
        try:
            return future.result(timeout=OPENING_WAIT_SECONDS)
        except SealedTokensUnreadable:
            raise  # KMS's verdict on this very key and context: asking again would answer the same
        except Exception:  # cancelled, late, or KMS failing for now: the caller asks once more itself
            return None

    def seal(self, tenant: str, fields: Mapping[str, str], binding: Mapping[str, str]) -> bytes:
        """The blob holding `fields` for this tenant and the pairing `binding` names: 0 KMS calls with a
        fresh cached key, else 1."""
        cached = self.cache.for_sealing(tenant)
        encrypted_key, key = cached if cached is not None else self._new_data_key(tenant)
        header = bytes([FORMAT_VERSION]) + len(encrypted_key).to_bytes(2, "big") + encrypted_key
        nonce = secrets.token_bytes(NONCE_BYTES)
        plaintext = json.dumps(dict(fields), separators=(",", ":")).encode()
        associated = _associated_data(header, self.context(tenant), binding)
        sealed = _aesgcm(key).encrypt(nonce, plaintext, associated)
        return header + nonce + sealed

    def open(self, tenant: str, blob: bytes, binding: Mapping[str, str]) -> dict[str, str]:
        """The fields sealed in `blob`, if it was sealed for this tenant in this table and for the pairing
        `binding` names: 0 or 1 KMS Decrypt."""
        from cryptography.exceptions import InvalidTag

        header, encrypted_key, nonce, sealed = _split(blob)
        context = self.context(tenant)
        key = self.cache.get(tenant, encrypted_key)
        fresh = key is None
        if key is None:
            key = self._opened_beside(tenant, encrypted_key)
        if key is None:
            key = self._decrypt_data_key(encrypted_key, context)
        try:
            plaintext = _aesgcm(key).decrypt(nonce, sealed, _associated_data(header, context, binding))
        except InvalidTag:
            raise SealedTokensUnreadable() from None
        if fresh:  # only once the blob proved it was sealed for this tenant
            self.cache.put(tenant, encrypted_key, key)
        try:
            fields = json.loads(plaintext)
        except ValueError:
            raise SealedTokensUnreadable() from None
        if not isinstance(fields, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
        ):
            raise SealedTokensUnreadable()
        return fields

    # ------------------------------------------------------------------ KMS
    def _new_data_key(self, tenant: str) -> tuple[bytes, bytes]:
        if not self._key_id:
            raise ConfigurationError("DATA_KEY_ID is not set: pairing tokens cannot be sealed.")
        made = self._kms().generate_data_key(
            KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=self.context(tenant)
        )
        encrypted_key, key = bytes(made["CiphertextBlob"]), bytes(made["Plaintext"])
        self.cache.put(tenant, encrypted_key, key)
        return encrypted_key, key

    def _decrypt_data_key(self, encrypted_key: bytes, context: dict[str, str]) -> bytes:
        from botocore.exceptions import ClientError

        request: DecryptRequestTypeDef = {"CiphertextBlob": encrypted_key, "EncryptionContext": context}
        if self._key_id:
            request["KeyId"] = self._key_id  # only our key may have sealed it
        try:
            key = bytes(self._kms().decrypt(**request)["Plaintext"])
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _NOT_OURS:
                raise SealedTokensUnreadable() from None
            raise
        if len(key) != KEY_BYTES:
            raise SealedTokensUnreadable()
        return key


def encrypted_data_key(blob: bytes) -> bytes | None:
    """The encrypted data key in a blob's header (what KMS must open to read it); None if it has none."""
    try:
        return _split(blob)[1]
    except SealedTokensUnreadable:
        return None


def _aesgcm(key: bytes) -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _split(blob: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(header, encrypted data key, nonce, ciphertext and tag) of a blob of this format."""
    if len(blob) < 3 or blob[0] != FORMAT_VERSION:
        raise SealedTokensUnreadable()
    length = int.from_bytes(blob[1:3], "big")
    header_end = 3 + length
    if not 0 < length <= KMS_CIPHERTEXT_LIMIT or len(blob) < header_end + NONCE_BYTES + TAG_BYTES:
        raise SealedTokensUnreadable()
    nonce_end = header_end + NONCE_BYTES
    return blob[:header_end], blob[3:header_end], blob[header_end:nonce_end], blob[nonce_end:]
