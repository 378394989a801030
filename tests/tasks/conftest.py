"""Fixtures for the task queue tests: SQLite files, and a real moto server for SQS/DynamoDB."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from moto_support import REGION, moto_server, sqs_event
from task_support import isolated_registry

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _clean_registry():
    yield from isolated_registry()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'tasks.db'}"


@pytest.fixture(params=["memory", "sqlite"])
def any_url(request, tmp_path):
    """The two local backends, which must behave alike."""
    if request.param == "memory":
        return "memory://"
    return f"sqlite:///{tmp_path / 'tasks.db'}"


@pytest.fixture(scope="session")
def moto_endpoint():
    """A `moto` server process on a free 127.0.0.1 port, with dummy AWS credentials."""
    with moto_server() as endpoint:
        yield endpoint


class AwsResources:
    """One SQS queue (optionally with a dead-letter queue) and one status table."""

    def __init__(self, endpoint: str, *, max_receive: int | None = None) -> None:
        import boto3

        from holdfast.tasks import create_table

        suffix = uuid.uuid4().hex[:10]
        self.endpoint = endpoint
        self.sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
        self.table = f"tasks-{suffix}"
        create_table(self.table, endpoint_url=endpoint, region=REGION)
        attributes = {"VisibilityTimeout": "30"}
        self.dlq_url = None
        if max_receive is not None:
            self.dlq_url = self.sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
            dlq_arn = self.sqs.get_queue_attributes(
                QueueUrl=self.dlq_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}
            )
        self.queue_name = f"work-{suffix}"
        self.queue_url = self.sqs.create_queue(QueueName=self.queue_name, Attributes=attributes)[
            "QueueUrl"
        ]
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]

    def url(self, wait: int = 0) -> str:
        return f"sqs://{self.queue_url}?table={self.table}&wait={wait}"

    def receive(self, *, queue_url: str | None = None, visibility: int = 30) -> list[dict]:
        return self.sqs.receive_message(
            QueueUrl=queue_url or self.queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])

    def lambda_event(self, messages: list[dict]) -> dict:
        """The event Lambda's SQS poller would send for these received messages."""
        return sqs_event(messages, self.queue_arn)


@pytest.fixture
def aws(moto_endpoint):
    return AwsResources(moto_endpoint)


@pytest.fixture
def aws_with_dlq(moto_endpoint):
    return AwsResources(moto_endpoint, max_receive=2)


@pytest.fixture
def make_aws(moto_endpoint):
    """`make_aws(max_receive=N)`: fresh SQS queues (with a DLQ if N is given) and a table."""
    return lambda max_receive=None: AwsResources(moto_endpoint, max_receive=max_receive)
