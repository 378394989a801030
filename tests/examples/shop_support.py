"""Run the example shop as users do: `holdfast emulate` in a subprocess, hosting the function
under `holdfast run` (the custom runtime / container) or unmodified awslambdaric (the managed
Python runtime), with the shop's settings in the environment."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import moto_support

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"
BIN = Path(sys.executable).parent
SECRET = "test-secret-0123456789"
REGION = "us-east-1"
AWS_ENV = {**moto_support.AWS_ENV, "AWS_REGION": REGION}

#: The two ways the template runs the function: the managed Python runtime calls
#: `shop.app.handler` through awslambdaric; the container image runs `holdfast run`.
HOSTS: dict[str, list[str]] = {
    "holdfast-run": [str(BIN / "holdfast"), "run", "shop.app:handler"],
    "awslambdaric": [sys.executable, "-m", "awslambdaric", "shop.app.handler"],
}


def shop_env(data_dir: Path, queue_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "SHOP_JWT_SECRET": SECRET,
        "SHOP_DATA_DIR": str(data_dir),
        "SHOP_QUEUE_URL": queue_url,
        "SHOP_MAIL_DELAY": "0.2",
        **extra,
    }


def wait_until(predicate: Callable[[], object], what: str, limit: float = 60.0) -> None:
    """Poll until `predicate` holds; the limit only keeps a broken test from hanging."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


class Response:
    """An HTTP answer; `headers` is the case-insensitive message object."""

    def __init__(self, status: int, headers, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


class ShopFunction:
    """`holdfast emulate [options] -- <host command>` in examples/shop, with its output kept."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        *options: str,
        holdfast: Path = BIN / "holdfast",
        cwd: Path = SHOP,
    ) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(holdfast), "emulate", "--port", "0", *options, "--", *command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""
        wait_until(self._listening, "the emulator listening")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def _listening(self) -> bool:
        assert self.process.poll() is None, "\n".join(self.lines)
        for line in self.lines:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                return True
        return False

    def request(
        self, method: str, path: str, body: object = None, headers: dict | None = None
    ) -> Response:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers=headers or {}
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return Response(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers, error.read())

    def invoke(self, event: object) -> Response:
        """The Lambda Invoke API (what an SQS event source mapping or EventBridge calls)."""
        return self.request("POST", "/2015-03-31/functions/function/invocations", event)

    def output(self) -> str:
        """The emulator's and the function's output so far (for assertion messages)."""
        return "\n".join(self.lines[-60:])

    def report(self, request_id: str) -> str:
        """The REPORT line of `request_id`, once it is written: at the freeze."""
        prefix = f"REPORT RequestId: {request_id}"
        wait_until(lambda: any(line.startswith(prefix) for line in self.lines), prefix)
        return next(line for line in self.lines if line.startswith(prefix))

    def logs(self, request_id: str) -> list[dict]:
        """The shop's JSON log lines that carry `request_id`."""
        entries = []
        for line in list(self.lines):
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("requestId") == request_id:
                    entries.append(entry)
        return entries

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(timeout=10)


def run_worker(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`holdfast tasks worker shop.jobs:queue --burst`: the local worker, until nothing is due."""
    return subprocess.run(
        [str(BIN / "holdfast"), "tasks", "worker", "shop.jobs:queue", "--burst"],
        cwd=SHOP,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jwt(secret: str = SECRET, *, scope: str = "reports", ttl: int = 600, sub: str = "ann") -> str:
    """An HS256 JWT, encoded here independently of the shop's own code."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": sub, "scope": scope, "iat": now, "exp": now + ttl}
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def sqs_event(queue_arn: str, messages: list[tuple[str, str]]) -> dict:
    """An SQS event as Lambda's poller sends it: (message id, body) pairs from one queue."""
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": f"handle-{message_id}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for message_id, body in messages
        ]
    }
