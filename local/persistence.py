"""What `make run` keeps across restarts: the embedded AWS's state (tables, secret, queues, the stack's key,
the bus) and the emulator's (customers, grants, refresh tokens, files), saved together in one file.

Why one file, written whole: a pairing's sealed tokens need the same KMS key, and its refresh token must be
the one the emulator still honours; two files could be caught half written. The file is replaced atomically
(a temporary file, then a rename), every few seconds and at shutdown, so a SIGKILL loses at most the last
moments and never leaves a torn snapshot. It is taken only while no function is running (`ActivityGate`):
a refresh rotates the token at Sage X3 and then commits it to DynamoDB, and a snapshot between the two would
hold one side only.

moto keeps no state on disk (its server is in memory); its backends are pickled, with the few objects pickle
cannot take (locks, private keys) rebuilt on load. A snapshot is tied to the moto version that wrote it: one
that cannot be read is set aside, never deleted, and the stack starts clean.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import pickle  # nosec B403  # our own owner-only file under .local/: never another's data
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from local.background import Repeating

FORMAT = 1
FILE_NAME = "snapshot.pickle"
# The moto services the template's resources live in (local/aws_resources.py creates them): a resource of
# another service the template gains needs its service here, or it is not kept.
SERVICES = ("kms", "dynamodb", "secretsmanager", "sqs", "events", "s3", "sns", "logs", "cloudwatch")
SAVE_EVERY_SECONDS = 5.0
IDLE_WAIT_SECONDS = 2.0

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class SnapshotUnreadable(Exception):
    """The saved state cannot be loaded (another moto version, a damaged file); the message says which."""


def _private_key(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


class _Pickler(pickle.Pickler):
    """pickle, with a lock saved as a new lock and a private key as its PEM."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return (_new_lock(obj), ())
        if isinstance(obj, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            pem = obj.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            return (_private_key, (pem,))
        return NotImplemented


def _new_lock(lock: Any) -> Callable[[], Any]:
    return threading.RLock if isinstance(lock, type(threading.RLock())) else threading.Lock


def moto_state() -> dict[str, Any]:
    """The embedded moto's backends of SERVICES, by service (moto runs in this process)."""
    from moto.backends import get_backend

    return {service: dict(get_backend(service)) for service in SERVICES}  # type: ignore[call-overload]


def restore_moto(saved: dict[str, Any]) -> None:
    from moto.backends import get_backend

    for service, accounts in saved.items():
        backend = get_backend(service)  # type: ignore[call-overload]
        backend.clear()
        backend.update(accounts)


@dataclass
class Snapshot:
    """One moment of the stack: moto's backends and the emulator's state (either may be absent: an
    AWS_ENDPOINT_URL or a SAGE_X3_URL keeps its own), and the emulator's ports, which the stored pairings
    name."""

    moto: dict[str, Any] | None
    emulator: dict[str, Any] | None
    emulator_ports: dict[str, int]


class StateFolder:
    """The folder `make run` keeps its state in; `load()` and `save()` are all-or-nothing."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / FILE_NAME
        self._last_digest = b""
        self._lock_fd: int | None = None

    def claim(self) -> bool:
        """Take the folder for this process (an advisory lock, released when it exits, killed or not);
        False while another `make run` holds it: two stacks saving over each other would keep neither."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / "lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    def clear(self) -> Path | None:
        """Start clean: the snapshot is moved to `previous.pickle` (one step back), not destroyed."""
        if not self.path.exists():
            return None
        previous = self.folder / "previous.pickle"
        self.path.replace(previous)
        return previous

    def set_aside(self, why: str = "unreadable") -> Path:
        """Move a snapshot that cannot be used out of the way, keeping it for whoever wants to look."""
        aside = self.folder / f"{why}-{time.strftime('%Y%m%dT%H%M%S')}.pickle"
        self.path.replace(aside)
        return aside

    def load(self) -> Snapshot | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = pickle.loads(raw)  # noqa: S301  # nosec B301  # our own 0600 file, from write() below
        except Exception as exc:
            raise SnapshotUnreadable(f"{type(exc).__name__}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SnapshotUnreadable("not a snapshot of this format")
        if data.get("moto_version") != version("moto"):
            written = data.get("moto_version")
            raise SnapshotUnreadable(f"written with moto {written}, this is moto {version('moto')}")
        self._last_digest = hashlib.sha256(raw).digest()
        snapshot: Snapshot = data["snapshot"]
        return snapshot

    @staticmethod
    def encode(snapshot: Snapshot) -> bytes:
        """The file's bytes; taken while nothing changes the state (moto's objects are pickled live)."""
        buffer = io.BytesIO()
        payload = {"format": FORMAT, "moto_version": version("moto"), "snapshot": snapshot}
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(payload)
        return buffer.getvalue()

    def write(self, raw: bytes) -> bool:
        """Replace the file atomically; False when it already holds these bytes."""
        digest = hashlib.sha256(raw).digest()
        if digest == self._last_digest:
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{FILE_NAME}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        self._last_digest = digest
        return True


class Saver:
    """Saves `take()`'s snapshot into `folder` every few seconds (`start`) and when asked (`save`)."""

    def __init__(
        self,
        folder: StateFolder,
        gate: ActivityGate,
        take: Callable[[], Snapshot],
        log: Callable[[str], None],
    ) -> None:
        self.folder, self._gate, self._take = folder, gate, take
        self._loop = Repeating(self.save, log, name="local-state", failing="state  could not be saved")

    def save(self, idle_wait: float = IDLE_WAIT_SECONDS) -> bool:
        """True when written; False when nothing changed, or no moment was quiet within `idle_wait`, or
        moto changed under the pickler (a poller's SQS call is not gated): the next round tries again."""
        with self._gate.quiet(idle_wait) as idle:
            if not idle:
                return False
            try:
                raw = self.folder.encode(self._take())
            except RuntimeError:  # "dictionary changed size during iteration"
                return False
        return self.folder.write(raw)

    def start(self, interval: float = SAVE_EVERY_SECONDS) -> Saver:
        self._loop.start(interval)
        return self

    def stop(self) -> None:
        self._loop.stop()


class ActivityGate:
    """Functions run side by side (`running()`); a snapshot waits for a moment when none runs
    (`quiet()`), and holds new ones back only while it is taken (milliseconds)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._running = 0
        self._held = False

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with self._condition:
            while self._held:
                self._condition.wait()
            self._running += 1
        try:
            yield
        finally:
            with self._condition:
                self._running -= 1
                self._condition.notify_all()

    @contextlib.contextmanager
    def quiet(self, timeout: float) -> Iterator[bool]:
        """Yields True with every function held back, or False when none was idle within `timeout`
        (a function may wait on another, so holding new ones back while waiting could deadlock)."""
        with self._condition:
            idle = self._condition.wait_for(lambda: self._running == 0, timeout)
            if idle:
                self._held = True
        try:
            yield idle
        finally:
            if idle:
                with self._condition:
                    self._held = False
                    self._condition.notify_all()


def gated(
    load_handler: Callable[[str], Callable[[dict[str, Any], Any], Any]], gate: ActivityGate
) -> Callable[[str], Callable[[dict[str, Any], Any], Any]]:
    """`load_handler`, with each handler run inside `gate.running()`."""

    def load(logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
        handler = load_handler(logical_id)

        def run(event: dict[str, Any], context: Any) -> Any:
            with gate.running():
                return handler(event, context)

        return run

    return load
