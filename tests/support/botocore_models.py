"""botocore's model files, its event names' aliases, and moto's throwaway keys, made once per test process
rather than once per client or per key.

Every `boto3.session.Session()` has a loader of its own, and the layer makes a new session for each client
(wiring.aws_client), as do moto's fixtures: each test would parse the same service models and endpoint
rules (megabytes of JSON) again, about 70 ms of CPU per client, and list botocore's data directories again
(hundreds of `listdir`/`stat` calls, about 12 ms) to check the service's name. The files never change
during a run, and botocore already shares one parsed copy and one listing among a session's clients (its
loader's instance cache), so sharing them among sessions changes nothing a test can see.

moto gives every KMS key an RSA-2048 private key, which only asymmetric signing uses; generating one costs
about 50 ms, a quarter of creating the template's resources for a test. Our keys are symmetric
(SYMMETRIC_DEFAULT): they share one such key, made once.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.loaders import JSONFileLoader, Loader


def share_parsed_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on (until `monkeypatch` is undone), each model file is read and parsed once, each data
    directory listed once, and moto's symmetric keys share one unused private key."""
    parse = JSONFileLoader.load_file
    parsed: dict[str, Any] = {}

    def load_file(self: JSONFileLoader, file_path: str) -> Any:
        if file_path not in parsed:
            parsed[file_path] = parse(self, file_path)
        return parsed[file_path]

    monkeypatch.setattr(JSONFileLoader, "load_file", load_file)

    list_services = Loader.list_available_services  # botocore caches it per loader, so per session
    listed: dict[tuple[tuple[str, ...], str], list[str]] = {}

    def list_available_services(self: Loader, type_name: str) -> list[str]:
        where = (tuple(self.search_paths), type_name)
        if where not in listed:
            listed[where] = list_services(self, type_name)
        return list(listed[where])

    monkeypatch.setattr(Loader, "list_available_services", list_available_services)
    _share_event_name_aliases(monkeypatch)
    _share_symmetric_keys_private_key(monkeypatch)


def _share_event_name_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore spells each event name through its aliases once per session (its cache is the session's
    emitter's): about 150 handlers registered, each name split and searched, for every new client's
    session. With botocore's own aliases the answer depends on the name alone, so sessions share it."""
    from botocore import hooks

    alias = getattr(hooks.EventAliaser, "_alias_event_name")  # noqa: B009  # botocore-stubs leave it out
    shared: dict[str, str] = {}

    def _alias_event_name(self: hooks.EventAliaser, event_name: str) -> str:
        if getattr(self, "_event_aliases", None) is not hooks.EVENT_ALIASES:
            return str(alias(self, event_name))
        if event_name not in shared:
            shared[event_name] = alias(self, event_name)
        return shared[event_name]

    monkeypatch.setattr(hooks.EventAliaser, "_alias_event_name", _alias_event_name)


def _share_symmetric_keys_private_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.kms.models
    from moto.kms.utils import generate_private_key as generate

    shared: dict[str, Any] = {}

    def generate_private_key(key_spec: str) -> Any:
        if key_spec != "SYMMETRIC_DEFAULT":
            return generate(key_spec)
        if "key" not in shared:
            shared["key"] = generate(key_spec)
        return shared["key"]

    monkeypatch.setattr(moto.kms.models, "generate_private_key", generate_private_key)
