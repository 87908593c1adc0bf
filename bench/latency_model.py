"""The modelled refresh: each call a refresh makes, priced at a documented latency, plus the CPU time the
refresh itself spent in process. Pure arithmetic, so the figures `make bench` prints can be checked by hand.

Why a model: moto answers DynamoDB and KMS in this process, in Python, far slower than the services do, and
the emulator answers Sage at once; a timed refresh here measures moto. On AWS a refresh waits on the network
for each call, so what separates two designs is how many calls each makes, and their own CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REFRESH_GOAL = 1.05  # a keep-alive refresh / Authlib's refresh + one conditional write


@dataclass(frozen=True)
class Latency:
    ms: float
    source: str


LATENCIES: dict[str, Latency] = {
    "sage": Latency(
        300.0,
        "Sage publishes none; 300 ms is docs/scale.md's typical token call (50 ms fast, 1 s slow), "
        "an assumption to replace with a measurement",
    ),
    "dynamodb": Latency(
        8.0,
        "AWS: DynamoDB 'delivers single-digit millisecond performance at any scale' (What is Amazon "
        "DynamoDB?, Developer Guide); 8 ms is the top of that range for a conditional write",
    ),
    "kms": Latency(
        10.0,
        "AWS publishes no KMS latency; 10 ms assumes one in-Region HTTPS call a little slower than "
        "DynamoDB's, to be checked against X-Ray on AWS",
    ),
}


@dataclass(frozen=True)
class TimedCall:
    """One call as a round made it: to which service, and when it started (seconds, one clock per round)."""

    service: str
    started: float


def overlapped_ms(calls: Sequence[TimedCall], latencies: Mapping[str, Latency] = LATENCIES) -> float:
    """The milliseconds of the calls' latencies that ran beside another call: their sum, less the time that
    their intervals [start, start + latency] cover together. 0 when each started after the one before had
    had its whole latency (the round waits for every call in turn); a Decrypt sent beside a lease write
    hides the shorter of the two."""
    intervals = sorted(
        (call.started * 1000, call.started * 1000 + latencies[call.service].ms) for call in calls
    )
    covered, reach = 0.0, float("-inf")
    for start, end in intervals:
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return max(0.0, sum(latencies[call.service].ms for call in calls) - covered)


def modelled_ms(
    calls: Mapping[str, int], cpu_ms: float, latencies: Mapping[str, Latency] = LATENCIES
) -> float:
    """Milliseconds of one refresh: each call at its latency, one after another, plus the CPU it spent.

    A call to a service with no documented latency is an error, not a free call.
    """
    if cpu_ms < 0 or any(count < 0 for count in calls.values()):
        raise ValueError("calls and CPU time cannot be negative")
    return sum(latencies[service].ms * count for service, count in calls.items()) + cpu_ms


def modelled_ratio(
    ours: Mapping[str, int],
    ours_cpu_ms: float,
    theirs: Mapping[str, int],
    theirs_cpu_ms: float,
    latencies: Mapping[str, Latency] = LATENCIES,
) -> float:
    """Ours over theirs, both modelled with the same latencies."""
    return modelled_ms(ours, ours_cpu_ms, latencies) / modelled_ms(theirs, theirs_cpu_ms, latencies)


def keep_alive_against_authlib(
    keep_alive_calls: Mapping[str, int],
    keep_alive_cpu_ms: float,
    authlib_calls: Mapping[str, int],
    authlib_cpu_ms: float,
    latencies: Mapping[str, Latency] = LATENCIES,
    *,
    overlapped: float = 0.0,
    run_share: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The keep-alive refresh against Authlib's refresh + one conditional write, modelled, with its goal.

    Both sides alike: every call counted at the moto and emulator boundaries, priced at its documented
    latency, one after another, plus the side's own CPU time measured in process (moto's taken out). The
    anchor is Authlib's `refresh_token` and one conditional `PutItem` of the new tokens: no read (it holds the
    refresh token in memory) and no encryption (it stores the tokens as they came).

    A real keep-alive meets each tenant every ~23 days, long after a data key's 5 minutes in the cache, so
    it makes one KMS Decrypt; if the counted rounds made none (a warm key), that call is added here.
    `overlapped`: the milliseconds of its calls' latencies that ran beside another of its calls (measured:
    `overlapped_ms` of its timeline), which the refresh does not wait for. `run_share`: the calls the
    scheduled run makes for each refresh it queues (one BatchGetItem per hundred: 0.01), priced alike.
    """
    if overlapped < 0 or any(count < 0 for count in (run_share or {}).values()):
        raise ValueError("overlaps and shares cannot be negative")
    calls = dict(keep_alive_calls)
    cold_key_added = max(0, 1 - calls.get("kms", 0))
    calls["kms"] = calls.get("kms", 0) + cold_key_added
    share = dict(run_share or {})
    share_ms = sum(latencies[service].ms * count for service, count in share.items())
    ours_ms = modelled_ms(calls, keep_alive_cpu_ms, latencies) - overlapped + share_ms
    theirs_ms = modelled_ms(authlib_calls, authlib_cpu_ms, latencies)
    warm = {service: count for service, count in calls.items() if service != "kms"}
    warm_ms = modelled_ms(warm, keep_alive_cpu_ms, latencies) + share_ms
    ratio = ours_ms / theirs_ms
    # What the keep-alive pays over the anchor, part by part: each service's extra calls, the time hidden
    # beside other calls, the run's share, and the CPU.
    services = sorted(set(calls) | set(authlib_calls))
    over = {
        service: (calls.get(service, 0) - authlib_calls.get(service, 0)) * latencies[service].ms
        for service in services
    }
    over["overlapped"] = -overlapped
    over["run_share"] = share_ms
    over["cpu"] = keep_alive_cpu_ms - authlib_cpu_ms
    calls_only = (modelled_ms(calls, 0.0, latencies) - overlapped + share_ms) / modelled_ms(
        authlib_calls, 0.0, latencies
    )
    return {
        "latencies_ms": {name: latency.ms for name, latency in latencies.items()},
        "sources": {name: latency.source for name, latency in latencies.items()},
        "keep_alive": {
            "calls": calls,
            "kms_added_for_cold_key": cold_key_added,
            "overlapped_ms": round(overlapped, 2),
            "run_share": share,
            "ms": round(ours_ms, 1),
        },
        "authlib": {"calls": dict(authlib_calls), "ms": round(theirs_ms, 1)},
        "ratio": round(ratio, 3),
        # Report only: a refresh of a tenant whose data key this environment opened in the last 5 minutes.
        "ratio_data_key_cached": round(warm_ms / theirs_ms, 3),
        # Where the ratio stands above 1: the extra milliseconds of each part. And the ratio with no CPU on
        # either side: the calls alone, which no cut of our Python time can take the ratio under.
        "over_authlib_ms": {part: round(ms, 2) for part, ms in over.items()},
        "ratio_calls_only": round(calls_only, 3),
        "goal": REFRESH_GOAL,
        "met": ratio <= REFRESH_GOAL,
    }
