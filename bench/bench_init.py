"""`make bench`'s "init against the floor": each handler's init as Lambda pays it, against a minimal
Powertools REST handler building the same boto3 clients, both measured in one run.

Init here is a fresh interpreter of the runtime's Python (no writable bytecode cache, as on Lambda)
importing the built handler and then building what its first request builds if its import did not: the
wiring's services it asks for and the boto3 clients those build, eagerly or on first use. Measured that way
the figure means the same whether a handler builds its clients at import (SnapStart) or on first request.

The floor is the least any Powertools REST handler with those clients could cost: an APIGatewayRestResolver
with one route, `import boto3`, and the same clients built with the same botocore Config. It is generated
in a temporary folder, never shipped, and imported from the same built layer (Powertools' bytecode).

Run alone: `PYTHONPATH=layers/common .venv/bin/python -m bench.bench_init`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import cold_import

INIT_GOAL = 1.05  # slowest handler init / the floor with the same clients
INIT_RUNS = int(os.environ.get("BENCH_INIT_RUNS", "11"))


@dataclass(frozen=True)
class HandlerInit:
    factories: tuple[str, ...]  # the x3link.wiring functions the handler calls
    clients: tuple[str, ...]  # the boto3 services those build, at once or on first use in a request


KEEPER = ("dynamodb", "kms", "secretsmanager", "sqs")  # token_keeper(): store, sealer, credentials, rescue
# What each function's first request builds (read from its app.py and x3link/wiring.py);
# tests/unit/test_bench_init.py holds it to template.yaml's functions and the handlers' wiring calls.
HANDLERS: dict[str, HandlerInit] = {
    "ActivityFunction": HandlerInit(("activity_log",), ("dynamodb",)),
    "ActivityRecorderFunction": HandlerInit(("activity_log",), ("dynamodb",)),
    # The pairing service's store seals with KMS (the callback) and its credentials come from Secrets Manager.
    "CallbackFunction": HandlerInit(("pairing_service", "settings"), ("dynamodb", "kms", "secretsmanager")),
    "DataDeliveryFunction": HandlerInit(("sage_client", "token_keeper"), KEEPER),
    "DataIngestionFunction": HandlerInit(("sage_client", "token_keeper", "upload_log"), KEEPER),
    "FoldersFunction": HandlerInit(("sage_client", "token_keeper"), KEEPER),
    "KeepAliveRunsFunction": HandlerInit(("run_ledger",), ("dynamodb",)),
    # A notification recorded queues an export scan (export_poller: the delivery table and queue).
    "NotificationsFunction": HandlerInit(
        ("client_credentials", "notification_inbox", "export_poller"), KEEPER
    ),
    "ExportPollFunction": HandlerInit(("export_poller",), ("dynamodb", "sqs")),
    "ExportSyncFunction": HandlerInit(("sync_switch",), ("dynamodb",)),
    "ExportWorkerFunction": HandlerInit(("export_worker",), (*KEEPER, "s3")),
    "PairLinkFunction": HandlerInit(("pairing_service",), ("dynamodb", "secretsmanager")),
    "OutboxWorkerFunction": HandlerInit(("outbox_worker",), (*KEEPER, "s3")),
    "PairingEventsFunction": HandlerInit(("event_publisher",), ("events",)),
    "PairingLinksFunction": HandlerInit(("pairing_states",), ("dynamodb",)),
    "PairingRefreshFunction": HandlerInit(("token_keeper",), KEEPER),
    "PairingStartFunction": HandlerInit(("pairing_service", "settings"), ("dynamodb", "secretsmanager")),
    "RefreshWorkerFunction": HandlerInit(("keep_alive_worker",), KEEPER),
    "TenantsFunction": HandlerInit(("pairing_records",), ("dynamodb",)),
    "TokenRefreshFunction": HandlerInit(("keep_alive_dispatcher", "run_ledger"), KEEPER),
    "TokenRescueFunction": HandlerInit(("token_keeper", "token_rescue"), KEEPER),
}

# Factories whose call reaches the network (a secret read): init builds their client, not their answer.
NETWORK_FACTORIES = {"client_credentials": "credentials_source"}

# The settings every function's environment holds (template.yaml), with made-up values; and credentials
# in the environment, as Lambda gives them, so no client looks for others (no metadata endpoint).
INIT_ENV = {
    "AWS_ACCESS_KEY_ID": "ASIABENCH",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "SAGE_X3_URL": "https://x3.example.com",
    "PAIRINGS_TABLE": "pairings",
    "PAIRING_STATES_TABLE": "states",
    "CLIENT_CREDENTIALS_SECRET": "credentials",
    "PAIRING_EVENTS_BUS": "events",
    "TOKEN_RESCUE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/rescue",
    "TOKEN_RESCUE_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/rescue-dlq",
    "REFRESH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/refresh",
    "NOTIFICATIONS_TABLE": "notifications",
    "ACTIVITY_TABLE": "activity",
    "UPLOADS_TABLE": "uploads",
    "OUTBOX_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/outbox",
    "DELIVERY_TABLE": "delivery",
    "DELIVERY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/delivery",
    "DELIVERY_BUCKET": "delivery-bucket",
    "DATA_KEY_ID": "alias/bench",
    "POWERTOOLS_METRICS_NAMESPACE": "Bench",
}

# The same bounded Config as x3link.wiring.aws_client, so the floor's clients cost what ours do.
CLIENT_CONFIG = "Config(retries={'mode': 'standard', 'max_attempts': 2}, connect_timeout=1, read_timeout=3)"


def handler_init_code(spec: HandlerInit) -> str:
    """What a fresh interpreter runs, timed, for a handler: its import, then what its first request builds."""
    calls = [f"wiring.{NETWORK_FACTORIES.get(name, name)}()" for name in spec.factories]
    calls += [f"wiring.aws_client({service!r})" for service in spec.clients]
    return "import app; from x3link import wiring; " + "; ".join(calls)


def floor_source(clients: tuple[str, ...]) -> str:
    """The minimal Powertools REST handler: one route, boto3, the same clients; nothing else."""
    built = "".join(
        f"CLIENTS.append(boto3.session.Session().client({s!r}, config=CONFIG))\n" for s in clients
    )
    return (
        "import boto3\n"
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver\n"
        "from botocore.config import Config\n\n"
        "app = APIGatewayRestResolver()\n"
        f"CONFIG = {CLIENT_CONFIG}\n"
        "CLIENTS = []\n"
        f"{built}\n\n"
        "@app.get('/ping')\n"
        "def ping():\n"
        "    return {'ok': True}\n\n\n"
        "def lambda_handler(event, context):\n"
        "    return app.resolve(event, context)\n"
    )


def floor_module(clients: tuple[str, ...]) -> str:
    return "floor_" + ("_".join(clients) or "none")


def one_run(python: str, code: str, path: list[Path]) -> float:
    """Seconds `code` takes in one fresh interpreter (-I -B: no PYTHON* variables, no bytecode written)."""
    script = (
        "import sys, time; sys.path[:0] = sys.argv[1:]; t = time.perf_counter(); "
        f"{code}; print(time.perf_counter() - t)"
    )
    env = {"PATH": os.environ.get("PATH", ""), **cold_import.HANDLER_ENV, **INIT_ENV}
    done = subprocess.run(
        [python, "-I", "-B", "-c", script, *map(str, path)], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"init failed: {code}\n{done.stderr[-2000:]}")
    return float(done.stdout)


def init_against_floor(
    python: str, built: cold_import.Built, boto3: Path, runs: int = INIT_RUNS
) -> dict[str, Any]:
    """Median init per handler and per floor (rounds interleaved: noise hits both), and each ratio."""
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        floors = Path(tmp)
        for clients in {spec.clients for spec in HANDLERS.values()}:
            (floors / f"{floor_module(clients)}.py").write_text(floor_source(clients))
        subjects: dict[str, tuple[str, list[Path]]] = {
            name: (handler_init_code(spec), [built.functions[name], built.layer, boto3])
            for name, spec in sorted(HANDLERS.items())
            if name in built.functions
        }
        for clients in {spec.clients for spec in HANDLERS.values()}:
            module = floor_module(clients)
            subjects[module] = (f"import {module}", [floors, built.layer, boto3])
        samples: dict[str, list[float]] = {name: [] for name in subjects}
        for _ in range(runs):
            for name, (code, path) in subjects.items():
                samples[name].append(one_run(python, code, path))
    median_ms = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    floor_ms = {
        name: median_ms[floor_module(spec.clients)] for name, spec in HANDLERS.items() if name in median_ms
    }
    ratios = {name: median_ms[name] / floor for name, floor in floor_ms.items()}
    slowest = max(ratios, key=ratios.__getitem__)
    return {
        "runs": runs,
        "handlers": {
            name: {
                "init_ms": round(median_ms[name], 1),
                "floor_ms": round(floor_ms[name], 1),
                "clients": list(HANDLERS[name].clients),
                "ratio": round(ratios[name], 3),
                "goal": INIT_GOAL,
                "met": ratios[name] <= INIT_GOAL,
            }
            for name in sorted(ratios)
        },
        "slowest": slowest,
        "slowest_ratio": round(ratios[slowest], 3),
        "goal": INIT_GOAL,
        "met": ratios[slowest] <= INIT_GOAL,
    }


def main() -> None:
    found = cold_import.runtime()
    if found.python is None:
        raise SystemExit(f"no Python {found.version} interpreter (pyenv install {found.version})")
    with tempfile.TemporaryDirectory() as tmp:
        built = cold_import.build(Path(tmp) / "build")
        boto3 = cold_import.install_boto3(found.python, Path(tmp) / "boto3")
        print(json.dumps(init_against_floor(found.python, built, boto3), indent=2))


if __name__ == "__main__":
    main()
