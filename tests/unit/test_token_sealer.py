"""The token sealer on its own (tokens/sealing.py), with a fake KMS: a blob opens for its tenant only, an
altered or moved blob does not open, warm seals make no KMS call, data keys are cached for a bounded time
(the sealer in the stack: tests/component/test_sealed_tokens.py)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, cast

import pytest

from x3link.errors import SealedTokensUnreadable
from x3link.tokens.sealing import DataKeyCache, TokenSealer, encryption_context

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
