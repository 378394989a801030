"""Deploy examples/shop/template.yaml as `sam deploy` does — package the code, apply the SAM
transform (locally, aws-sam-translator), create the stack — into moto_server's CloudFormation.

Stand-ins, each for something moto cannot do: the code zip goes to moto's S3, the image URI is
the one `sam build` would have pushed, and what moto's CloudFormation lacks is bridged by
`moto_stand_ins` (the translated template itself is checked by the tests)."""

from __future__ import annotations

import copy
import io
import json
import uuid
import zipfile

import boto3
import pytest
from shop_support import REGION, SECRET, SHOP

TEMPLATE = SHOP / "template.yaml"
IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:python3.13"


def sam_transform(template: dict, code_uri: str) -> dict:
    """What `sam package` + the Serverless transform do, locally."""
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    template = copy.deepcopy(template)
    resources = template["Resources"]
    resources["ShopFunction"]["Properties"]["CodeUri"] = code_uri  # sam package uploads "."
    resources["ShopImageFunction"]["Properties"]["ImageUri"] = IMAGE_URI  # sam build pushes
    loader = ManagedPolicyLoader(boto3.client("iam", region_name=REGION))
    return transform(template, {}, loader)


def load_template() -> dict:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(TEMPLATE.read_text())


def upload_code(moto_endpoint: str) -> str:
    """The function's code zip in (moto's) S3, as `sam package` leaves it."""
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)
    bucket = f"artifacts-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((SHOP / "shop").glob("*.py")):
            archive.write(path, f"shop/{path.name}")
    s3.put_object(Bucket=bucket, Key="shop.zip", Body=buffer.getvalue())
    return f"s3://{bucket}/shop.zip"


class Stack:
    def __init__(self, endpoint: str, name: str) -> None:
        client = lambda service: boto3.client(service, region_name=REGION, endpoint_url=endpoint)  # noqa: E731
        self.cfn, self.sqs, self.ddb = client("cloudformation"), client("sqs"), client("dynamodb")
        self.awslambda, self.iam, self.events = client("lambda"), client("iam"), client("events")
        self.name, self.endpoint = name, endpoint
        stack = self.cfn.describe_stacks(StackName=name)["Stacks"][0]
        self.status = stack["StackStatus"]
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self.resources = {
            r["LogicalResourceId"]: r
            for r in self.cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
        }

    def physical(self, logical_id: str) -> str:
        return self.resources[logical_id]["PhysicalResourceId"]


#: Resource types moto's CloudFormation does not implement (it skips them with a warning).
MOTO_LACKS = {"AWS::Lambda::Alias", "AWS::Lambda::Url", "AWS::ApiGatewayV2::Api"}


def moto_stand_ins(template: dict) -> dict:
    """Bridge what moto's CloudFormation lacks: it cannot create aliases, so what refers to one
    (its ``Ref`` is the alias ARN) gets the function's ARN instead; it skips Function URLs and
    HTTP APIs, so outputs made from them are left out. test_template.py checks the translated
    template for both."""
    template = copy.deepcopy(template)
    resources = template["Resources"]
    aliases = {
        logical_id: {"Fn::GetAtt": [resource["Properties"]["FunctionName"]["Ref"], "Arn"]}
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Alias"
    }

    def replace(node):
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in aliases:
                return aliases[node["Ref"]]
            return {key: replace(value) for key, value in node.items()}
        if isinstance(node, list):
            return [replace(value) for value in node]
        return node

    template["Resources"] = {
        logical_id: replace(resource)
        for logical_id, resource in resources.items()
        if logical_id not in aliases
    }
    # Outputs made from resources moto skips would break its DescribeStacks: leave them out
    # (test_the_outputs_give_the_urls checks them in the translated template).
    lacking = [key for key, r in resources.items() if r["Type"] in MOTO_LACKS]
    template["Outputs"] = {
        key: output
        for key, output in template["Outputs"].items()
        if not any(logical_id in json.dumps(output) for logical_id in lacking)
    }
    return template


def translated(endpoint: str, code_uri: str) -> dict:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        return sam_transform(load_template(), code_uri)


def deploy(endpoint: str, packaging: str, code_uri: str) -> Stack:
    translated_template = moto_stand_ins(translated(endpoint, code_uri))
    cfn = boto3.client("cloudformation", region_name=REGION, endpoint_url=endpoint)
    name = f"shop-{packaging}-{uuid.uuid4().hex[:6]}"
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(translated_template),
        Parameters=[
            {"ParameterKey": "Packaging", "ParameterValue": packaging},
            {"ParameterKey": "JwtSecret", "ParameterValue": SECRET},
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    cfn.get_waiter("stack_create_complete").wait(
        StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    return Stack(endpoint, name)
