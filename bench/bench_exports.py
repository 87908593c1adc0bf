"""A 2 GB export streamed through the worker's own download and upload code, its memory measured.

A loopback HTTP server plays Sage's presigned link (2 GB of bytes made on the fly, never held); a fresh
interpreter plays the worker: `SageX3Client.open_download` streams it into `DeliveryBucket.stream`, whose
S3 client keeps nothing of a part but its size (S3's own service is not what is measured). The child's
peak resident memory (ru_maxrss, the whole process: Python, boto3 and the layer included) is compared with
ExportWorkerFunction's MemorySize in template.yaml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from local import template as tpl

ROOT = Path(__file__).resolve().parents[1]
SIZE = int(os.environ.get("BENCH_EXPORT_BYTES", str(2 * 1024**3)))
BLOCK = bytes(range(256)) * 4096  # 1 MiB

CHILD = r"""
import json, resource, sys, time
from x3link.endpoints import EndpointPolicy
from x3link.exports.bucket import DeliveryBucket
from x3link.exports.orders import FileOrder
from x3link.exports.worker import _chunks, _metadata, _verify
from x3link.sage.client import SageX3Client


class Discarding:
    '''S3 that keeps nothing of a part but its size.'''

    class exceptions:
        ClientError = Exception

    def __init__(self):
        self.parts = 0

    def create_multipart_upload(self, **kwargs):
        return {"UploadId": "bench"}

    def upload_part(self, Body, PartNumber, **kwargs):
        self.parts += 1
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, **kwargs):
        return {"VersionId": "bench"}

    def abort_multipart_upload(self, **kwargs):
        pass


url, size = sys.argv[1], int(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
order = FileOrder("bench", "SEED", "export.bin", size, None, None)
s3 = Discarding()
bucket = DeliveryBucket("bench", s3)
client = SageX3Client(policy=EndpointPolicy("https://x3.example.com/v1", ()))
started = time.perf_counter()
response = client.open_download(url)
meta = _metadata(order, order.version)
stored = bucket.stream(order.key, _chunks(response), meta, lambda got: _verify(order, got))
response.release_conn()
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"bytes": stored.size, "parts": s3.parts, "seconds": seconds, "peak_mb": peak,
                  "before_mb": before}))
"""


class _Export(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(SIZE))
        self.end_headers()
        left = SIZE
        while left > 0:
            chunk = BLOCK[: min(left, len(BLOCK))]
            self.wfile.write(chunk)
            left -= len(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def worker_memory_mb() -> int:
    props = tpl.resources()["ExportWorkerFunction"]["Properties"]
    return int(props.get("MemorySize", 256))


def stream_2gb() -> dict[str, Any]:
    """The worker's code streams SIZE bytes; its peak memory against its MemorySize."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Export)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/export.bin"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "common"), "POWERTOOLS_LOG_LEVEL": "WARNING"}
        done = subprocess.run(  # our own interpreter and script
            [sys.executable, "-c", CHILD, url, str(SIZE)],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
            check=True,
        )
    finally:
        server.shutdown()
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["memory_setting_mb"] = worker_memory_mb()
    result["mb_per_second"] = round(result["bytes"] / 1024**2 / result["seconds"], 1)
    result["met"] = result["bytes"] == SIZE and result["peak_mb"] < result["memory_setting_mb"]
    return result


if __name__ == "__main__":
    print(json.dumps(stream_2gb(), indent=2))
