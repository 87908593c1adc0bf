"""Judging recorded AWS calls against a function's inline policy in template.yaml, as IAM would.

Only what the template's own statements use is evaluated: `Effect`, `Action` (a string or a list, with
`*` wildcards), `Resource` (resolved against the stack, with wildcards) and `Condition` with `StringEquals`,
`StringLike`, their `...IfExists` forms, `ForAllValues:`/`ForAnyValue:` of the first two, and `Null`, on
`kms:ViaService`, `kms:EncryptionContext:<key>`, `dynamodb:Attributes`, `dynamodb:ReturnValues` and
`dynamodb:Select`. Anything else in a statement (NotAction, NotResource, another operator or key) makes it
match nothing, so a policy this module cannot read is reported, never passed; a Deny it cannot read is
taken to deny, never ignored. SAM's policy templates and managed policy names are
unsupported: they yield no statement.

The DynamoDB keys, as DynamoDB sets them (its developer guide, "Using IAM policy conditions for fine-grained
access control"): `dynamodb:Attributes` is the set of attribute names a request names: for an item write
(PutItem, UpdateItem, DeleteItem) its key's attributes, the item's (PutItem), every attribute its update
expression sets, adds, removes or deletes, and every attribute its condition names (a condition reads the
item: it counts as much as a write). `dynamodb:ReturnValues` is the write's ReturnValues, `NONE` when
absent; `dynamodb:Select` is a Query's or Scan's Select, `ALL_ATTRIBUTES` when absent (`SPECIFIC_ATTRIBUTES`
with a projection). `ForAllValues` holds when every value is listed, and so also when the key is absent:
pair it with `Null: false` to require the key. A DeleteItem names only its key (and its condition), so an
attribute list cannot stop it from deleting every attribute; a PutItem replaces the whole item, so such a
list cannot keep it from erasing the attributes it does not name. Reads are given `dynamodb:Attributes`
only from their projection, so a read conditioned on it without one matches nothing here.

Besides the API calls themselves, AWS requires KMS permissions that no call names, which the service asks
of KMS with the caller's rights (`kms:ViaService` is then that service's endpoint): a principal sending to
(receiving from) a queue encrypted with a customer managed key needs `kms:GenerateDataKey` and
`kms:Decrypt` (`kms:Decrypt`) on that key, one reading a secret encrypted with one needs `kms:Decrypt`, and
one reading or writing a table encrypted with one needs `kms:Decrypt` (DynamoDB unwraps the table key).
`implied` lists them, from the queue's, the secret's and the table's own properties in the template, with
the encryption context each service uses.

A key's use needs its key policy too. The template's key policies name the account (IAM delegation), never a
role, so a request on a key is allowed only when one of the role's statements and one of the key policy's
statements for the account both allow it (`Resources.allows`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local import template as tpl
from local.aws_resources import Stack
from tests.support.aws_faults import Call

# botocore's service name → IAM's service prefix, where they differ.
_PREFIX = {"dynamodbstreams": "dynamodb"}
# Batch operations that IAM authorises as their single-entry action.
_ACTION = {
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
}


Value = str | tuple[str, ...]  # a condition key's value: one string, or a set of them (dynamodb:Attributes)


# An expression's attribute names: a bare name or a #placeholder, never a :value, a function (followed by
# "("), a later part of a path (after "." ) or a keyword.
_NAME = re.compile(r"(?<![\w:.#])(#?[A-Za-z_]\w*)\b(?!\s*\()")
_KEYWORDS = {"set", "remove", "add", "delete", "and", "or", "not", "between", "in"}
_ITEM_WRITES = ("PutItem", "UpdateItem", "DeleteItem")


def expression_attributes(params: Mapping[str, Any]) -> set[str]:
    """The attribute names a DynamoDB request's expressions, key and item name (`dynamodb:Attributes`)."""
    names: set[str] = set(params.get("Key") or {}) | set(params.get("Item") or {})
    names |= set(params.get("AttributeUpdates") or {}) | set(params.get("Expected") or {})
    placeholders = params.get("ExpressionAttributeNames") or {}
    for field_name in ("UpdateExpression", "ConditionExpression", "ProjectionExpression", "FilterExpression"):
        for name in _NAME.findall(str(params.get(field_name) or "")):
            if name.lower() in _KEYWORDS:
                continue
            names.add(placeholders.get(name, name) if name.startswith("#") else name)
    return names


def dynamodb_context(operation: str, params: Mapping[str, Any]) -> tuple[tuple[str, Value], ...]:
    """The DynamoDB condition keys of one request, as DynamoDB sets them (see the module's docstring)."""
    context: list[tuple[str, Value]] = []
    if operation in _ITEM_WRITES:
        context.append(("dynamodb:Attributes", tuple(sorted(expression_attributes(params)))))
        context.append(("dynamodb:ReturnValues", str(params.get("ReturnValues") or "NONE")))
    elif params.get("ProjectionExpression"):
        context.append(("dynamodb:Attributes", tuple(sorted(expression_attributes(params)))))
    if operation in ("Query", "Scan"):
        select = "SPECIFIC_ATTRIBUTES" if params.get("ProjectionExpression") else "ALL_ATTRIBUTES"
        context.append(("dynamodb:Select", str(params.get("Select") or select)))
    return tuple(context)


@dataclass(frozen=True)
class Request:
    """One authorisation IAM makes: an action on a resource, with the request's condition keys."""

    action: str
    resource: str
    context: tuple[tuple[str, Value], ...] = ()
    why: str = ""  # for an implied request: the call that needs it

    def __str__(self) -> str:
        context = f" {dict(self.context)}" if self.context else ""
        why = f" (needed by {self.why})" if self.why else ""
        return f"{self.action} on {self.resource}{context}{why}"


@dataclass
class Resources:
    """The stack's resources by every name a call may give them, and what the template says of them."""

    stack: Stack
    arns: dict[str, str] = field(default_factory=dict)  # table name, queue URL, key id, secret... → ARN
    queue_keys: dict[str, str] = field(default_factory=dict)  # queue ARN → its customer managed key ARN
    secret_keys: dict[str, str] = field(default_factory=dict)  # secret ARN → its customer managed key ARN
    table_keys: dict[str, str] = field(default_factory=dict)  # table ARN → its customer managed key ARN
    table_names: dict[str, str] = field(default_factory=dict)  # table ARN → its name
    bucket_keys: dict[str, str] = field(default_factory=dict)  # bucket name → its SSE-KMS key ARN
    keys: list[str] = field(default_factory=list)
    key_policies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # key ARN → its statements

    @classmethod
    def of(cls, stack: Stack) -> Resources:
        found = cls(stack)
        name = stack.refs.get("AWS::StackName", "local")
        for logical_id, resource in tpl.resources().items():
            kind, props = resource["Type"], resource.get("Properties", {})
            ref, arn = stack.refs.get(logical_id), stack.attrs.get((logical_id, "Arn"))
            if kind == "AWS::SecretsManager::Secret" and ref:
                arn = ref  # a secret's Ref is its ARN
            if not (ref and arn):
                continue
            found.arns.update({ref: arn, arn: arn, f"{name}-{logical_id}": arn})
            if kind == "AWS::KMS::Key":
                found.keys.append(arn)
                found.arns[f"alias/{name}-{logical_id}"] = arn
                policy = tpl.resolve(props.get("KeyPolicy", {}), stack.refs, stack.attrs)
                found.key_policies[arn] = list(policy.get("Statement", []))
            if kind == "AWS::DynamoDB::Table":
                found.table_names[arn] = ref
            if kind == "AWS::S3::Bucket":
                for rule in props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", []):
                    bucket_key = rule.get("ServerSideEncryptionByDefault", {}).get("KMSMasterKeyID")
                    if isinstance(bucket_key, tpl.Intrinsic) and bucket_key.name == "Fn::GetAtt":
                        found.bucket_keys[ref] = stack.attrs[(bucket_key.value[0], "Arn")]
            key = (
                props.get("KmsMasterKeyId")
                or props.get("KmsKeyId")
                or props.get("SSESpecification", {}).get("KMSMasterKeyId")
            )
            if isinstance(key, tpl.Intrinsic):
                key_arn = stack.attrs.get((key.value[0] if key.name == "Fn::GetAtt" else key.value, "Arn"))
                if key_arn and kind == "AWS::SQS::Queue":
                    found.queue_keys[arn] = key_arn
                elif key_arn and kind == "AWS::SecretsManager::Secret":
                    found.secret_keys[arn] = key_arn
                elif key_arn and kind == "AWS::DynamoDB::Table":
                    found.table_keys[arn] = key_arn
        return found

    def via(self, service: str) -> tuple[str, str]:
        """The `kms:ViaService` of a KMS request that `service` makes for its caller."""
        return ("kms:ViaService", f"{service}.{self.stack.refs['AWS::Region']}.amazonaws.com")

    def arn(self, name: str | None) -> str:
        return self.arns.get(name or "", f"unknown:{name}")

    # ------------------------------------------------------------------ calls → requests
    def requests(self, call: Call) -> list[Request]:
        """What IAM authorises for one call; empty for a call this module cannot map (reported apart)."""
        prefix = _PREFIX.get(call.service, call.service)
        action = f"{prefix}:{_ACTION.get((call.service, call.operation), call.operation)}"
        params = call.params
        if prefix == "dynamodb":
            if "StreamArn" in params:
                return [Request(action, params["StreamArn"])]
            if "RequestItems" in params:  # BatchGetItem / BatchWriteItem: authorised per table
                return [Request(action, self.arn(table)) for table in sorted(params["RequestItems"])]
            table = self.arn(params.get("TableName"))
            index = params.get("IndexName")
            context = dynamodb_context(call.operation, params)
            return [Request(action, f"{table}/index/{index}" if index else table, context)]
        if prefix == "sqs":
            return [Request(action, self.arn(params.get("QueueUrl")))]
        if prefix == "secretsmanager":
            return [Request(action, self.arn(params.get("SecretId")))]
        if prefix == "events":
            buses = {entry.get("EventBusName", "default") for entry in params.get("Entries", [])}
            return [Request(action, self.arn(bus)) for bus in sorted(buses)]
        if prefix == "s3":
            # An object's operations are authorised on `arn:aws:s3:::bucket/key`; HeadObject is GetObject,
            # and naming a version asks for the action's Version form.
            versioned = "VersionId" in params
            names = {
                "HeadObject": "GetObjectVersion" if versioned else "GetObject",
                "GetObject": "GetObjectVersion" if versioned else "GetObject",
                "GetObjectTagging": "GetObjectVersionTagging" if versioned else "GetObjectTagging",
                "PutObjectTagging": "PutObjectVersionTagging" if versioned else "PutObjectTagging",
            }
            if call.operation not in names or "Bucket" not in params:
                return []
            return [
                Request(
                    f"s3:{names[call.operation]}", f"arn:aws:s3:::{params['Bucket']}/{params.get('Key', '')}"
                )
            ]
        if prefix == "kms":
            context = tuple(
                sorted(
                    (f"kms:EncryptionContext:{key}", str(value))
                    for key, value in (params.get("EncryptionContext") or {}).items()
                )
            )
            key_id = params.get("KeyId")
            # Decrypt may leave the key to the ciphertext: it is then one of the template's keys.
            targets = [self.arn(key_id)] if key_id else list(self.keys)
            return [Request(action, target, context) for target in targets]
        return []

    def implied(self, call: Call) -> list[Request]:
        """The KMS permissions AWS requires for this call without the call naming them."""
        why = f"{call.service}:{call.operation}"
        if call.service == "dynamodb":
            tables = call.params.get("RequestItems") or [call.params.get("TableName")]
            implied = []
            for table in sorted({self.arn(name) for name in tables}):
                key = self.table_keys.get(table)
                if key is not None:
                    name = ("kms:EncryptionContext:aws:dynamodb:tableName", self.table_names[table])
                    implied.append(Request("kms:Decrypt", key, (name, self.via("dynamodb")), why))
            return implied
        if call.service == "sqs":
            queue = self.arn(call.params.get("QueueUrl"))
            key = self.queue_keys.get(queue)
            if key is None:
                return []
            context = (("kms:EncryptionContext:aws:sqs:arn", queue), self.via("sqs"))
            if call.operation in ("SendMessage", "SendMessageBatch"):
                return [
                    Request("kms:GenerateDataKey", key, context, why),
                    Request("kms:Decrypt", key, context, why),
                ]
            if call.operation == "ReceiveMessage":
                return [Request("kms:Decrypt", key, context, why)]
        if call.service == "s3" and call.operation in ("GetObject", "HeadObject"):
            # Reading an SSE-KMS object: S3 has KMS open its data key with the caller's rights.
            key = self.bucket_keys.get(str(call.params.get("Bucket")))
            if key is not None:
                return [Request("kms:Decrypt", key, (self.via("s3"),), why)]
        if call.service == "secretsmanager" and call.operation == "GetSecretValue":
            secret = self.arn(call.params.get("SecretId"))
            key = self.secret_keys.get(secret)
            if key is not None:
                context = (("kms:EncryptionContext:SecretARN", secret), self.via("secretsmanager"))
                return [Request("kms:Decrypt", key, context, why)]
        return []

    # ------------------------------------------------------------------ judging
    def account_statements(self, key: str) -> list[dict[str, Any]]:
        """The key policy's statements for this stack's account (its root): those IAM delegation applies."""
        root = f"arn:{self.stack.refs['AWS::Partition']}:iam::{self.stack.refs['AWS::AccountId']}:root"
        return [
            {k: v for k, v in statement.items() if k != "Principal"}
            for statement in self.key_policies.get(key, [])
            if isinstance(statement.get("Principal"), Mapping)
            and root in _listed(statement["Principal"].get("AWS"))
        ]

    def allows(self, statements: Iterable[Mapping[str, Any]], request: Request) -> bool:
        """What AWS decides for one of the account's roles: its policy, and the key's policy for a key."""
        if not allowed(statements, request):
            return False
        return request.resource not in self.key_policies or allowed(
            self.account_statements(request.resource), request
        )


# ---------------------------------------------------------------------- policies
def inline_statements(logical_id: str, stack: Stack) -> list[dict[str, Any]]:
    """The function's inline policy statements, resolved against the stack (SAM templates yield none)."""
    props = tpl.resources()[logical_id]["Properties"]
    statements: list[dict[str, Any]] = []
    for policy in props.get("Policies", []):
        if isinstance(policy, Mapping) and "Statement" in policy:
            statements += [tpl.resolve(s, stack.refs, stack.attrs) for s in policy["Statement"]]
    return statements


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(item) for item in value or []]


_SINGLE_VALUED = ("dynamodb:ReturnValues", "dynamodb:Select", "kms:ViaService")
_MULTI_VALUED = ("dynamodb:Attributes",)


class Unreadable(Exception):
    """A condition this module cannot evaluate: the statement is reported, never taken to match."""


def _readable(key: str) -> bool:
    return key in _SINGLE_VALUED or key in _MULTI_VALUED or key.startswith("kms:EncryptionContext:")


def _string_test(operator: str, value: str, wanted: Any) -> bool:
    if operator == "StringEquals":
        return value in _listed(wanted)
    return any(fnmatch.fnmatchcase(value, w) for w in _listed(wanted))  # StringLike


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, Value]) -> bool:
    """One operator on one key, as IAM evaluates it (raises Unreadable for what it does not support)."""
    if not _readable(key):
        raise Unreadable(key)
    present = key in context
    if operator == "Null":  # "true": the request has no such key; "false": it has one
        return (str(wanted).lower() == "true") != present
    qualifier, _, test = operator.rpartition(":")
    if_exists = test.endswith("IfExists")
    test = test.removesuffix("IfExists")
    if test not in ("StringEquals", "StringLike"):
        raise Unreadable(operator)
    value = context.get(key)
    if qualifier in ("ForAllValues", "ForAnyValue"):
        if key not in _MULTI_VALUED:
            raise Unreadable(f"{operator} on {key}")
        values = () if value is None else (value,) if isinstance(value, str) else value
        if qualifier == "ForAllValues":  # vacuously true for an absent key or an empty set
            return all(_string_test(test, v, wanted) for v in values)
        return any(_string_test(test, v, wanted) for v in values)
    if qualifier:
        raise Unreadable(operator)
    if not present:
        return if_exists
    if not isinstance(value, str):  # a single-valued operator on a set: not what IAM means by it
        raise Unreadable(f"{operator} on {key}")
    return _string_test(test, value, wanted)


def _conditions_hold(condition: Mapping[str, Any], context: Mapping[str, Value]) -> bool:
    return all(
        _condition_holds(operator, key, wanted, context)
        for operator, tests in condition.items()
        for key, wanted in tests.items()
    )


def _matches(statement: Mapping[str, Any], request: Request) -> bool:
    unsupported = {"NotAction", "NotResource", "NotPrincipal", "Principal"} & set(statement)
    if unsupported:
        raise Unreadable(", ".join(sorted(unsupported)))
    actions = [action.lower() for action in _listed(statement.get("Action"))]
    if not any(fnmatch.fnmatchcase(request.action.lower(), action) for action in actions):
        return False
    if not any(fnmatch.fnmatchcase(request.resource, res) for res in _listed(statement.get("Resource"))):
        return False
    return _conditions_hold(statement.get("Condition", {}), dict(request.context))


def _safely_matches(statement: Mapping[str, Any], request: Request) -> bool:
    """An Allow this module cannot read allows nothing; a Deny it cannot read denies (and is reported)."""
    try:
        return _matches(statement, request)
    except Unreadable:
        return statement.get("Effect") == "Deny"


def allowed(statements: Iterable[Mapping[str, Any]], request: Request) -> bool:
    statements = list(statements)
    if any(s.get("Effect") == "Deny" and _safely_matches(s, request) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and _safely_matches(s, request) for s in statements)
