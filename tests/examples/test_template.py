"""examples/shop/template.yaml: lint-clean, transformed locally by the SAM translator, deployed
into moto_server's CloudFormation API, and the stack's resources checked through boto3."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from shop_support import SECRET
from stack_support import IMAGE_URI, TEMPLATE, translated


def test_cfn_lint_is_clean():
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (lint.returncode, lint.stdout, lint.stderr) == (0, "", "")


@pytest.fixture(scope="module")
def template(moto_endpoint):
    """The template after the SAM transform (the managed-policy lookup goes to moto's IAM)."""
    return translated(moto_endpoint, "s3://artifacts/shop.zip")


def test_the_function_is_invoked_through_its_alias(template):
    """SnapStart applies to published versions only: everything that invokes the function goes
    through the `live` alias, never $LATEST."""
    resources = template["Resources"]
    for function, alias in (
        ("ShopFunction", "ShopFunctionAliaslive"),
        ("ShopImageFunction", "ShopImageFunctionAliaslive"),
    ):
        assert resources[alias]["Type"] == "AWS::Lambda::Alias"
        to_alias = {"Ref": alias}
        assert resources[f"{function}Reports"]["Properties"]["FunctionName"] == to_alias
        assert resources[f"{function}Stock"]["Properties"]["FunctionName"] == to_alias
        assert resources[f"{function}Url"]["Properties"]["TargetFunctionArn"] == to_alias
        [target] = resources[f"{function}DailyDigest"]["Properties"]["Targets"]
        assert target["Arn"] == to_alias
    api_target = resources["ShopApi"]["Properties"]["Target"]
    assert api_target == {
        "Fn::If": ["IsZip", {"Ref": "ShopFunctionAliaslive"}, {"Ref": "ShopImageFunctionAliaslive"}]
    }
    zip_function = resources["ShopFunction"]["Properties"]
    assert zip_function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert (zip_function["Runtime"], zip_function["Handler"]) == ("python3.13", "shop.app.handler")
    image_function = resources["ShopImageFunction"]["Properties"]
    assert (image_function["PackageType"], image_function["Code"]) == (
        "Image",
        {"ImageUri": IMAGE_URI},
    )


def test_the_function_urls_and_the_outputs(template):
    resources = template["Resources"]
    assert resources["ShopFunctionUrl"]["Properties"]["InvokeMode"] == "BUFFERED"
    assert resources["ShopImageFunctionUrl"]["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
    assert resources["ShopApi"]["Properties"]["ProtocolType"] == "HTTP"
    outputs = template["Outputs"]
    assert outputs["FunctionUrl"]["Value"] == {
        "Fn::If": [
            "IsZip",
            {"Fn::GetAtt": ["ShopFunctionUrl", "FunctionUrl"]},
            {"Fn::GetAtt": ["ShopImageFunctionUrl", "FunctionUrl"]},
        ]
    }
    assert "${ShopApi}.execute-api" in outputs["HttpApiUrl"]["Value"]["Fn::Sub"]
    assert resources["TaskTable"]["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": "expires_at",
        "Enabled": True,
    }


@pytest.fixture(scope="module", params=["zip", "image"])
def stack(request, stacks):
    return stacks(request.param), request.param


def test_the_stack_deploys_with_its_queue_dead_letter_queue_and_table(stack):
    stack, _ = stack
    assert stack.status == "CREATE_COMPLETE"
    queue = stack.sqs.get_queue_attributes(
        QueueUrl=stack.physical("ReportQueue"), AttributeNames=["All"]
    )["Attributes"]
    dlq = stack.sqs.get_queue_attributes(
        QueueUrl=stack.physical("ReportDeadLetterQueue"), AttributeNames=["All"]
    )["Attributes"]
    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq["QueueArn"],
        "maxReceiveCount": 5,
    }
    # Lambda refuses a mapping whose queue hides messages for less than the function timeout.
    assert int(queue["VisibilityTimeout"]) >= 30
    assert dlq["MessageRetentionPeriod"] == "1209600"
    table = stack.ddb.describe_table(TableName=stack.physical("TaskTable"))["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert stack.outputs == {
        "ReportQueueUrl": stack.physical("ReportQueue"),
        "ReportDeadLetterQueueUrl": stack.physical("ReportDeadLetterQueue"),
        "StockQueueUrl": stack.physical("StockQueue"),
        "TaskTableName": stack.physical("TaskTable"),
    }


def test_the_function_configuration(stack):
    stack, packaging = stack
    logical_id = "ShopFunction" if packaging == "zip" else "ShopImageFunction"
    function = stack.awslambda.get_function(FunctionName=stack.physical(logical_id))
    config = function["Configuration"]
    assert (config["Timeout"], config["MemorySize"]) == (30, 1024)
    variables = config["Environment"]["Variables"]
    queue_url, table = stack.physical("ReportQueue"), stack.physical("TaskTable")
    assert variables["SHOP_QUEUE_URL"] == f"sqs://{queue_url}?table={table}"
    assert variables["SHOP_JWT_SECRET"] == SECRET
    if packaging == "zip":
        assert (config["Runtime"], config["Handler"]) == ("python3.13", "shop.app.handler")
        assert "HOLDFAST_INVOKE_MODE" not in variables
    else:
        assert function["Code"]["ImageUri"] == IMAGE_URI
        assert variables["HOLDFAST_INVOKE_MODE"] == "response_stream"
    assert config["Role"].endswith(stack.physical("ShopRole"))


@pytest.mark.parametrize("queue, event", [("ReportQueue", "Reports"), ("StockQueue", "Stock")])
def test_each_queue_is_mapped_to_the_function_with_partial_batch_failures(stack, queue, event):
    stack, packaging = stack
    prefix = "ShopFunction" if packaging == "zip" else "ShopImageFunction"
    mapping = stack.awslambda.get_event_source_mapping(UUID=stack.physical(f"{prefix}{event}"))
    queue_arn = stack.sqs.get_queue_attributes(
        QueueUrl=stack.physical(queue), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert mapping["EventSourceArn"] == queue_arn
    assert mapping["FunctionArn"].endswith(f":function:{stack.physical(prefix)}")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert (mapping["BatchSize"], mapping["State"]) == (10, "Enabled")
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.physical(queue), AttributeNames=["All"]
    )["Attributes"]
    assert "deadLetterTargetArn" in json.loads(attributes["RedrivePolicy"])


def test_the_schedule_names_the_periodic_task(stack):
    stack, packaging = stack
    prefix = "ShopFunction" if packaging == "zip" else "ShopImageFunction"
    rule = stack.physical(f"{prefix}DailyDigest")
    assert stack.events.describe_rule(Name=rule)["ScheduleExpression"] == "cron(0 6 * * ? *)"
    [target] = stack.events.list_targets_by_rule(Rule=rule)["Targets"]
    assert json.loads(target["Input"]) == {"holdfast": {"periodic": "shop.daily_digest"}}
    assert target["Arn"].endswith(f":function:{stack.physical(prefix)}")


def test_the_role_allows_only_this_stacks_log_group_queue_and_table(stack):
    stack, _ = stack
    role = stack.physical("ShopRole")
    assert stack.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    [name] = stack.iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = stack.iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(document, str):
        # moto's CloudFormation stores the policy given as a mapping as its Python repr, which
        # boto3 hands back as a string.
        document = ast.literal_eval(document)
    statements = document["Statement"]
    queue_arn = stack.sqs.get_queue_attributes(
        QueueUrl=stack.physical("ReportQueue"), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    table_arn = stack.ddb.describe_table(TableName=stack.physical("TaskTable"))["Table"]["TableArn"]
    granted = {statement["Sid"]: statement for statement in statements}
    assert granted["ReportQueue"]["Resource"] == queue_arn
    assert granted["TaskStatus"]["Resource"] == table_arn
    stock_arn = stack.sqs.get_queue_attributes(
        QueueUrl=stack.physical("StockQueue"), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert granted["StockQueue"]["Resource"] == stock_arn
    assert "sqs:SendMessage" not in granted["StockQueue"]["Action"]  # it only consumes
    assert ":log-group:" in granted["WriteLogs"]["Resource"]
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert "*" not in json.dumps(statement["Resource"]).replace(":*", "")
        assert all("*" not in action for action in statement["Action"])
    assert set(granted["ReportQueue"]["Action"]) == {
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    }
