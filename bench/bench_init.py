"""`make bench`'s "init against the floor": each handler's init as Lambda pays it, against a minimal
Powertools REST handler building the same boto3 clients, both measured in one run.

Init here is a fresh interpreter of the runtime's Python (no writable bytecode cache, as on Lambda)
importing the built handler and then building what its first request builds if its import did not: the
wiring's services it asks for and the boto3 clients those build, eagerly or on first use. Measured that way
the figure means the same whether a handler builds its clients at import (SnapStart) or on first request.

The floor is the least any Powertools REST handler with those clients could cost: an APIGatewayRestResolver
with one route, `import boto3`, and the same clients built with the same botocore Config. It is generated
in a temporary folder, never shipped, and imported from the same built layer (Powertools' bytecode).

How it is counted, and why (on a busy machine, lone medians of wall time put handlers from 0.72 to 1.36):
- Processor time, not the clock. Init is all processor work (imports from files the page cache holds,
  objects built): on Lambda it has a core to itself and its wall time is its processor time. On a shared
  machine the clock also counts the time the interpreter waited for a core, which depends on what else
  runs; its processor time (user + system) does not. The clock's figures are reported beside it.
- Paired runs. Each round runs every handler and, right before or right after it (the order alternates
  by round), its floor: the two interpreters start within a second of each other, so what slows the
  machine then (caches, clock speed) mostly slows both, and each pair gives one ratio in which it cancels.
- The median of those per-pair ratios is the figure held to the goal: a round where a burst hit only one
  side is one outlier among `runs`, which the median ignores and a mean would not.
- Reported beside it: the spread of the per-pair ratios (quartiles, least and most), so a reader sees how
  far to trust it; and the ratio of each side's least time (min-of-N: the least disturbed run of each), a
  second estimate that agrees with the first when the measurement is sound.

Run alone: `PYTHONPATH=layers/common .venv/bin/python -m bench.bench_init`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import cold_import

INIT_GOAL = 1.05  # slowest handler init / the floor with the same clients
INIT_RUNS = int(os.environ.get("BENCH_INIT_RUNS", "15"))  # pairs per handler: its median ratio holds to ~1 %


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
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",  # as Lambda sets it: wiring.prime freezes what init built
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


@dataclass(frozen=True)
class Timing:
    wall_s: float  # what the init took, by the clock
    cpu_s: float  # the processor time it used (user + system): its wall time on a core of its own


def one_run(python: str, code: str, path: list[Path]) -> Timing:
    """What `code` takes in one fresh interpreter (-I -B: no PYTHON* variables, no bytecode written)."""
    script = (
        "import sys, time; sys.path[:0] = sys.argv[1:]; t, c = time.perf_counter(), time.process_time(); "
        f"{code}; print(time.perf_counter() - t, time.process_time() - c)"
    )
    env = {"PATH": os.environ.get("PATH", ""), **cold_import.HANDLER_ENV, **INIT_ENV}
    done = subprocess.run(
        [python, "-I", "-B", "-c", script, *map(str, path)], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"init failed: {code}\n{done.stderr[-2000:]}")
    wall, cpu = map(float, done.stdout.split())
    return Timing(wall, cpu)


@dataclass(frozen=True)
class Paired:
    """One handler's paired runs: its init and its floor's, in seconds, the i-th of each from one round."""

    handler_s: tuple[float, ...]
    floor_s: tuple[float, ...]

    def ratios(self) -> list[float]:
        return [handler / floor for handler, floor in zip(self.handler_s, self.floor_s, strict=True)]

    def summary(self) -> dict[str, Any]:
        """The median per-pair ratio (the figure held to the goal) and what says how far to trust it."""
        ratios = sorted(self.ratios())
        quartiles = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
        return {
            "init_ms": round(statistics.median(self.handler_s) * 1000, 1),
            "floor_ms": round(statistics.median(self.floor_s) * 1000, 1),
            "ratio": round(statistics.median(ratios), 3),
            "ratio_p25": round(quartiles[0], 3),
            "ratio_p75": round(quartiles[2], 3),
            "ratio_least": round(ratios[0], 3),
            "ratio_most": round(ratios[-1], 3),
            "ratio_of_minimums": round(min(self.handler_s) / min(self.floor_s), 3),
        }


def paired_runs(
    subjects: dict[str, tuple[str, str]], runs: int, run: Callable[[str], Timing]
) -> dict[str, tuple[Paired, Paired]]:
    """`runs` rounds; in each, every subject (name: its code, its floor's code) and its floor back to back,
    the floor first in every other round, so neither side always runs just after another interpreter.
    Each subject's pairs by processor time, then by the clock."""
    handler: dict[str, list[Timing]] = {name: [] for name in subjects}
    floor: dict[str, list[Timing]] = {name: [] for name in subjects}
    for round_ in range(runs):
        for name, (code, floor_code) in subjects.items():
            if round_ % 2:
                floor[name].append(run(floor_code))
                handler[name].append(run(code))
            else:
                handler[name].append(run(code))
                floor[name].append(run(floor_code))
    return {
        name: (
            Paired(tuple(t.cpu_s for t in handler[name]), tuple(t.cpu_s for t in floor[name])),
            Paired(tuple(t.wall_s for t in handler[name]), tuple(t.wall_s for t in floor[name])),
        )
        for name in subjects
    }


def init_against_floor(
    python: str, built: cold_import.Built, boto3: Path, runs: int = INIT_RUNS
) -> dict[str, Any]:
    """Each handler's init against its floor's, paired run by run (see the module's docstring)."""
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        floors = Path(tmp)
        for clients in {spec.clients for spec in HANDLERS.values()}:
            (floors / f"{floor_module(clients)}.py").write_text(floor_source(clients))
        paths: dict[str, list[Path]] = {}
        subjects: dict[str, tuple[str, str]] = {}
        for name, spec in sorted(HANDLERS.items()):
            if name not in built.functions:
                continue
            code = handler_init_code(spec)
            paths[code] = [built.functions[name], built.layer, boto3]
            floor_code = f"import {floor_module(spec.clients)}"
            paths[floor_code] = [floors, built.layer, boto3]
            subjects[name] = (code, floor_code)
        paired = paired_runs(subjects, runs, lambda code: one_run(python, code, paths[code]))
    rows = {name: (cpu.summary(), wall.summary()) for name, (cpu, wall) in sorted(paired.items())}
    slowest = max(rows, key=lambda name: rows[name][0]["ratio"])
    return {
        "runs": runs,
        "statistic": "median of per-pair ratios of processor time (handler / floor, run back to back)",
        "handlers": {
            name: {
                **cpu,
                "wall": wall,
                "clients": list(HANDLERS[name].clients),
                "goal": INIT_GOAL,
                "met": cpu["ratio"] <= INIT_GOAL,
            }
            for name, (cpu, wall) in rows.items()
        },
        "slowest": slowest,
        "slowest_ratio": rows[slowest][0]["ratio"],
        "goal": INIT_GOAL,
        "met": rows[slowest][0]["ratio"] <= INIT_GOAL,
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
