"""Subscribe the listener to the Telemetry API with the sample's buffering."""

import json
import os

import requests

URL = f"http://{os.getenv('AWS_LAMBDA_RUNTIME_API')}/2022-07-01/telemetry"


def subscribe_listener(extension_id, listener_url):
    body = {
        "schemaVersion": "2022-07-01",
        "destination": {"protocol": "HTTP", "URI": listener_url},
        "types": ["platform", "function", "extension"],
        "buffering": {"timeoutMs": 1000, "maxBytes": 256 * 1024, "maxItems": 10000},
    }
    headers = {"Content-Type": "application/json", "Lambda-Extension-Identifier": extension_id}
    response = requests.put(URL, data=json.dumps(body), headers=headers)
    print(f"subscription: {response.status_code} {response.text}", flush=True)
    if response.status_code != 200:
        raise RuntimeError(f"subscription refused: {response.status_code} {response.text}")
