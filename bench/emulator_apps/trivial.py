"""A trivial Lambda handler, for `holdfast run trivial.handler` in bench/emulator.py."""


def handler(event, context):
    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "ok"}
