"""The token sealer on its own (tokens/sealing.py), with a fake KMS: a blob opens for its tenant only, an
altered or moved blob does not open, warm seals make no KMS call, data keys are cached for a bounded time
(the sealer in the stack: tests/component/test_sealed_tokens.py)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

import pytest

from x3link.errors import SealedTokensUnreadable
from x3link.tokens.sealing import (
    MAX_OPENING,
    DataKeyCache,
    TokenSealer,
    encrypted_data_key,
    encryption_context,
)

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

TOKENS = {"access_token": "ACCESS-aaaaaaaaaaaaaaaaaaaa", "refresh_token": "REFRESH-rrrrrrrrrrrrrrrrrrrr"}
BINDING = {
    "generation": "g1",
    "endpoint": "https://api.eu-prod-sagex3.com/v1",
    "x3_issuer": "",
    "x3_subject": "",
}


# ---------------------------------------------------------------------------------------------- helpers
class FakeKms:
    """KMS as far as envelope keys go, counting its calls. `ignores_context`: a KMS that would hand back
    a data key under any encryption context, so that only the code's own check (GCM's associated data)
    is left."""

    def __init__(self, *, ignores_context: bool = False) -> None:
        self.calls: Counter[str] = Counter()
        self.ignores_context = ignores_context
        self._keys: dict[bytes, tuple[bytes, dict[str, str]]] = {}

    def generate_data_key(
        self, KeyId: str, KeySpec: str, EncryptionContext: dict[str, str]
    ) -> dict[str, Any]:
        self.calls["GenerateDataKey"] += 1
        assert KeySpec == "AES_256"
        encrypted = f"edk-{len(self._keys)}".encode()
        plaintext = bytes([len(self._keys) + 1]) * 32
        self._keys[encrypted] = (plaintext, dict(EncryptionContext))
        return {"CiphertextBlob": encrypted, "Plaintext": plaintext, "KeyId": KeyId}

    def decrypt(self, CiphertextBlob: bytes, EncryptionContext: dict[str, str], **_: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls["Decrypt"] += 1
        plaintext, context = self._keys.get(CiphertextBlob, (b"", {}))
        if not plaintext or (context != EncryptionContext and not self.ignores_context):
            error = {"Error": {"Code": "InvalidCiphertextException", "Message": "no"}}
            raise ClientError(error, "Decrypt")  # type: ignore[arg-type]
        return {"Plaintext": plaintext}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sealer(
    kms: FakeKms, cache: DataKeyCache | None = None, table: str = "local-PairingsTable"
) -> TokenSealer:
    return TokenSealer(lambda: cast("KMSClient", kms), "key-id", table, cache)


# ---------------------------------------------------------------------------------------------- the sealer
def test_a_sealed_blob_opens_for_its_tenant_only_and_shows_nothing() -> None:
    kms = FakeKms()
    seal = sealer(kms)

    blob = seal.seal("acme", TOKENS, BINDING)

    assert all(value.encode() not in blob for value in TOKENS.values())
    assert seal.open("acme", blob, BINDING) == TOKENS
    assert sealer(kms).open("acme", blob, BINDING) == TOKENS  # another environment: KMS opens its data key
    with pytest.raises(SealedTokensUnreadable):
        sealer(kms).open("globex", blob, BINDING)  # KMS refuses: the context names acme
    with pytest.raises(SealedTokensUnreadable):
        sealer(kms, table="other-table").open("acme", blob, BINDING)


def test_the_code_refuses_a_moved_blob_even_when_kms_would_open_it() -> None:
    """A KMS that ignored the encryption context: GCM's associated data names the tenant and table too."""
    kms = FakeKms(ignores_context=True)
    blob = sealer(kms).seal("acme", TOKENS, BINDING)

    with pytest.raises(SealedTokensUnreadable):
        sealer(kms).open("globex", blob, BINDING)
    with pytest.raises(SealedTokensUnreadable):
        sealer(kms, table="other-table").open("acme", blob, BINDING)
    assert sealer(kms).open("acme", blob, BINDING) == TOKENS


def test_a_warm_environment_does_not_hand_one_tenants_key_to_another() -> None:
    kms = FakeKms(ignores_context=True)
    seal = sealer(kms)
    blob = seal.seal("acme", TOKENS, BINDING)
    assert seal.open("acme", blob, BINDING) == TOKENS  # acme's data key is cached

    with pytest.raises(SealedTokensUnreadable):
        seal.open("globex", blob, BINDING)
    assert len(seal.cache) == 1  # nothing was cached for globex from acme's blob


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),  # the tag
        lambda blob: blob[:-20] + bytes([blob[-20] ^ 1]) + blob[-19:],  # the ciphertext
        lambda blob: bytes([3]) + blob[1:],  # an unknown format
        lambda blob: blob[:10],  # cut short
        lambda blob: b"",
    ],
)
def test_an_altered_blob_does_not_open(damage: Any) -> None:
    kms = FakeKms()
    seal = sealer(kms)
    blob = seal.seal("acme", TOKENS, BINDING)

    with pytest.raises(SealedTokensUnreadable) as refused:
        seal.open("acme", damage(blob), BINDING)

    assert refused.value.code == "tokens_unreadable" and refused.value.status == 500
    assert not any(value in refused.value.message for value in TOKENS.values())


def test_warm_seals_and_opens_make_no_kms_call_and_never_repeat_a_nonce() -> None:
    kms = FakeKms()
    seal = sealer(kms)

    blobs = [seal.seal("acme", TOKENS, BINDING) for _ in range(20)]
    opened = [seal.open("acme", blob, BINDING) for blob in blobs]

    assert kms.calls == Counter({"GenerateDataKey": 1})
    assert opened == [TOKENS] * 20
    nonces = {blob[3 + len(b"edk-0") :][:12] for blob in blobs}
    assert len(nonces) == 20  # one data key, a random nonce for every blob
    seal.seal("globex", TOKENS, BINDING)
    assert kms.calls == Counter({"GenerateDataKey": 2})  # a key per tenant


def test_a_cached_data_key_is_used_for_a_bounded_time_only() -> None:
    kms, clock = FakeKms(), Clock()
    writer = sealer(kms)
    blob = writer.seal("acme", TOKENS, BINDING)
    reader = sealer(kms, DataKeyCache(ttl_seconds=300, clock=clock))

    reader.open("acme", blob, BINDING)
    clock.now += 299
    reader.open("acme", blob, BINDING)
    assert kms.calls["Decrypt"] == 1
    clock.now += 1  # 300 s after KMS gave it: used no more, whatever its use meanwhile
    reader.open("acme", blob, BINDING)
    assert kms.calls["Decrypt"] == 2
    clock.now += 300
    reader.seal("acme", TOKENS, BINDING)  # a write after the time is up asks for a new data key
    assert kms.calls["GenerateDataKey"] == 2


def test_the_cache_never_holds_more_than_its_size_and_drops_the_least_recently_used() -> None:
    kms = FakeKms()
    seal = sealer(kms, DataKeyCache(max_keys=3))
    blobs = {tenant: seal.seal(tenant, TOKENS, BINDING) for tenant in ("t0", "t1", "t2")}
    seal.open("t0", blobs["t0"], BINDING)  # t0 used last: t1 is now the least recently used

    for n in range(3, 12):
        blobs[f"t{n}"] = seal.seal(f"t{n}", TOKENS, BINDING)
        assert len(seal.cache) <= 3
    assert kms.calls["GenerateDataKey"] == 12

    seal.open("t11", blobs["t11"], BINDING)
    assert kms.calls["Decrypt"] == 0
    seal.open("t1", blobs["t1"], BINDING)  # dropped long ago: KMS again
    assert kms.calls["Decrypt"] == 1
    assert len(seal.cache) == 3


def test_prepare_makes_a_key_that_outlasts_the_refresh_before_the_token_is_spent() -> None:
    kms, clock = FakeKms(), Clock()
    seal = sealer(kms, DataKeyCache(ttl_seconds=300, clock=clock))
    seal.prepare("acme", 60)
    seal.prepare("acme", 60)
    assert kms.calls["GenerateDataKey"] == 1
    clock.now += 250  # 50 s left: not enough for a refresh that may take 60
    seal.prepare("acme", 60)
    assert kms.calls["GenerateDataKey"] == 2
    seal.seal("acme", TOKENS, BINDING)
    assert kms.calls["GenerateDataKey"] == 2


def test_no_repr_shows_key_material() -> None:
    kms = FakeKms()
    seal = sealer(kms)
    seal.seal("acme", TOKENS, BINDING)
    key = next(iter(kms._keys.values()))[0]

    for text in (repr(seal), str(seal), repr(seal.cache), repr(list(seal.cache._keys.values()))):
        assert key.hex() not in text and repr(key) not in text and key.decode("latin-1") not in text


def test_the_encryption_context_names_purpose_table_and_tenant() -> None:
    assert encryption_context("tbl", "acme") == {
        "purpose": "pairing-tokens",
        "table": "tbl",
        "tenant": "acme",
    }


@pytest.mark.parametrize(
    "other",
    [
        {**BINDING, "generation": "g0"},  # an earlier pairing of the same tenant
        {**BINDING, "endpoint": "https://api.us-prod-sagex3.com/v1"},  # another gateway
        {**BINDING, "x3_issuer": "api.eu-prod-sagex3.com", "x3_subject": "ANOTHER-X3"},  # another X3
    ],
)
def test_a_blob_opens_only_for_the_pairing_it_was_sealed_for(other: dict[str, str]) -> None:
    kms = FakeKms()
    blob = sealer(kms).seal("acme", TOKENS, other)

    with pytest.raises(SealedTokensUnreadable):
        sealer(kms).open("acme", blob, BINDING)  # written back over this pairing's row: refused
    assert sealer(kms).open("acme", blob, other) == TOKENS


def test_a_blob_of_the_format_before_binding_does_not_open() -> None:
    kms = FakeKms()
    blob = sealer(kms).seal("acme", TOKENS, BINDING)

    with pytest.raises(SealedTokensUnreadable):
        sealer(kms).open("acme", bytes([1]) + blob[1:], BINDING)


# ---------------------------------------------------------------------------------------------- opened beside
class GatedKms(FakeKms):
    """A fake KMS whose Decrypt waits for `release` and says when it was entered; `fail_first` makes its
    first Decrypt throttled (KMS failing for now)."""

    def __init__(self, *, fail_first: bool = False) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()
        self.fail_first = fail_first
        self.threads: list[str] = []

    def decrypt(self, CiphertextBlob: bytes, EncryptionContext: dict[str, str], **kw: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(5)
        if self.fail_first and sum(self.calls.values()) == self.calls["GenerateDataKey"]:
            self.calls["Decrypt"] += 1
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "Decrypt")
        return super().decrypt(CiphertextBlob, EncryptionContext, **kw)


def sealed_elsewhere(kms: FakeKms, tenant: str = "acme") -> bytes:
    """A blob sealed by another environment: this one's cache does not hold its key."""
    return sealer(kms).seal(tenant, TOKENS, BINDING)


def test_a_data_key_started_beside_is_opened_on_a_side_thread_once_and_claimed_by_open() -> None:
    kms = GatedKms()
    blob = sealed_elsewhere(kms)
    reader = sealer(kms)
    key = encrypted_data_key(blob)
    assert key is not None

    reader.start_opening("acme", key)
    assert kms.entered.wait(5)  # KMS was asked before open was called: beside whatever runs meanwhile
    kms.release.set()
    opened = reader.open("acme", blob, BINDING)

    assert opened == TOKENS
    assert kms.calls["Decrypt"] == 1
    assert kms.threads[0].startswith("x3link-kms")
    reader.open("acme", blob, BINDING)
    assert kms.calls["Decrypt"] == 1  # the blob proved the key: cached as any opened key


def test_concurrent_starts_of_one_key_ask_kms_once() -> None:
    kms = GatedKms()
    blob = sealed_elsewhere(kms)
    reader, key = sealer(kms), cast("bytes", encrypted_data_key(blob))

    reader.start_opening("acme", key)
    reader.start_opening("acme", key)
    kms.release.set()
    reader.open("acme", blob, BINDING)

    assert kms.calls["Decrypt"] == 1


def test_a_key_opened_beside_but_not_claimed_is_never_cached() -> None:
    kms = GatedKms()
    kms.release.set()
    blob = sealed_elsewhere(kms)
    reader, key = sealer(kms), cast("bytes", encrypted_data_key(blob))

    reader.start_opening("acme", key)
    assert kms.entered.wait(5)
    reader.stop_opening("acme", key)

    assert len(reader.cache) == 0  # only a blob that opens proves a key: none did
    reader.open("acme", blob, BINDING)
    assert kms.calls["Decrypt"] == 2  # the forgotten answer was not used


def test_kms_failing_beside_costs_one_more_decrypt_not_the_refresh() -> None:
    kms = GatedKms(fail_first=True)
    kms.release.set()
    blob = sealed_elsewhere(kms)
    reader, key = sealer(kms), cast("bytes", encrypted_data_key(blob))

    reader.start_opening("acme", key)
    opened = reader.open("acme", blob, BINDING)

    assert opened == TOKENS
    assert kms.calls["Decrypt"] == 2


def test_another_tenants_key_started_beside_opens_nothing_for_this_one() -> None:
    kms = GatedKms()
    kms.release.set()
    mine, theirs = sealed_elsewhere(kms, "acme"), sealed_elsewhere(kms, "globex")
    reader = sealer(kms)
    their_key = cast("bytes", encrypted_data_key(theirs))

    reader.start_opening("acme", their_key)  # an order naming globex's key for acme
    with pytest.raises(SealedTokensUnreadable):  # globex's blob under acme's name
        reader.open("acme", theirs, BINDING)
    assert "MainThread" not in kms.threads  # KMS's refusal beside was the verdict: it is not asked twice

    assert reader.open("acme", mine, BINDING) == TOKENS  # acme's own key, asked of KMS by open
    assert kms.threads.count("MainThread") == 1


def test_forget_drops_the_keys_being_opened_and_the_cached_ones() -> None:
    kms = GatedKms()
    blob = sealed_elsewhere(kms)
    reader, key = sealer(kms), cast("bytes", encrypted_data_key(blob))
    reader.start_opening("acme", key)
    assert kms.entered.wait(5)

    reader.forget()  # a SnapStart snapshot or restore: nothing opened before it is used after it
    kms.release.set()
    reader.open("acme", blob, BINDING)

    assert kms.threads[1:] == ["MainThread"]  # open asked KMS itself


def test_no_more_than_a_bounded_number_of_keys_wait_to_be_claimed() -> None:
    kms = GatedKms()
    blobs = [sealed_elsewhere(kms, f"t{n}") for n in range(MAX_OPENING + 5)]
    reader = sealer(kms)
    for n, blob in enumerate(blobs):
        reader.start_opening(f"t{n}", cast("bytes", encrypted_data_key(blob)))
    kms.release.set()

    reader.open("t0", blobs[0], BINDING)  # forgotten (the oldest): asked again
    assert kms.threads.count("MainThread") == 1
    reader.open(f"t{len(blobs) - 1}", blobs[-1], BINDING)  # still waiting: claimed
    assert kms.threads.count("MainThread") == 1


@pytest.mark.parametrize("blob", [b"", b"\x02", b"\x01\x00\x03abc" + b"n" * 40, b"\x02\x00\x00" + b"n" * 40])
def test_a_blob_with_no_usable_header_names_no_data_key(blob: bytes) -> None:
    assert encrypted_data_key(blob) is None


def test_a_key_too_long_for_kms_is_never_sent_to_it() -> None:
    kms = GatedKms()
    reader = sealer(kms)
    reader.start_opening("acme", b"k" * 6145)
    reader.start_opening("acme", b"")
    assert not kms.entered.wait(0.2)
