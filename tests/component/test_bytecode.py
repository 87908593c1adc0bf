"""Cold starts: the layer and every function ship bytecode that the runtime named in template.yaml loads as
it is, with no source check and nothing to write (docs/deploy.md#cold-starts). Built here as sam build
builds them, with their own Makefiles, and read with an interpreter of the runtime's version."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from local import template as tpl
from tests.support import cold_import
from tests.support.cold_import import Built, Runtime

# Each runtime's importlib.util.MAGIC_NUMBER, as the little-endian number of its first two bytes. It is fixed
# for all final releases of a minor version (Python's bytecode compatibility rule); an interpreter of that
# version with another (a pre-release's) is refused by runtime.mk, and caught here.
RUNTIME_MAGIC = {"3.13": 3571}
UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based (bit 0), check_source (bit 1) clear
FUNCTION_MOUNT = "/var/task"  # where Lambda puts a function's code

# Run by the runtime's interpreter: for each (source, pyc) pair on stdin, the source's hash as that
# interpreter computes it (it depends on the magic number) and the file name the pyc's code object carries.
READ_PYCS = """
import importlib.util, json, marshal, sys
answers = {}
for source, pyc in json.load(sys.stdin):
    with open(source, "rb") as handle:
        digest = importlib.util.source_hash(handle.read())
    with open(pyc, "rb") as handle:
        code = marshal.loads(handle.read()[16:])
    answers[source] = [digest.hex(), code.co_filename]
json.dump({"magic": importlib.util.MAGIC_NUMBER.hex(), "files": answers}, sys.stdout)
"""

# Run by the runtime's interpreter, with no bytecode writing (-B) as on Lambda's read-only file system:
# imports a handler from the built function and layer, and names every module of theirs that it compiled
# from source instead of loading its pyc.
IMPORT_HANDLER = """
import json, sys
from importlib.machinery import SourceFileLoader
roots = tuple(sys.argv[1:3])
compiled = []
source_to_code = SourceFileLoader.source_to_code
def recording(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return source_to_code(self, data, path, *args, **kwargs)
SourceFileLoader.source_to_code = recording
sys.path[:0] = sys.argv[1:]
import app
files = [str(getattr(module, "__file__", "")) for module in list(sys.modules.values())]
loaded = sorted(path for path in files if path.startswith(roots))
json.dump({"compiled": [path for path in compiled if path.startswith(roots)], "loaded": loaded}, sys.stdout)
"""


def _template_versions() -> set[str]:
    """Every Python runtime template.yaml names: Globals, each function's, the layer's CompatibleRuntimes."""
    template = tpl.load()
    runtimes = {template.get("Globals", {}).get("Function", {}).get("Runtime")}
    runtimes |= {
        resource["Properties"].get("Runtime")
        for resource in tpl.resources(type_="AWS::Serverless::Function").values()
    }
    for layer in tpl.resources(type_="AWS::Serverless::LayerVersion").values():
        runtimes |= set(layer["Properties"].get("CompatibleRuntimes", []))
    return {runtime.removeprefix("python") for runtime in runtimes if runtime}


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    found = cold_import.runtime()
    assert _template_versions() == {found.version}, "runtime.mk builds for the runtime template.yaml names"
    if found.python is None:
        pytest.fail(
            f"No Python {found.version} interpreter on this machine, so the build ships no bytecode for the "
            f"python{found.version} runtime and every cold start compiles the layer. Install one "
            f"(pyenv install {found.version}, uv python install {found.version}, or your package manager's "
            f"python{found.version}), or point RUNTIME_PYTHON at one. See docs/deploy.md, 'Cold starts'.",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def built(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Built:
    return cold_import.build(tmp_path_factory.mktemp("sam-build"))


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cold_import.linked_sdk(tmp_path_factory.mktemp("runtime-sdk"))


def _pyc(source: Path, tag: str) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"


def _path_on_lambda(source: Path, built: Built) -> str:
    """Where Lambda mounts the source: the name tracebacks show."""
    if source.is_relative_to(built.layer):
        return f"{cold_import.LAYER_MOUNT}/{source.relative_to(built.layer)}"
    folder = next(folder for folder in built.functions.values() if source.is_relative_to(folder))
    return f"{FUNCTION_MOUNT}/{source.relative_to(folder)}"


def test_every_source_has_the_runtimes_unchecked_hash_bytecode(runtime: Runtime, built: Built) -> None:
    assert runtime.python is not None
    tag = "cpython-" + runtime.version.replace(".", "")
    sources = sorted(source for folder in built.dirs() for source in folder.rglob("*.py"))
    assert any(source.parts[-2:] == ("x3link", "wiring.py") for source in sources)
    assert len(sources) > len(built.functions) + 100, "the layer's packages are compiled too"
    missing = [str(source) for source in sources if not _pyc(source, tag).is_file()]
    assert not missing, f"{len(missing)} of {len(sources)} sources have no {tag} pyc, e.g. {missing[:3]}"

    stray = [
        str(pyc)
        for folder in built.dirs()
        for pyc in folder.rglob("*.pyc")
        if pyc.parent.name != "__pycache__"
        or not pyc.name.endswith(f".{tag}.pyc")
        or not (pyc.parent.parent / f"{pyc.name.split('.')[0]}.py").is_file()
    ]
    assert not stray, f"pycs the runtime would not use (another interpreter's, or no source): {stray[:5]}"

    answer = json.loads(
        subprocess.run(
            [runtime.python, "-I", "-B", "-c", READ_PYCS],
            input=json.dumps([[str(source), str(_pyc(source, tag))] for source in sources]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    magic = RUNTIME_MAGIC.get(runtime.version)
    expected_magic = bytes.fromhex(answer["magic"])
    if magic is not None:
        assert expected_magic == magic.to_bytes(2, "little") + b"\r\n", f"{runtime.python}: not a final {tag}"
    wrong = []
    for source in sources:
        header = _pyc(source, tag).read_bytes()[:16]
        digest, filename = answer["files"][str(source)]
        if (
            header[:4] != expected_magic
            or int.from_bytes(header[4:8], "little") != UNCHECKED_HASH
            or header[8:16].hex() != digest
            or filename != _path_on_lambda(source, built)
        ):
            wrong.append(str(source))
    assert not wrong, f"{len(wrong)} pycs are not {tag} unchecked-hash pycs of their source, e.g. {wrong[:3]}"


@pytest.fixture(scope="module")
def environments() -> dict[str, dict[str, str]]:
    """Importing a handler builds its clients, as Lambda's init does: its settings must be there."""
    return cold_import.template_environments()


@pytest.mark.parametrize("logical_id", sorted(tpl.functions()))
def test_the_runtime_imports_each_handler_from_bytecode_alone(
    logical_id: str, runtime: Runtime, built: Built, sdk: Path, environments: dict[str, dict[str, str]]
) -> None:
    assert runtime.python is not None
    path = [built.functions[logical_id], built.layer, sdk]
    out = subprocess.run(
        [runtime.python, "-I", "-B", "-c", IMPORT_HANDLER, *map(str, path)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", **environments[logical_id], **cold_import.HANDLER_ENV},
    ).stdout
    imports = json.loads(out)
    assert str(built.functions[logical_id] / "app.py") in imports["loaded"]
    assert any("/x3link/" in path for path in imports["loaded"])
    assert imports["compiled"] == [], "compiled from source: the runtime would compile them every cold start"
