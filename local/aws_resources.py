"""Creates, from template.yaml's own definitions, every AWS resource the functions use, against
whatever AWS endpoint boto3 is pointed at (moto in tests, the embedded moto server under `make run`)."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from local import template as tpl


@dataclass
class Stack:
    """What CloudFormation would report: each resource's Ref and attributes, plus parameter values."""

    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[tuple[str, str], str] = field(default_factory=dict)
    # Logical ids this run created, as opposed to found from an earlier run on the same endpoint.
    created: set[str] = field(default_factory=set)

    def resource_ids(self) -> dict[str, dict[str, str]]:
        """Each template resource created here, its type and id (a Ref's value), as CloudFormation's
        ListStackResources names them: what `x3link doctor` reads. Never a parameter's value."""
        return {
            logical_id: {"type": resource["Type"], "id": self.refs[logical_id]}
            for logical_id, resource in tpl.resources().items()
            if logical_id in self.refs
        }

    def function_environment(self, logical_id: str) -> dict[str, str]:
        env = tpl.resolve(tpl.functions()[logical_id].environment, self.refs, self.attrs)
        return {key: str(value) for key, value in env.items()}


def _table(client: Any, name: str, props: Mapping[str, Any]) -> tuple[dict[str, str], bool]:
    """The table's attributes (`Arn`, and `StreamArn` when it has a stream); True when created now."""
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    stream = props.get("StreamSpecification")
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **stream}
    try:
        description = client.create_table(**kwargs)["TableDescription"]
    except client.exceptions.ResourceInUseException:
        # Already there (an AWS_ENDPOINT_URL that outlives `make run`): reuse it, with its stream.
        description = client.describe_table(TableName=name)["Table"]
        present = {index["IndexName"] for index in description.get("GlobalSecondaryIndexes", [])}
        for index in props.get("GlobalSecondaryIndexes") or []:
            if index["IndexName"] not in present:  # an index the template gained since that run
                description = client.update_table(
                    TableName=name,
                    AttributeDefinitions=props["AttributeDefinitions"],
                    GlobalSecondaryIndexUpdates=[{"Create": index}],
                )["TableDescription"]
        if stream and not description.get("LatestStreamArn"):
            description = client.update_table(
                TableName=name, StreamSpecification=kwargs["StreamSpecification"]
            )["TableDescription"]
        return _table_attrs(description), False
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    return _table_attrs(description), True


def _table_attrs(description: Mapping[str, Any]) -> dict[str, str]:
    attrs = {"Arn": description["TableArn"]}
    if description.get("LatestStreamArn"):
        attrs["StreamArn"] = description["LatestStreamArn"]
    return attrs


def create(
    parameters: Mapping[str, str],
    *,
    stack_name: str = "local",
    client_credentials: Mapping[str, str] | None = None,
    session: boto3.Session | None = None,
    clients: MutableMapping[str, Any] | None = None,
) -> Stack:
    """Create the template's tables, secret, queues, event buses, keys and buckets; return their identifiers.

    Idempotent: resources left by an earlier run on the same endpoint are found and reused.

    `client_credentials` becomes the secret's value in place of the template's generated placeholder.
    `clients`: where the clients it makes are kept, by service; a caller that creates many stacks against
    one endpoint (a test process, each test under moto) passes the same mapping and pays for them once.
    """
    session = session or boto3.Session()
    clients = {} if clients is None else clients

    def client(service: str) -> Any:
        """One client per service for the whole stack: each new one loads and parses botocore's models."""
        if service not in clients:
            clients[service] = session.client(service)  # type: ignore[call-overload]
        return clients[service]

    stack = Stack(refs={**tpl.parameter_defaults(), **parameters, "AWS::StackName": stack_name})
    stack.refs.setdefault("AWS::Region", session.region_name or "us-east-1")
    stack.refs.setdefault("AWS::AccountId", "123456789012")
    stack.refs.setdefault("AWS::Partition", "aws")
    # A stack id as CloudFormation's, fixed per stack name: names derived from it stay the same every run.
    stack.refs.setdefault(
        "AWS::StackId",
        f"arn:aws:cloudformation:{stack.refs['AWS::Region']}:{stack.refs['AWS::AccountId']}:stack/{stack_name}/"
        f"{uuid.uuid5(uuid.NAMESPACE_URL, f'x3link-local-stack:{stack_name}')}",
    )
    all_resources = tpl.created_resources(stack.refs)  # those whose Condition holds (e.g. HasWebhook)
    order = [
        "AWS::KMS::Key",
        "AWS::DynamoDB::Table",
        "AWS::SecretsManager::Secret",
        "AWS::SQS::Queue",
        "AWS::Events::EventBus",
        "AWS::S3::Bucket",  # after the queues its notifications name
        "AWS::CloudWatch::Alarm",
    ]
    for type_ in order:
        for logical_id, resource in _dependencies_first(all_resources, type_):
            name = f"{stack_name}-{logical_id}"
            if type_ == "AWS::CloudWatch::Alarm":
                # Alarms name functions and a topic that do not exist locally: those resolve to local names.
                stack.refs[logical_id] = _alarm(
                    client("cloudwatch"), name, resource.get("Properties", {}), stack
                )
                continue
            props = tpl.resolve(resource.get("Properties", {}), stack.refs, stack.attrs)
            if type_ == "AWS::KMS::Key":
                meta = _key(client("kms"), name, props)
                stack.refs[logical_id], stack.attrs[(logical_id, "Arn")] = meta["KeyId"], meta["Arn"]
            elif type_ == "AWS::DynamoDB::Table":
                stack.refs[logical_id] = name
                attrs, created = _table(client("dynamodb"), name, props)
                stack.attrs.update({(logical_id, attr): value for attr, value in attrs.items()})
                if created:
                    stack.created.add(logical_id)
            elif type_ == "AWS::SecretsManager::Secret":
                value = dict(client_credentials) if client_credentials else _placeholder_secret(props)
                stack.refs[logical_id] = _secret(client("secretsmanager"), name, json.dumps(value))
            elif type_ == "AWS::SQS::Queue":
                url, arn = _queue(client("sqs"), name, props)
                stack.refs[logical_id], stack.attrs[(logical_id, "Arn")] = url, arn
                stack.attrs[(logical_id, "QueueName")] = name
            elif type_ == "AWS::Events::EventBus":
                bus_name = props.get("Name", name)
                arn = _event_bus(client("events"), bus_name)
                stack.refs[logical_id], stack.attrs[(logical_id, "Arn")] = bus_name, arn
            elif type_ == "AWS::S3::Bucket":
                bucket = str(props.get("BucketName") or _bucket_name(name, stack.refs["AWS::AccountId"]))
                _bucket(client("s3"), bucket, props)
                _drop_test_events(client("sqs"), props)
                stack.refs[logical_id] = bucket
                stack.attrs[(logical_id, "Arn")] = f"arn:aws:s3:::{bucket}"
    return stack


def _dependencies_first(
    resources: Mapping[str, dict[str, Any]], type_: str
) -> list[tuple[str, dict[str, Any]]]:
    """The resources of one type, each after those of the same type it refers to (a queue after its
    dead-letter queue), else in template order."""
    pending = {logical_id: r for logical_id, r in resources.items() if r["Type"] == type_}
    ordered: list[tuple[str, dict[str, Any]]] = []
    while pending:
        ready = [
            logical_id
            for logical_id, resource in pending.items()
            if not (_references(resource.get("Properties", {})) & (set(pending) - {logical_id}))
        ]
        if not ready:
            raise ValueError(f"template.yaml: circular references among {sorted(pending)}")
        ordered.extend((logical_id, pending.pop(logical_id)) for logical_id in ready)
    return ordered


def _references(value: Any) -> set[str]:
    """The logical ids a property value names through !Ref, !GetAtt or ${...}."""
    if isinstance(value, tpl.Intrinsic):
        if value.name == "Ref":
            return {value.value}
        if value.name == "Fn::GetAtt":
            return {value.value[0]}
        if value.name == "Fn::Sub" and isinstance(value.value, str):
            return {name.split(".")[0] for name in re.findall(r"\$\{([A-Za-z0-9:._]+)\}", value.value)}
        return _references(value.value)
    if isinstance(value, dict):
        return set().union(*(_references(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_references(item) for item in value))
    return set()


# The queue attributes that change behaviour (what a message sees); encryption settings do not, locally.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
)


def _queue(client: Any, name: str, props: Mapping[str, Any]) -> tuple[str, str]:
    """The queue's URL and ARN, created (or updated, when it exists) with the template's attributes."""
    attributes = {
        key: json.dumps(props[key]) if isinstance(props[key], dict) else str(props[key])
        for key in _QUEUE_ATTRIBUTES
        if key in props
    }
    try:
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except client.exceptions.QueueNameExists:
        # Left by an earlier run with other attributes: bring it to what the template says.
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
        client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _bucket(client: Any, name: str, props: Mapping[str, Any]) -> None:
    """The bucket, created if missing, with the template's encryption, public access block, versioning and
    queue notifications (moto's S3 sends the events to its SQS, as S3 does)."""
    with contextlib.suppress(
        client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
    ):
        client.create_bucket(Bucket=name)
    if props.get("BucketEncryption"):
        client.put_bucket_encryption(
            Bucket=name,
            # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                        **(
                            {"BucketKeyEnabled": rule["BucketKeyEnabled"]}
                            if "BucketKeyEnabled" in rule
                            else {}
                        ),
                    }
                    for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                ]
            },
        )
    if props.get("PublicAccessBlockConfiguration"):
        client.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    if props.get("VersioningConfiguration"):
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
    queues = (props.get("NotificationConfiguration") or {}).get("QueueConfigurations") or []
    if queues:
        client.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": queue["Queue"], "Events": [queue["Event"]], **_filter(queue)}
                    for queue in queues
                ]
            },
        )


def _drop_test_events(client: Any, props: Mapping[str, Any]) -> None:
    """S3 greets each queue a notification names with an `s3:TestEvent` message; drop it, so that a queue's
    consumer (and a test counting its deliveries) meets only the objects' own events."""
    for queue in (props.get("NotificationConfiguration") or {}).get("QueueConfigurations") or []:
        url = client.get_queue_url(QueueName=str(queue["Queue"]).rsplit(":", 1)[1])["QueueUrl"]
        messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        for message in messages.get("Messages", []):
            if '"s3:TestEvent"' in message["Body"]:
                client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _filter(queue: Mapping[str, Any]) -> dict[str, Any]:
    """A notification's key filter, as CloudFormation's `Filter.S3Key.Rules` reads in the S3 API."""
    rules = ((queue.get("Filter") or {}).get("S3Key") or {}).get("Rules")
    return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}


def _key(client: Any, name: str, props: Mapping[str, Any]) -> dict[str, Any]:
    """The key behind alias/<name>, created with that alias the first time."""
    alias = f"alias/{name}"
    try:
        return client.describe_key(KeyId=alias)["KeyMetadata"]
    except client.exceptions.NotFoundException:
        meta = client.create_key(Description=props.get("Description", ""))["KeyMetadata"]
        client.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        return meta


def _secret(client: Any, name: str, value: str) -> str:
    """The secret's ARN; an existing secret gets the new value (the credentials may have changed)."""
    try:
        return client.create_secret(Name=name, SecretString=value)["ARN"]
    except client.exceptions.ResourceExistsException:
        return client.put_secret_value(SecretId=name, SecretString=value)["ARN"]


def _event_bus(client: Any, name: str) -> str:
    try:
        return client.create_event_bus(Name=name)["EventBusArn"]
    except client.exceptions.ResourceAlreadyExistsException:
        return client.describe_event_bus(Name=name)["Arn"]


class _LocalNames(dict[str, str]):
    """Refs of the stack, and for a resource not created locally (a function, the alarm topic) the name it
    would have here: enough for an alarm's dimensions."""

    def __init__(self, refs: Mapping[str, str], stack_name: str) -> None:
        super().__init__(refs)
        self._stack_name = stack_name

    def __missing__(self, key: str) -> str:
        return f"{self._stack_name}-{key}"


# What put_metric_alarm takes under the template's own property names; actions are left out locally (the
# topic they notify is not created here).
_ALARM_PROPERTIES = (
    "AlarmDescription",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "ExtendedStatistic",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "Metrics",
    "ThresholdMetricId",
)


def _alarm(client: Any, name: str, properties: Mapping[str, Any], stack: Stack) -> str:
    """The alarm, created (or updated) under `name`, so that its state can be read and set locally."""
    refs = _LocalNames(stack.refs, stack.refs.get("AWS::StackName", "local"))
    props = tpl.resolve(dict(properties), refs, stack.attrs)
    kwargs = {key: props[key] for key in _ALARM_PROPERTIES if key in props}
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in kwargs:
            kwargs[key] = int(kwargs[key])
    if "Threshold" in kwargs:
        kwargs["Threshold"] = float(kwargs["Threshold"])
    client.put_metric_alarm(AlarmName=name, ActionsEnabled=False, **kwargs)
    return name


def _bucket_name(name: str, account: str) -> str:
    """What CloudFormation names a bucket it names itself: lower case, the stack's and logical id's, made
    unique (here by the account, as buckets share one namespace)."""
    return re.sub(r"[^a-z0-9-]", "-", f"{name}-{account}".lower())[:63].strip("-")


def _placeholder_secret(props: Mapping[str, Any]) -> dict[str, str]:
    generate = props.get("GenerateSecretString", {})
    value = json.loads(generate.get("SecretStringTemplate", "{}"))
    if "GenerateStringKey" in generate:
        value[generate["GenerateStringKey"]] = "generated-placeholder"
    return value
