"""The example shop under `holdfast emulate`, with the SQLite task queue and a local worker,
hosted both ways the SAM template deploys it (managed runtime, `holdfast run`)."""

from __future__ import annotations

import email
import http.server
import json
import threading

import pytest
from shop_support import HOSTS, ShopFunction, bearer, jwt, run_worker, shop_env, sqs_event


@pytest.fixture(scope="module", params=sorted(HOSTS))
def shop(request, tmp_path_factory):
    host = request.param
    tmp_path = tmp_path_factory.mktemp(host)
    env = shop_env(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}")
    # A Function URL with RESPONSE_STREAM for the custom runtime; the managed Python runtime
    # cannot stream, so its Function URL is BUFFERED (as in template.yaml).
    mode = "response_stream" if host == "holdfast-run" else "buffered"
    function = ShopFunction(HOSTS[host], env, "--invoke-mode", mode)
    function.host, function.env, function.data = host, env, tmp_path
    yield function
    function.close()


def outbox(data, to: str) -> list:
    mails = [email.message_from_bytes(p.read_bytes()) for p in (data / "outbox").iterdir()]
    return [mail for mail in mails if mail["To"] == to]


def test_signup_answers_then_audits_mails_and_flushes_spans_before_the_freeze(shop):
    answer = shop.request("POST", "/signup", {"email": "ann@example.com", "name": "Ann"})
    assert answer.status == 201
    user_id = answer.json()["id"]
    request_id = answer.headers["x-amzn-RequestId"]

    # REPORT is written at the freeze: nothing in the environment runs after it until the next
    # event, and no other event is sent. What is on disk now was done before the freeze.
    report = shop.report(request_id)
    assert "Post-Response Duration" in report

    audit = [json.loads(line) for line in (shop.data / "audit.jsonl").read_text().splitlines()]
    [record] = [entry for entry in audit if entry["user_id"] == user_id]
    assert (record["action"], record["request_id"]) == ("user.signup", request_id)

    [mail] = outbox(shop.data, "ann@example.com")
    assert mail["Subject"] == "Welcome to the shop"

    spans = [json.loads(line) for line in (shop.data / "spans.jsonl").read_text().splitlines()]
    [span] = [s for s in spans if s["attributes"]["faas.invocation_id"] == request_id]
    assert span["name"] == "POST /signup"
    assert span["attributes"]["http.response.status_code"] == 201

    # Structured logs: every line of the request, the background work's too, has its id.
    messages = [entry["message"] for entry in shop.logs(request_id)]
    assert messages == ["signed up", "audit record written", "mail sent"]


def test_a_report_job_is_queued_and_its_status_needs_a_token(shop):
    assert shop.request("POST", "/reports?month=2026-11").status == 401
    accepted = shop.request("POST", "/reports?month=2026-11", headers=bearer(jwt()))
    assert accepted.status == 202
    location = accepted.headers["location"]
    assert location.startswith(shop.url + "/tasks/")
    status_path = location.removeprefix(shop.url)

    assert shop.request("GET", status_path).status == 401
    assert (
        shop.request("GET", status_path, headers=bearer(jwt("not-the-secret-0000"))).status == 401
    )
    assert shop.request("GET", status_path, headers=bearer(jwt(ttl=-60))).status == 401
    assert shop.request("GET", status_path, headers=bearer(jwt(scope="orders"))).status == 403
    queued = shop.request("GET", status_path, headers=bearer(jwt()))
    assert queued.status == 200 and queued.json()["state"] == "queued"

    # The schedule: EventBridge's constant input names the periodic task (template.yaml).
    scheduled = shop.invoke({"holdfast": {"periodic": "shop.daily_digest"}})
    assert scheduled.status == 200, scheduled.body

    worker = run_worker(shop.env)
    assert worker.returncode == 0, worker.stderr

    done = shop.request("GET", status_path, headers=bearer(jwt())).json()
    assert done["state"] == "succeeded"
    assert done["result"]["month"] == "2026-11"
    [digest] = outbox(shop.data, "ops@example.com")
    assert digest["Subject"] == "Daily digest"


def test_order_events_are_server_sent_events(shop):
    answer = shop.request("GET", "/orders/o-7/events")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [block for block in answer.body.decode().split("\n\n") if block]
    states = [json.loads(block.split("data: ", 1)[1])["state"] for block in events]
    assert states == ["placed", "paid", "packed", "shipped"]
    if shop.host == "holdfast-run":
        # Streamed through the Function URL as the app produced it, not buffered.
        assert answer.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in answer.headers


def test_checkout_while_payments_are_down_is_a_lambda_failure(shop):
    answer = shop.request("POST", "/checkout", {"order_id": "o-7", "amount_cents": 1250})
    # A function error: the Function URL answers 502, and Lambda counts a failed invocation.
    assert answer.status == 502
    request_id = answer.headers["x-amzn-RequestId"]
    report = shop.report(request_id)
    assert "Status: error" in report
    if shop.host == "holdfast-run":
        assert "Error Type: Function.HTTPError" in report
    # (awslambdaric sends the error type "HTTPError.503" as it is; Lambda files that header
    # under Runtime.Unknown, the payload keeps it.)
    [entry] = shop.logs(request_id)
    assert (entry["level"], entry["message"]) == ("ERROR", "payment provider not configured")


def test_bad_input_gets_a_clear_answer(shop):
    answer = shop.request("POST", "/signup", {"email": "not-an-address", "name": "Ann"})
    assert answer.status == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "email"]
    assert shop.request("POST", "/reports?month=2026-13", headers=bearer(jwt())).status == 422


def test_stock_updates_from_sqs_report_only_the_bad_message(shop):
    stock_queue = "arn:aws:sqs:us-east-1:123456789012:stock"
    event = sqs_event(stock_queue, [("m-1", '{"sku": "tea", "quantity": 12}'), ("m-2", "{bad")])
    answer = shop.invoke(event)
    assert answer.status == 200 and "X-Amz-Function-Error" not in answer.headers
    assert answer.json() == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    audit = [json.loads(line) for line in (shop.data / "audit.jsonl").read_text().splitlines()]
    [record] = [entry for entry in audit if entry["action"] == "stock.update"]
    assert (record["sku"], record["quantity"]) == ("tea", 12)
    assert record["request_id"] == answer.headers["X-Amzn-RequestId"]


def test_snapstart_on_the_managed_runtime_restores_and_still_drains_before_the_freeze(tmp_path):
    """template.yaml's zip variant: SnapStart on published versions. The emulator snapshots
    after init (imports, lifespan, holdfast's extension registered) and restores on the first
    invocation; after-response work still ends before the freeze."""
    env = shop_env(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}")
    function = ShopFunction(HOSTS["awslambdaric"], env, "--snap-start")
    try:
        answer = function.request("POST", "/signup", {"email": "di@example.com", "name": "Di"})
        assert answer.status == 201
        report = function.report(answer.headers["x-amzn-RequestId"])
        assert "Restore Duration" in report and "Post-Response Duration" in report
        [mail] = outbox(tmp_path, "di@example.com")
        assert mail["Subject"] == "Welcome to the shop"
    finally:
        function.close()


def test_checkout_charges_through_the_payment_provider_when_it_is_up(tmp_path):
    """The happy path of /checkout: the order goes to SHOP_PAYMENTS_URL (a local server here)."""
    charged: list[dict] = []

    class Provider(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            charged.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = json.dumps({"status": "captured"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    provider = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{provider.server_address[1]}/charges"
    env = shop_env(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}", SHOP_PAYMENTS_URL=url)
    function = ShopFunction(HOSTS["holdfast-run"], env)
    try:
        answer = function.request("POST", "/checkout", {"order_id": "o-9", "amount_cents": 990})
        assert answer.status == 200, function.output()
        assert answer.json() == {"order": "o-9", "payment": {"status": "captured"}}
        assert charged == [{"order_id": "o-9", "amount_cents": 990}]
    finally:
        function.close()
        provider.shutdown()
