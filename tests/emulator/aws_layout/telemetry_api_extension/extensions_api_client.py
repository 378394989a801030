"""Register with the Extensions API and wait for the next event (as the sample's client does)."""

import json
import os
import sys

import requests

BASE = f"http://{os.getenv('AWS_LAMBDA_RUNTIME_API')}/2020-01-01/extension"


def register_extension(name):
    response = requests.post(
        f"{BASE}/register",
        data=json.dumps({"events": ["INVOKE", "SHUTDOWN"]}),
        headers={"Content-Type": "application/json", "Lambda-Extension-Name": name},
    )
    if response.status_code != 200:
        print(f"registration failed: {response.text}", flush=True)
        sys.exit(1)
    return response.headers["Lambda-Extension-Identifier"]


def next_event(extension_id):
    response = requests.get(
        f"{BASE}/event/next",
        headers={"Content-Type": "application/json", "Lambda-Extension-Identifier": extension_id},
    )
    if response.status_code != 200:
        print(f"next failed: {response.status_code} {response.text}", flush=True)
        sys.exit(1)
    return response.json()
