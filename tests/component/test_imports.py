"""Cold start guard: a handler imports only what it uses; test and local tooling never reach Lambda. Each
is imported as Lambda's init does it, with its environment from the template: its clients are built then."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from local import template as tpl
from tests.support import cold_import

ROOT = Path(__file__).parents[2]
NEVER_IN_LAMBDA = {"moto", "yaml", "local", "pytest", "aws_xray_sdk", "pydantic"}
BASE_ENV = {"PATH": "/usr/bin:/bin", "POWERTOOLS_SERVICE_NAME": "probe", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def environments() -> dict[str, dict[str, str]]:
    return cold_import.template_environments()


def _imported_by(logical_id: str, environment: dict[str, str]) -> set[str]:
    """Every module the handler's init imported, packages and submodules alike."""
    spec = tpl.functions()[logical_id]
    probe = (
        "import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import app; "
        "print(json.dumps(sorted(set(sys.modules) | {name.split('.')[0] for name in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(spec.code_uri), str(ROOT / "layers/common")],
        capture_output=True,
        text=True,
        check=True,
        env={**environment, **BASE_ENV},
    ).stdout
    return set(json.loads(out))


@pytest.mark.parametrize("logical_id", sorted(tpl.functions()))
def test_handlers_import_no_tooling(logical_id: str, environments: dict[str, dict[str, str]]) -> None:
    assert _imported_by(logical_id, environments[logical_id]) & NEVER_IN_LAMBDA == set()


@pytest.mark.parametrize("logical_id", ["TenantsFunction", "PairingStartFunction"])
def test_handlers_that_never_call_sage_do_not_load_the_sage_client(
    logical_id: str, environments: dict[str, dict[str, str]]
) -> None:
    imported = _imported_by(logical_id, environments[logical_id])
    assert {"x3link.sage.client", "x3link.data.session"} & imported == set()


@pytest.mark.parametrize("logical_id", sorted(tpl.functions()))
def test_handlers_pin_the_sdks_loggers_at_warning_whatever_the_level(
    logical_id: str, environments: dict[str, dict[str, str]]
) -> None:
    """Their DEBUG lines carry whole requests and answers (signatures, the client secret, tokens)."""
    spec = tpl.functions()[logical_id]
    names = ["boto3", "botocore", "botocore.endpoint", "botocore.parsers", "urllib3.connectionpool"]
    probe = (
        "import json, logging, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
        "logging.basicConfig(level=logging.DEBUG); import app; "
        "print(json.dumps({name: logging.getLogger(name).getEffectiveLevel() for name in sys.argv[3:]}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(spec.code_uri), str(ROOT / "layers/common"), *names],
        capture_output=True,
        text=True,
        check=True,
        env={**environments[logical_id], **BASE_ENV, "POWERTOOLS_LOG_LEVEL": "DEBUG"},
    ).stdout
    assert json.loads(out) == dict.fromkeys(names, logging.WARNING)


def _collector_after_init(logical_id: str, environment: dict[str, str]) -> dict[str, object]:
    """Whether the collector runs after the handler's init, and which of the layer's modules the handler
    imported after x3link.wiring are still in the collector's reach (not frozen)."""
    spec = tpl.functions()[logical_id]
    probe = (
        "import gc, json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import x3link.wiring; "
        "before = set(sys.modules); import app; "
        "walked = {id(o) for o in gc.get_objects()}; "
        "later = sorted(n for n in set(sys.modules) - before if n.startswith('x3link')); "
        "print(json.dumps({'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count(), 'later': later, "
        "'walked': [n for n in later if id(vars(sys.modules[n])) in walked]}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(spec.code_uri), str(ROOT / "layers/common")],
        capture_output=True,
        text=True,
        check=True,
        env={**environment, **BASE_ENV},
    ).stdout
    return dict(json.loads(out))


@pytest.mark.parametrize("logical_id", sorted(tpl.functions()))
def test_on_lambda_init_gives_the_collector_back_with_the_layers_modules_frozen(
    logical_id: str, environments: dict[str, dict[str, str]]
) -> None:
    """Importing x3link.wiring pauses the collector; the handler's prime resumes it, and the modules
    imported in between (exports/sync.py and the rest) are frozen with the clients: no collection walks
    them."""
    environment = {**environments[logical_id], "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}
    seen = _collector_after_init(logical_id, environment)
    assert seen["enabled"] is True
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 0
    assert seen["walked"] == []


def test_elsewhere_init_leaves_the_collector_alone(environments: dict[str, dict[str, str]]) -> None:
    environment = {
        k: v for k, v in environments["ExportSyncFunction"].items() if k != "AWS_LAMBDA_RUNTIME_API"
    }
    seen = _collector_after_init("ExportSyncFunction", environment)
    assert seen["enabled"] is True
    assert seen["frozen"] == 0
    assert seen["later"] != [] and seen["walked"] == seen["later"]
