"""The Lambda artefacts as `sam build` makes them, and what importing a handler from them costs a fresh
interpreter of the runtime's Python (docs/deploy.md, "Cold starts")."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from local import template as tpl

ROOT = Path(__file__).resolve().parents[2]
LAYER_MOUNT = "/opt/python"  # where Lambda puts a layer's python/ folder; a function's code is in /var/task
# What a handler's import reads from the environment (Powertools' Logger), as Lambda sets it.
HANDLER_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "cold",
}


def template_environments() -> dict[str, dict[str, str]]:
    """Every function's environment as the template resolves it, on a throwaway moto stack: a handler's
    import builds its clients, as Lambda's init does, and reads its settings then (building makes no call)."""
    from moto import mock_aws

    from local import aws_resources

    with mock_aws():
        credentials = {"client_id": "probe", "client_secret": "probe"}
        stack = aws_resources.create({"SageX3Url": "https://x3.example/v1"}, client_credentials=credentials)
        return {logical_id: stack.function_environment(logical_id) for logical_id in tpl.functions()}


@dataclass(frozen=True)
class Runtime:
    version: str  # "3.13", from template.yaml's Runtime (runtime.mk reads it)
    python: str | None  # an interpreter of that version (runtime.mk finds it), or None


@dataclass(frozen=True)
class Built:
    layer: Path  # the layer's python/ folder, /opt/python on Lambda
    functions: dict[str, Path]  # each function's code, /var/task on Lambda, by logical id

    def dirs(self) -> list[Path]:
        return [self.layer, *self.functions.values()]


def runtime() -> Runtime:
    """The runtime version and interpreter the Makefiles use (runtime.mk's print-runtime-python)."""
    out = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "-f",
            str(ROOT / "layers/common/Makefile"),
            "print-runtime-python",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return Runtime(version=out[0].strip(), python=(out[1].strip() if len(out) > 1 else "") or None)


def build_like_sam(source: Path, logical_id: str, artifacts_dir: Path, **make_vars: str) -> None:
    """What sam build does for `BuildMethod: makefile`: copy the source to a scratch folder, then run
    `make --makefile <source>/Makefile build-<LogicalId>` there with ARTIFACTS_DIR in the environment."""
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    # The layer's pip: this interpreter's, as `make template` runs sam build with .venv's python3.
    variables = {"PYTHON": sys.executable, **make_vars}
    with tempfile.TemporaryDirectory(prefix=f"scratch-{logical_id}-") as scratch:
        shutil.copytree(source, scratch, dirs_exist_ok=True)
        done = subprocess.run(
            ["make", "--no-print-directory", "--makefile", str(source / "Makefile"), f"build-{logical_id}"]
            + [f"{name}={value}" for name, value in variables.items()],
            cwd=scratch,
            env={**os.environ, "ARTIFACTS_DIR": str(artifacts_dir)},
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode:
        raise RuntimeError(f"make build-{logical_id} failed:\n{done.stdout}{done.stderr}")


def build(dest: Path, function_ids: list[str] | None = None, **make_vars: str) -> Built:
    """The template's layer and functions (or those named), built into dest as sam build would."""
    (layer_id, layer), *others = tpl.resources(type_="AWS::Serverless::LayerVersion").items()
    assert not others, "one layer expected"
    build_like_sam(ROOT / layer["Properties"]["ContentUri"], layer_id, dest / layer_id, **make_vars)
    functions = {}
    for logical_id, spec in sorted(tpl.functions().items()):
        if function_ids is None or logical_id in function_ids:
            build_like_sam(spec.code_uri, logical_id, dest / logical_id, **make_vars)
            functions[logical_id] = dest / logical_id
    return Built(layer=dest / layer_id / "python", functions=functions)


def without_bytecode(built: Built, dest: Path) -> Built:
    """A copy of built with no __pycache__: what Lambda runs when the build shipped no bytecode."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(built.layer, dest / "layer", ignore=ignore)
    for logical_id, path in built.functions.items():
        shutil.copytree(path, dest / logical_id, ignore=ignore)
    return Built(layer=dest / "layer", functions={name: dest / name for name in built.functions})


def linked_sdk(dest: Path) -> Path:
    """The Lambda runtime's own AWS SDK (boto3, botocore and theirs: pure Python), linked from the interpreter
    running this into dest, for a handler's import (it imports botocore's exceptions) without a download."""
    import importlib.util

    dest.mkdir(parents=True, exist_ok=True)
    for name in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, f"{name} is not installed"
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (dest / source.name).symlink_to(source, target_is_directory=source.is_dir())
    return dest


def install_boto3(python: str, target: Path) -> Path:
    """boto3 (constraints.txt's version) for `python` into target, compiled by it, as the Lambda runtime
    ships it: what `import boto3` is measured with."""
    pins = [
        line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("boto3==")
    ]
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    subprocess.run([*pip, "--target", str(target), *(pins or ["boto3"])], check=True)
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target)],
        check=True,
    )
    return target


def import_seconds(
    python: str, code: str, path: list[Path], runs: int = 7, environment: dict[str, str] | None = None
) -> float:
    """Median time, over `runs` fresh interpreters, that `code` takes once `path` leads sys.path. The
    interpreter writes no bytecode (-B: Lambda's file system is read-only) and ignores PYTHON* variables."""
    script = (
        "import sys, time; sys.path[:0] = sys.argv[1:]; t = time.perf_counter(); "
        f"{code}; print(time.perf_counter() - t)"
    )
    env = {"PATH": os.environ.get("PATH", ""), **(environment or {}), **HANDLER_ENV}
    return statistics.median(
        float(
            subprocess.run(
                [python, "-I", "-B", "-c", script, *map(str, path)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(runs)
    )


def handler_ratios(python: str, built: Built, boto3: Path, runs: int = 7) -> tuple[float, dict[str, float]]:
    """`import boto3`'s median seconds, and each handler's cold import (`import app`) as a multiple of it."""
    baseline = import_seconds(python, "import boto3", [boto3], runs)
    environments = template_environments()
    ratios = {
        logical_id: import_seconds(
            python, "import app", [path, built.layer, boto3], runs, environments[logical_id]
        )
        / baseline
        for logical_id, path in built.functions.items()
    }
    return baseline, ratios


def main() -> None:
    """python -m tests.support.cold_import [LogicalId ...]: the ratios with and without bytecode."""
    found = runtime()
    if found.python is None:
        sys.exit(f"no Python {found.version} interpreter: install one (e.g. pyenv install {found.version})")
    with tempfile.TemporaryDirectory() as tmp:
        built = build(Path(tmp) / "build", sys.argv[1:] or None)
        bare = without_bytecode(built, Path(tmp) / "bare")
        boto3 = install_boto3(found.python, Path(tmp) / "boto3")
        baseline, with_pyc = handler_ratios(found.python, built, boto3)
        _, without_pyc = handler_ratios(found.python, bare, boto3)
    print(f"Python {found.version} ({found.python}); `import boto3` = 1.00 ({baseline * 1000:.0f} ms)")
    print(f"  {'function':24} {'bytecode':>9} {'none':>7}")
    for logical_id, ratio in with_pyc.items():
        print(f"  {logical_id:24} {ratio:8.2f}x {without_pyc[logical_id]:6.2f}x")


if __name__ == "__main__":
    main()
