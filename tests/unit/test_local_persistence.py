"""`make run`'s saved state: one file, replaced whole, read back or set aside, never half written; and the
gate that lets a snapshot be taken only between two function runs."""

from __future__ import annotations

import os
import pickle
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local import persistence
from local import template as tpl
from local.persistence import ActivityGate, Saver, Snapshot, SnapshotUnreadable, StateFolder


def snapshot(**emulator: object) -> Snapshot:
    return Snapshot(moto={"sqs": {"123": {}}}, emulator=dict(emulator), emulator_ports={"eu-prod": 8100})


def test_a_saved_snapshot_reads_back_and_is_owner_only(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path / "state")
    assert folder.load() is None  # nothing saved yet: a clean start
    assert folder.write(folder.encode(snapshot(grants={"g": 1})))
    assert folder.load() == snapshot(grants={"g": 1})
    assert os.stat(folder.path).st_mode & 0o777 == 0o600
    assert [p.name for p in folder.folder.iterdir()] == ["snapshot.pickle"]  # no temporary left behind


def test_the_same_state_is_not_written_again(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path)
    assert folder.write(folder.encode(snapshot(a=1)))
    modified = folder.path.stat().st_mtime_ns
    assert not folder.write(folder.encode(snapshot(a=1)))
    assert folder.path.stat().st_mtime_ns == modified
    assert folder.write(folder.encode(snapshot(a=2)))


def test_locks_and_private_keys_survive_the_pickle(tmp_path: Path) -> None:
    """moto's SQS queues hold locks and its KMS keys hold private keys: pickle alone refuses both."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state = {"lock": threading.Lock(), "rlock": threading.RLock(), "key": key}
    with pytest.raises(TypeError):
        pickle.dumps(state)
    folder = StateFolder(tmp_path)
    folder.write(folder.encode(Snapshot(moto=state, emulator=None, emulator_ports={})))
    loaded = folder.load()
    assert loaded is not None and loaded.moto is not None
    assert loaded.moto["lock"].acquire(blocking=False)
    with loaded.moto["rlock"]:
        pass
    assert loaded.moto["key"].public_key().public_numbers() == key.public_key().public_numbers()


def test_an_unreadable_snapshot_says_why_and_is_set_aside_not_deleted(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path)
    folder.path.write_bytes(b"half a file")
    with pytest.raises(SnapshotUnreadable):
        folder.load()
    aside = folder.set_aside()
    assert aside.read_bytes() == b"half a file" and not folder.path.exists()

    older = {"format": persistence.FORMAT, "moto_version": "0.1", "snapshot": None}
    folder.path.write_bytes(pickle.dumps(older))
    with pytest.raises(SnapshotUnreadable, match=r"written with moto 0\.1"):
        folder.load()


def test_fresh_keeps_the_last_state_one_step_back(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path)
    assert folder.clear() is None
    folder.write(folder.encode(snapshot(a=1)))
    previous = folder.clear()
    assert previous == tmp_path / "previous.pickle" and previous.exists()
    assert folder.load() is None


def test_a_snapshot_waits_for_the_running_function_and_holds_the_next_one_back() -> None:
    gate = ActivityGate()
    with gate.running(), gate.quiet(timeout=0.05) as idle:
        assert not idle  # a function runs: no moment was quiet, nothing is held back
    order: list[str] = []
    with gate.quiet(timeout=1) as idle:
        assert idle

        def function() -> None:
            with gate.running():
                order.append("function")

        started = threading.Thread(target=function)
        started.start()
        time.sleep(0.2)  # generous: the function must still be waiting for the snapshot
        order.append("snapshot")
    started.join(timeout=5)
    assert order == ["snapshot", "function"]


def test_the_saver_writes_what_it_takes_and_tries_again_when_moto_moved(tmp_path: Path) -> None:
    folder, calls = StateFolder(tmp_path), []

    def take() -> Snapshot:
        calls.append(1)
        if len(calls) == 1:  # a poller's SQS call changed a dict under the pickler
            raise RuntimeError("dictionary changed size during iteration")
        return snapshot(a=1)

    saver = Saver(folder, ActivityGate(), take, log=lambda _line: None)
    assert not saver.save()
    assert saver.save()
    assert folder.load() == snapshot(a=1)


# The moto service of each resource type local/aws_resources.py creates (or a bucket, should the template
# gain one): a resource whose service is not saved would be back empty after a restart.
SERVICE_OF_TYPE = {
    "AWS::KMS::Key": "kms",
    "AWS::DynamoDB::Table": "dynamodb",
    "AWS::SecretsManager::Secret": "secretsmanager",
    "AWS::SQS::Queue": "sqs",
    "AWS::Events::EventBus": "events",
    "AWS::S3::Bucket": "s3",
    "AWS::SNS::Topic": "sns",
}


def test_every_service_the_template_has_resources_in_is_saved() -> None:
    types = {resource["Type"] for resource in tpl.resources().values()}
    assert types & SERVICE_OF_TYPE.keys() >= {"AWS::DynamoDB::Table", "AWS::KMS::Key"}
    for type_ in types & SERVICE_OF_TYPE.keys():
        assert SERVICE_OF_TYPE[type_] in persistence.SERVICES, type_


def test_one_process_at_a_time_keeps_a_folder(tmp_path: Path) -> None:
    """A second `make run` beside the first (other ports, same checkout) must not save over its state."""
    first, second = StateFolder(tmp_path), StateFolder(tmp_path)
    assert first.claim()
    assert not second.claim()  # flock: a second descriptor is refused, even in the same process
    first.release()
    assert second.claim()
    second.release()
