"""The example shop on AWS services: the stack from template.yaml deployed into moto_server,
the function run under `holdfast emulate` with the environment the stack gave it, and this
test playing Lambda's SQS poller (event source mapping) and EventBridge."""

from __future__ import annotations

import email
import json
import os

import boto3
import pytest
from shop_support import HOSTS, REGION, ShopFunction, bearer, jwt

from moto_support import sqs_event

#: Each host runs with the environment of the template's variant for it: the managed runtime is
#: the zip package, `holdfast run` the container image (which streams). A stack each also means
#: a table each: periodic slots run once per table, whichever function asks.
PACKAGING = {"awslambdaric": "zip", "holdfast-run": "image"}


@pytest.fixture(scope="module", params=sorted(HOSTS))
def deployed(request, stacks):
    stack = stacks(PACKAGING[request.param])
    # moto "delivers" to an enabled mapping itself, by running the function in Docker (absent
    # here). This test is the poller: the stack's mappings pause while it runs.
    function_id = "ShopFunction" if PACKAGING[request.param] == "zip" else "ShopImageFunction"
    mappings = [stack.physical(f"{function_id}{event}") for event in ("Reports", "Stock")]
    for uuid in mappings:
        stack.awslambda.update_event_source_mapping(UUID=uuid, Enabled=False)
    yield stack, request.param
    for uuid in mappings:
        stack.awslambda.update_event_source_mapping(UUID=uuid, Enabled=True)


@pytest.fixture
def stack(deployed):
    return deployed[0]


@pytest.fixture(scope="module")
def shop(deployed, moto_endpoint, tmp_path_factory):
    stack, host = deployed
    tmp_path = tmp_path_factory.mktemp("shop")
    function_id = "ShopFunction" if PACKAGING[host] == "zip" else "ShopImageFunction"
    config = stack.awslambda.get_function_configuration(FunctionName=stack.physical(function_id))
    variables = config["Environment"]["Variables"]
    env = {
        **os.environ,
        **variables,  # SHOP_QUEUE_URL=sqs://...?table=..., the secret, HOLDFAST_INVOKE_MODE
        "SHOP_DATA_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }
    mode = variables.get("HOLDFAST_INVOKE_MODE", "buffered")  # the Function URL's InvokeMode
    function = ShopFunction(HOSTS[host], env, "--invoke-mode", mode)
    function.data = tmp_path
    yield function
    function.close()


class Poller:
    """What Lambda's SQS event source mapping does: receive a batch, invoke the function with
    it, delete the messages the answer does not list in batchItemFailures."""

    def __init__(self, stack, function: ShopFunction, queue: str = "ReportQueue") -> None:
        self.sqs = boto3.client("sqs", region_name=REGION, endpoint_url=stack.endpoint)
        self.queue_url = stack.physical(queue)
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.function = function

    def poll(self) -> dict:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        assert messages, "nothing in the queue"
        answer = self.function.invoke(sqs_event(messages, self.queue_arn))
        assert answer.status == 200 and "X-Amz-Function-Error" not in answer.headers, answer.body
        result = answer.json()
        failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return result


def test_a_report_job_runs_through_sqs_and_its_status_is_in_dynamodb(shop, stack):
    accepted = shop.request("POST", "/reports?month=2026-11", headers=bearer(jwt()))
    assert accepted.status == 202, shop.output()
    status_path = accepted.headers["location"].removeprefix(shop.url)
    task_id = accepted.json()["id"]
    assert shop.request("GET", status_path, headers=bearer(jwt())).json()["state"] == "queued"
    item = stack.ddb.get_item(TableName=stack.physical("TaskTable"), Key={"id": {"S": task_id}})
    assert "Item" in item  # the status lives in the stack's table

    poller = Poller(stack, shop)
    assert poller.poll() == {"batchItemFailures": []}
    done = shop.request("GET", status_path, headers=bearer(jwt())).json()
    assert (done["state"], done["result"]["month"]) == ("succeeded", "2026-11")
    assert shop.request("GET", status_path).status == 401


def test_the_schedule_queues_the_digest_and_the_function_runs_it(shop, stack):
    # The EventBridge rule's constant input (template.yaml), as EventBridge invokes it.
    scheduled = shop.invoke({"holdfast": {"periodic": "shop.daily_digest"}})
    assert scheduled.status == 200 and "X-Amz-Function-Error" not in scheduled.headers
    assert Poller(stack, shop).poll() == {"batchItemFailures": []}
    [digest] = [
        email.message_from_bytes(path.read_bytes()) for path in (shop.data / "outbox").iterdir()
    ]
    assert (digest["To"], digest["Subject"]) == ("ops@example.com", "Daily digest")


def test_a_poison_message_alone_is_reported_for_redelivery(shop, stack):
    poller = Poller(stack, shop)
    accepted = shop.request("POST", "/reports?month=2026-12", headers=bearer(jwt()))
    assert accepted.status == 202
    poison = poller.sqs.send_message(QueueUrl=poller.queue_url, MessageBody="{not json")
    results = [poller.poll()]
    while (
        shop.request(
            "GET", accepted.headers["location"].removeprefix(shop.url), headers=bearer(jwt())
        ).json()["state"]
        != "succeeded"
    ):
        results.append(poller.poll())  # SQS may hand out the two messages in separate batches
    failures = {
        item["itemIdentifier"] for result in results for item in result["batchItemFailures"]
    }
    assert failures == {poison["MessageId"]}
    leftover = poller.sqs.receive_message(
        QueueUrl=poller.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    ).get("Messages", [])
    # Left in the queue: after maxReceiveCount receipts the redrive policy moves it to the DLQ.
    assert [message["Body"] for message in leftover] == ["{not json"]


def test_stock_updates_are_consumed_and_a_bad_one_stays_for_the_redrive(shop, stack):
    poller = Poller(stack, shop, "StockQueue")
    poller.sqs.send_message(QueueUrl=poller.queue_url, MessageBody='{"sku": "tea", "quantity": 3}')
    bad = poller.sqs.send_message(QueueUrl=poller.queue_url, MessageBody='{"sku": ""}')
    failures: set[str] = set()
    while True:  # until both were delivered (SQS may split them into two batches)
        failures |= {item["itemIdentifier"] for item in poller.poll()["batchItemFailures"]}
        audit = (shop.data / "audit.jsonl").read_text().splitlines()
        if failures and any('"stock.update"' in line for line in audit):
            break
    assert failures == {bad["MessageId"]}
    [update] = [json.loads(line) for line in audit if '"stock.update"' in line]
    assert (update["sku"], update["quantity"]) == ("tea", 3)
