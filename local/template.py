"""template.yaml as data: the one definition of routes, functions and resources that tests and the
local stack read, so neither can drift from what SAM deploys."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"
LAYER_PATH = ROOT / "layers" / "common"


@dataclass(frozen=True)
class Intrinsic:
    """A CloudFormation function (`!Ref X`, `!GetAtt X.Arn`, `!Sub ...`) kept unresolved until asked."""

    name: str
    value: Any


class _Loader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short-form tags."""


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Intrinsic:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return Intrinsic("Ref" if suffix == "Ref" else f"Fn::{suffix}", value)


_Loader.add_multi_constructor("!", _construct)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    auth: str  # "AWS_IAM" or "NONE"

    @property
    def pattern(self) -> re.Pattern[str]:
        """The path as a regex whose named groups are the path parameters."""
        parts = re.split(r"(\{[A-Za-z0-9_]+\+?\})", self.path)
        regex = ""
        for part in parts:
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                regex += f"(?P<{name.rstrip('+')}>.+)" if name.endswith("+") else f"(?P<{name}>[^/]+)"
            else:
                regex += re.escape(part)
        return re.compile(f"^{regex}$")


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, Any] = field(default_factory=dict)
    timeout: int = 3


@dataclass(frozen=True)
class EventSource:
    """A function's pull trigger (a table's stream, a queue): what Lambda's event source mapping reads."""

    function: str
    name: str
    type: str  # "DynamoDB" or "SQS"
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> Any:
        """The stream's or queue's ARN as the template writes it (an Intrinsic until resolved)."""
        return self.properties["Stream" if self.type == "DynamoDB" else "Queue"]

    @property
    def batch_size(self) -> int:
        return int(self.properties.get("BatchSize", 100 if self.type == "DynamoDB" else 10))

    @property
    def reports_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.properties.get("FunctionResponseTypes", [])


PULL_EVENT_TYPES = ("DynamoDB", "SQS")


@cache
def load(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)  # noqa: S506  # nosec B506  # a yaml.SafeLoader subclass


def resources(
    template: Mapping[str, Any] | None = None, type_: str | None = None
) -> dict[str, dict[str, Any]]:
    template = template or load()
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if type_ is None or resource["Type"] == type_
    }


def functions(template: Mapping[str, Any] | None = None) -> dict[str, FunctionSpec]:
    template = template or load()
    global_props = template.get("Globals", {}).get("Function", {})
    global_env = global_props.get("Environment", {}).get("Variables", {})
    specs = {}
    for logical_id, resource in resources(template, "AWS::Serverless::Function").items():
        props = resource["Properties"]
        env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_uri=ROOT / props["CodeUri"],
            handler=props.get("Handler", global_props.get("Handler", "app.lambda_handler")),
            environment=env,
            timeout=int(props.get("Timeout", global_props.get("Timeout", 3))),
        )
    return specs


def routes(template: Mapping[str, Any] | None = None) -> list[Route]:
    template = template or load()
    apis = resources(template, "AWS::Serverless::Api")
    found = []
    for logical_id, resource in resources(template, "AWS::Serverless::Function").items():
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] != "Api":
                continue
            props = event["Properties"]
            api_id = props.get("RestApiId")
            api = apis.get(api_id.value) if isinstance(api_id, Intrinsic) else None
            default_auth = ((api or {}).get("Properties", {}).get("Auth", {})).get(
                "DefaultAuthorizer", "NONE"
            )
            auth = props.get("Auth", {}).get("Authorizer", default_auth)
            found.append(Route(props["Method"].upper(), props["Path"], logical_id, auth))
    return found


def event_sources(template: Mapping[str, Any] | None = None) -> list[EventSource]:
    """Every stream and queue trigger of the template's functions."""
    template = template or load()
    return [
        EventSource(logical_id, name, event["Type"], dict(event.get("Properties", {})))
        for logical_id, resource in resources(template, "AWS::Serverless::Function").items()
        for name, event in resource["Properties"].get("Events", {}).items()
        if event["Type"] in PULL_EVENT_TYPES
    ]


def queues_fed_by(logical_id: str, template: Mapping[str, Any] | None = None) -> list[str]:
    """The queues this function may send to (its policies) that trigger another function: where it hands
    work on, so that its work is done only once they are drained."""
    template = template or load()
    function = resources(template, "AWS::Serverless::Function")[logical_id]
    sent_to: set[str] = set()
    for policy in function["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []) if isinstance(policy, Mapping) else []:
            actions = statement.get("Action", [])
            if "sqs:SendMessage" in ([actions] if isinstance(actions, str) else actions):
                resources_ = statement.get("Resource", [])
                for resource in resources_ if isinstance(resources_, list) else [resources_]:
                    if isinstance(resource, Intrinsic) and resource.name == "Fn::GetAtt":
                        sent_to.add(resource.value[0])
    triggers = {
        source.source.value[0]
        for source in event_sources(template)
        if source.type == "SQS" and source.function != logical_id and isinstance(source.source, Intrinsic)
    }
    return sorted(sent_to & triggers)


def parameter_defaults(template: Mapping[str, Any] | None = None) -> dict[str, str]:
    template = template or load()
    return {name: str(p["Default"]) for name, p in template.get("Parameters", {}).items() if "Default" in p}


def condition_holds(name: str, refs: Mapping[str, str], template: Mapping[str, Any] | None = None) -> bool:
    """Whether the template's condition `name` is true for these parameter values (`!Equals`, `!Not`,
    `!And`, `!Or`, `Condition`): a resource under a false condition is not created, as CloudFormation."""
    template = template or load()

    def holds(value: Any) -> bool:
        if isinstance(value, dict) and set(value) == {"Condition"}:
            return condition_holds(value["Condition"], refs, template)
        if not isinstance(value, Intrinsic):
            raise ValueError(f"unsupported condition {value!r}")
        if value.name == "Fn::Equals":
            left, right = (resolve(item, refs) for item in value.value)
            return str(left) == str(right)
        if value.name == "Fn::Not":
            return not holds(value.value[0])
        if value.name == "Fn::And":
            return all(holds(item) for item in value.value)
        if value.name == "Fn::Or":
            return any(holds(item) for item in value.value)
        if value.name == "Condition":
            return condition_holds(value.value, refs, template)
        raise ValueError(f"unsupported condition function {value.name}")

    return holds(template.get("Conditions", {})[name])


def created_resources(
    refs: Mapping[str, str], template: Mapping[str, Any] | None = None, type_: str | None = None
) -> dict[str, dict[str, Any]]:
    """The resources (of one type) whose `Condition`, if any, holds for these parameter values."""
    template = template or load()
    return {
        logical_id: resource
        for logical_id, resource in resources(template, type_).items()
        if "Condition" not in resource or condition_holds(resource["Condition"], refs, template)
    }


def resolve(value: Any, refs: Mapping[str, str], attrs: Mapping[tuple[str, str], str] | None = None) -> Any:
    """Resolve intrinsics against known values: `refs` for !Ref and ${X}, `attrs` for !GetAtt."""
    attrs = attrs or {}
    if isinstance(value, Intrinsic):
        if value.name == "Ref":
            return refs[value.value]
        if value.name == "Fn::GetAtt":
            return attrs[tuple(value.value)]
        if value.name == "Fn::Sub":

            def substitute(match: re.Match[str]) -> str:
                key = match.group(1)
                if "." in key:
                    return attrs[tuple(key.split(".", 1))]
                return refs[key]

            return re.sub(r"\$\{([A-Za-z0-9:._]+)\}", substitute, value.value)
        if value.name == "Fn::Join":
            separator, parts = value.value
            return str(separator).join(str(resolve(part, refs, attrs)) for part in parts)
        if value.name == "Fn::Split":
            separator, text = value.value
            return str(resolve(text, refs, attrs)).split(str(separator))
        if value.name == "Fn::Select":
            index, items = value.value
            return resolve(items, refs, attrs)[int(index)]
        if value.name == "Fn::If":
            name, when_true, when_false = value.value
            return resolve(when_true if condition_holds(name, refs) else when_false, refs, attrs)
        raise ValueError(f"unsupported intrinsic {value.name}")
    if isinstance(value, dict):
        return {k: resolve(v, refs, attrs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, refs, attrs) for v in value]
    return value


def load_handler(logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
    """Import a function's handler the way Lambda does: its folder first, the layer beside it."""
    spec = functions()[logical_id]
    module_name, attr = spec.handler.rsplit(".", 1)
    if str(LAYER_PATH) not in sys.path:
        sys.path.insert(0, str(LAYER_PATH))
    unique = f"functions_{spec.code_uri.name}_{module_name}"
    module = sys.modules.get(unique)
    if module is None:
        file_spec = importlib.util.spec_from_file_location(unique, spec.code_uri / f"{module_name}.py")
        assert file_spec and file_spec.loader
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[unique] = module
        file_spec.loader.exec_module(module)
    return getattr(module, attr)
