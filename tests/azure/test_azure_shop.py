"""examples/shop's Azure form: function_app.py indexed and served as the worker does it (stand-in,
see worker_standin.py), its report jobs on Azure Queue Storage (Azurite), host.json and
local.settings.json.example checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SHOP = HERE.parents[1] / "examples" / "shop"
sys.path.insert(0, str(HERE.parent / "examples"))

from shop_support import jwt  # noqa: E402


def test_the_shop_runs_on_azure(storage, tmp_path):
    from holdfast.tasks.azure import AzureBackend

    AzureBackend(
        storage.queue_name, storage.table, queue="shop", connection_string=storage.connection
    ).create()
    env = {
        "PATH": "/usr/bin:/bin",
        "AzureWebJobsStorage": storage.connection,
        "SHOP_QUEUE_URL": storage.url(),
        "SHOP_JWT_SECRET": "test-secret-0123456789",
        "SHOP_DATA_DIR": str(tmp_path),
        "SHOP_MAIL_DELAY": "0.2",
        "SHOP_TEST_TOKEN": jwt("test-secret-0123456789"),
    }
    done = subprocess.run(
        [sys.executable, str(HERE / "shop_on_azure.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["functions"] == {
        "http_app_func": ["httpTrigger", "http"],
        "holdfast_tasks_shop": ["queueTrigger"],
        "holdfast_schedule_shop": ["timerTrigger"],
    }
    assert found["signup"] == 201
    # The audit record and the welcome mail were done before the invocation ended.
    assert found["at_end"] == {"audit": True, "mails": 1}
    assert found["report"] == 202
    assert found["status"]["state"] == "succeeded"
    assert found["status"]["result"]["month"] == "2026-11"
    assert found["checkout"] == [503, "HTTPError.503"]


def test_host_json_and_local_settings_are_what_the_runtime_reads():
    host = json.loads((SHOP / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensions"]["http"]["routePrefix"] == "api"
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"  # what holdfast sends
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    local = json.loads((SHOP / "local.settings.json.example").read_text())["Values"]
    assert local["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert local["SHOP_QUEUE_URL"].startswith("azure://")
    requirements = (SHOP / "requirements-azure.txt").read_text()
    for package in (
        "azure-functions",
        "azurefunctions-extensions-http-fastapi",
        "azure-storage-queue",
        "azure-data-tables",
    ):
        assert f"\n{package}>=" in requirements


@pytest.mark.parametrize("timeout", ["00:05:00"])
def test_the_drain_deadline_matches_host_json(timeout):
    from holdfast.azure.app import DEFAULT_FUNCTION_TIMEOUT

    hours, minutes, seconds = (int(p) for p in timeout.split(":"))
    host = json.loads((SHOP / "host.json").read_text())
    assert host["functionTimeout"] == timeout
    assert hours * 3600 + minutes * 60 + seconds == DEFAULT_FUNCTION_TIMEOUT
