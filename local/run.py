"""`make run`: start the whole stack, print where everything is and a ready pairing link (one opening, in
one browser), serve until Ctrl-C (or SIGTERM), then stop everything it started.

The console gets one short line per thing that happens (`say()` writes one: a request, a pairing, a
refresh, an event); the functions' JSON logs and metrics go to the log file it names (local/console.py).
The state is kept across restarts (local/persistence.py): a restored stack shows the demo tenant's pairing
instead of a new link, and does not seed its files again.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from local import console, stack_file
from local import template as tpl
from local.stack import LocalStack, StackError, StackSettings

DEMO_TENANT = "demo"
DEMO_CUSTOMER = "https://x3.demo.example"
DEMO_FOLDER = "SEED"
# What X3 has exported into the demo customer's folder, in the emulator, before anyone paired.
DEMO_FILES = {
    "orders-2026-01.csv": b"order;customer;amount\nSO0001;C001;120.00\nSO0002;C002;75.50\n",
    "customers.csv": b"code;name\nC001;Acme\nC002;Globex\n",
    "stock.csv": b"item;quantity\nIT001;12\nIT002;0\n",
}


say = console.say  # one line on the console; the log file gets everything the functions print


def _stop_on_signals() -> threading.Event:
    """SIGINT and SIGTERM interrupt the main thread once; a second signal during shutdown is ignored."""
    stopping = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stopping


def demo_pairing(stack: LocalStack) -> None:
    """Start a pairing through the gateway with a signed request, as the app would, and show the link.

    When a restored state already pairs the demo tenant, say so: the link then replaces that pairing
    (`replace`), so there is always a ready link and opening it is never a dead end."""
    request: dict[str, object] = {"tenant": DEMO_TENANT, "customer": DEMO_CUSTOMER}
    try:
        if stack.restored and (known := stack.call("GET", f"/tenants/{DEMO_TENANT}")).status == 200:
            status = known.json().get("status")
            say(f'Tenant "{DEMO_TENANT}" is paired ({status}, restored): `make run FRESH=1` starts clean.')
            request["replace"] = True
        response = stack.call("POST", "/pairings", json_body=request)
    except OSError as exc:
        say(f"No demo pairing link: POST /pairings failed ({exc}).")
        return
    if response.status != 201:
        say(f"No demo pairing link: POST /pairings answered {response.status} (see the log above).")
        return
    answer = response.json()
    again = ", to pair it again" if request.get("replace") else ""
    say(f'Pairing link for tenant "{DEMO_TENANT}" (customer {DEMO_CUSTOMER}{again}):')
    say(f"  {answer['pairing_url']}")
    # Opening it sets the cookie the callback needs: the whole pairing happens in the browser that opened it.
    say(f"  It opens once, in one browser, until {answer['expires_at']}; accept at Sage X3 in that browser.")


def seed_demo_files(stack: LocalStack) -> None:
    """Files waiting in the demo customer's data delivery folder (the emulator's; a real Sage has its own)."""
    if stack.emulator is None or stack.restored:  # a restored emulator has its files, deletions included
        return
    for name, content in DEMO_FILES.items():
        stack.emulator.put_delivery_file(DEMO_CUSTOMER, DEMO_FOLDER, name, content)


def demo_file_commands(stack: LocalStack) -> None:
    """How the app lists, downloads, deletes and uploads the demo tenant's files, once it is paired."""
    folder = f"/tenants/{DEMO_TENANT}/folders/{DEMO_FOLDER}"
    first = next(iter(DEMO_FILES))
    say()
    say(f"Its files in folder {DEMO_FOLDER}, once paired with {DEMO_FOLDER} ticked at Sage X3:")
    say(f"  list:      {stack.curl_example(f'{folder}/files')}")
    say(f"  download:  {stack.curl_example(f'{folder}/files/{first}')}")
    say('             then  curl -o <file> "<url>"  (the url it answers, valid one hour)')
    say(f"  delete:    {stack.curl_example(f'{folder}/files/{first}', method='DELETE')}")
    upload = stack.curl_example(f"{folder}/uploads", method="POST", json_body={"filename": "prices.csv"})
    say(f"  upload:    {upload}")
    say('             then  curl -T prices.csv "<upload_url>"  (the upload_url it answers)')
    refs = stack.resources.refs if stack.resources is not None else {}
    outbox = [refs[bucket] for bucket in tpl.resources(type_="AWS::S3::Bucket") if bucket == "OutboxBucket"]
    if outbox:
        say(
            f"  outbox:    aws --endpoint-url {stack.aws_endpoint_url} s3 cp prices.csv "
            f"s3://{outbox[0]}/{DEMO_TENANT}/{DEMO_FOLDER}/prices.csv"
        )
        say("             then  watch for  event  FileIngested  (or FileRejected, with its reason)  below")
    sync = stack.curl_example(f"{folder}/sync", method="PUT", json_body={"enabled": True})
    say(f"  exports delivered to the bucket:  {sync}")
    say("             then  make invoke FUNCTION=ExportPollFunction EVENT=events/scheduled.json")
    say("             (or a notification): one `event  FileDelivered` line below per file (docs/exports.md)")


def state(stack: LocalStack, settings: StackSettings) -> dict[str, object]:
    data: dict[str, object] = {**stack.describe(), "pid": os.getpid(), "access_key_id": settings.access_key}
    if stack.moto is not None:
        # Only the embedded moto's keys are written down: real ones never are.
        data["secret_access_key"] = settings.secret_key
    return data


def log_path() -> Path:
    """Beside the stack file: .local/run.log (a test's private stack file brings a private log)."""
    return stack_file.path().parent / "run.log"


def main() -> int:
    try:
        settings = StackSettings.from_env()
    except StackError as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    stack = LocalStack(settings, log=say)
    try:
        stack.check_ports()
    except StackError as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    stopping = _stop_on_signals()
    log_file = console.capture(log_path())
    try:
        say("Starting the local stack...")
        say(f"  Logs         {log_file.path}  (the functions' JSON logs and metrics)")
        stack.start()
        stack_file.write(state(stack, settings))
        seed_demo_files(stack)
        say()
        demo_pairing(stack)
        demo_file_commands(stack)
        say()
        say("Try a signed call:")
        say(f"  {stack.curl_example()}")
        say("One function against it:  make invoke FUNCTION=TokenRefreshFunction EVENT=events/scheduled.json")
        if stack.emulator is not None:
            steer = f".venv/bin/x3link emulator files {DEMO_TENANT} {DEMO_FOLDER} --notify"
            say(f"Sage X3's emulator, from the shell:  {steer}")
        say()
        say(f"Ready: {stack.api_url} (Ctrl-C to stop)")
        # Never one wait without a timeout: the kernel may hand SIGTERM to any of the stack's threads, and a
        # main thread asleep in a lock would then not wake to run the handler (seen: `make run` ignoring a
        # SIGTERM about one time in ten while another stack was running).
        while not stopping.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack_file.remove(os.getpid())
        stack.stop()
        console.release()
    say("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
