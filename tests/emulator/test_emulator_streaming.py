"""Streamed responses (`--invoke-mode response_stream`), relayed to the client as they come."""

import httpx
import pytest
from emulator_support import mini


def test_stream_is_relayed_chunk_by_chunk(emulators, tmp_path):
    emu = emulators(mini("stream_http"), invoke_mode="response_stream")
    go = tmp_path / "go"
    with (
        httpx.Client(base_url=emu.url, timeout=60) as client,
        client.stream("POST", "/stream", json={"go": str(go)}) as response,
    ):
        assert response.status_code == 207
        assert response.headers["x-streamed"] == "yes"
        assert response.headers["set-cookie"] == "s=1"
        assert response.headers["transfer-encoding"] == "chunked"
        chunks = response.iter_raw()
        received = b""
        while len(received) < len(b"first chunk;"):
            received += next(chunks)
        # The function is still waiting for "go": this chunk came before the rest existed.
        assert received == b"first chunk;"
        go.touch()
        assert b"".join(chunks) == b"second chunk"
    emu.wait_idle(60)
    record = emu.freeze_log[-1]
    assert record.started_at <= record.response_sent_at <= record.frozen_at


def test_stream_error_after_first_byte_cuts_the_body(emulators):
    emu = emulators(mini("stream_fail"), invoke_mode="response_stream")
    with httpx.Client(base_url=emu.url, timeout=60) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/fail")
        result = emu.invoke({})
    assert result.function_error == "Unhandled"
    assert result.json()["errorMessage"] == "failed mid-stream"
    emu.wait_idle(60)
    assert emu.reports[-1].status == "error"


def test_buffered_mode_reads_the_whole_stream(emulators, tmp_path):
    go = tmp_path / "go"
    go.touch()
    emu = emulators(mini("stream_http"))
    response = httpx.post(emu.url + "/stream", json={"go": str(go)}, timeout=60)
    assert response.status_code == 207
    assert response.content == b"first chunk;second chunk"
    assert "transfer-encoding" not in response.headers
