"""holdfast.config: LWA's variable names, aliases, precedence and parsing (lwa-compat.md §2)."""

from __future__ import annotations

import logging

import pytest

from holdfast import config


@pytest.fixture(autouse=True)
def _fresh_warnings():
    config._warned.clear()


def test_holdfast_name_wins_over_lwa_name_wins_over_legacy():
    env = {"HOLDFAST_PORT": "1", "AWS_LWA_PORT": "2", "PORT": "3"}
    assert config.setting("PORT", env) == "1"
    del env["HOLDFAST_PORT"]
    assert config.setting("PORT", env) == "2"
    del env["AWS_LWA_PORT"]
    assert config.setting("PORT", env) == "3"


def test_namespaced_env_overrides_deprecated(caplog):
    env = {"AWS_LWA_READINESS_CHECK_PATH": "/new", "READINESS_CHECK_PATH": "/old"}
    assert config.proxy_settings(environ=env).readiness_path == "/new"
    assert "deprecated" not in caplog.text


def test_deprecated_env_var_fallback_warns(caplog):
    with caplog.at_level(logging.WARNING, "holdfast"):
        assert config.proxy_settings(environ={"HOST": "localhost"}).host == "localhost"
    assert "HOST is deprecated" in caplog.text


def test_legacy_port_is_not_deprecated(caplog):
    with caplog.at_level(logging.WARNING, "holdfast"):
        assert config.proxy_settings(environ={"PORT": "3000"}).port == 3000
    assert "deprecated" not in caplog.text


def test_empty_value_counts_as_unset():
    env = {"HOLDFAST_BASE_PATH": "", "AWS_LWA_REMOVE_BASE_PATH": "/api/"}
    assert config.base_path(environ=env) == "/api"
    assert config.base_path(environ={"REMOVE_BASE_PATH": "/v1"}) == "/v1"


def test_upstream_defaults():
    upstream = config.proxy_settings(environ={})
    assert (upstream.host, upstream.port, upstream.readiness_port) == ("127.0.0.1", 8080, 8080)
    assert upstream.readiness_path == "/"
    assert upstream.readiness_protocol == "http"
    assert upstream.healthy_status == frozenset(range(100, 500))
    assert upstream.readiness_timeout is None
    assert upstream.async_init is False
    assert upstream.pool_idle_timeout == 4.0


def test_readiness_check_port_falls_back_to_the_resolved_port():
    assert config.proxy_settings(environ={"PORT": "3000"}).readiness_port == 3000
    assert config.proxy_settings(environ={"AWS_LWA_PORT": "3001"}).readiness_port == 3001
    env = {"AWS_LWA_PORT": "3001", "AWS_LWA_READINESS_CHECK_PORT": "9999"}
    assert config.proxy_settings(environ=env).readiness_port == 9999
    assert config.proxy_settings(7000, environ=env).port == 7000


@pytest.mark.parametrize("host", ["bad host", "a/b", "x@y"])
def test_invalid_host_fails(host):
    with pytest.raises(ValueError, match="not a valid host"):
        config.proxy_settings(environ={"AWS_LWA_HOST": host})


@pytest.mark.parametrize("port", ["abc", "0", "70000", "80 80", "²"])
def test_invalid_port_fails(port):
    with pytest.raises(ValueError, match="not a TCP port"):
        config.proxy_settings(environ={"AWS_LWA_PORT": port})


@pytest.mark.parametrize(
    ("spec", "codes", "warns"),
    [
        ("500, 502-504, 422", {500, 502, 503, 504, 422}, False),
        ("200", {200}, False),
        (" 200 - 204 ", {200, 201, 202, 203, 204}, False),
        ("500,invalid,502", {500, 502}, True),
        ("500-invalid", set(), True),
        ("200-300-400", set(), True),
        ("invalid", set(), True),
        ("99,700,404", {404}, True),
    ],
)
def test_status_list_parsing(spec, codes, warns, caplog):
    with caplog.at_level(logging.WARNING, "holdfast"):
        assert config.status_code_list(spec, "X") == frozenset(codes)
    assert ("ignoring invalid" in caplog.text) is warns


def test_healthy_status_from_environment():
    env = {"AWS_LWA_READINESS_CHECK_HEALTHY_STATUS": "200-399"}
    healthy = config.proxy_settings(environ=env).healthy_status
    assert 200 in healthy and 399 in healthy and 403 not in healthy


def test_min_unhealthy_status_of_lwa_0x_still_means_below(caplog):
    env = {"AWS_LWA_READINESS_CHECK_MIN_UNHEALTHY_STATUS": "400"}
    with caplog.at_level(logging.WARNING, "holdfast"):
        healthy = config.proxy_settings(environ=env).healthy_status
    assert healthy == frozenset(range(100, 400))
    assert "100-399" in caplog.text
    env["AWS_LWA_READINESS_CHECK_HEALTHY_STATUS"] = "200"
    assert config.proxy_settings(environ=env).healthy_status == frozenset({200})


@pytest.mark.parametrize(
    ("value", "protocol"),
    [("http", "http"), ("TCP", "tcp"), ("Tcp", "tcp"), ("HTTP", "http"), ("udp", "http")],
)
def test_readiness_protocol_parsing(value, protocol):
    env = {"AWS_LWA_READINESS_CHECK_PROTOCOL": value}
    assert config.proxy_settings(environ=env).readiness_protocol == protocol


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("buffered", "buffered"),
        ("BUFFERED", "buffered"),
        ("response_stream", "response_stream"),
        ("Response_Stream", "response_stream"),
        ("streaming", "buffered"),
        (None, "buffered"),
    ],
)
def test_invoke_mode_parsing(value, mode):
    env = {} if value is None else {"AWS_LWA_INVOKE_MODE": value}
    assert config.invoke_mode(environ=env) == mode


@pytest.mark.parametrize(
    ("value", "expected", "warns"),
    [("true", True, False), ("false", False, False), ("TRUE", False, True), ("1", False, True)],
)
def test_flags_parse_strictly(value, expected, warns, caplog):
    with caplog.at_level(logging.WARNING, "holdfast"):
        assert config.flag("ASYNC_INIT", environ={"AWS_LWA_ASYNC_INIT": value}) is expected
    assert ("AWS_LWA_ASYNC_INIT" in caplog.text) is warns


def test_compression_is_off_under_streaming(caplog):
    env = {"AWS_LWA_ENABLE_COMPRESSION": "true"}
    assert config.compression(streaming=False, environ=env) is True
    with caplog.at_level(logging.WARNING, "holdfast"):
        assert config.compression(streaming=True, environ=env) is False
    assert "response streaming" in caplog.text
    assert config.compression(streaming=False, environ={}) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.5", 0.5),
        ("0", 0.0),
        (" 10 ", 10.0),
        ("30s", 4.0),
        ("-1", 4.0),
        ("NaN", 4.0),
        ("inf", 4.0),
        ("1e400", 4.0),
    ],
)
def test_pool_idle_timeout_parsing(value, expected):
    env = {"AWS_LWA_POOL_IDLE_TIMEOUT_SECONDS": value}
    assert config.pool_idle_timeout(env) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2.5", 2.5),
        (" 3 ", 3.0),
        ("0", None),
        ("-1", None),
        ("NaN", None),
        ("10s", None),
        ("abc", None),
        ("1e400", None),
    ],
)
def test_readiness_timeout_parsing(value, expected, caplog):
    env = {"AWS_LWA_READINESS_CHECK_TIMEOUT_SECONDS": value}
    with caplog.at_level(logging.WARNING, "holdfast"):
        assert config.proxy_settings(environ=env).readiness_timeout == expected
    assert ("not a usable duration" in caplog.text) is (expected is None)


def test_error_status_codes_from_the_environment_are_lenient(caplog):
    env = {"AWS_LWA_ERROR_STATUS_CODES": "500,abc,502-504"}
    with caplog.at_level(logging.WARNING, "holdfast"):
        assert config.error_status_codes(environ=env) == frozenset({500, 502, 503, 504})
    assert "AWS_LWA_ERROR_STATUS_CODES: ignoring invalid status item 'abc'" in caplog.text


def test_error_status_codes_in_code_are_strict():
    with pytest.raises(ValueError, match="invalid error status code 'abc'"):
        config.error_status_codes("500,abc")
    assert config.error_status_codes([502]) == frozenset({502})


def test_authorization_source_and_pass_through_path():
    assert config.authorization_source(environ={}) is None
    env = {"AWS_LWA_AUTHORIZATION_SOURCE": "X-Custom-Auth"}
    assert config.authorization_source(environ=env) == "x-custom-auth"
    assert config.pass_through_path(environ={}) == "/events"
    assert config.pass_through_path(environ={"AWS_LWA_PASS_THROUGH_PATH": "sqs"}) == "/sqs"


def test_runtime_api_proxy_replaces_the_runtime_api():
    env = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}
    assert config.runtime_api(env) == "127.0.0.1:9001"
    env["AWS_LWA_LAMBDA_RUNTIME_API_PROXY"] = "127.0.0.1:9009"
    assert config.runtime_api(env) == "127.0.0.1:9009"


def test_warnings_are_given_once(caplog):
    env = {"AWS_LWA_INVOKE_MODE": "nonsense"}
    with caplog.at_level(logging.WARNING, "holdfast"):
        config.invoke_mode(environ=env)
        config.invoke_mode(environ=env)
    # Said once, naming the variable it came from.
    assert caplog.text.count("AWS_LWA_INVOKE_MODE='nonsense' is not buffered") == 1


def test_the_runtime_marker_is_not_the_app_host():
    env = {"HOLDFAST_HOST": "runtime", "HOLDFAST_APP_HOST": "localhost"}
    assert config.proxy_settings(environ=env).host == "localhost"
    assert config.proxy_settings(environ={"HOLDFAST_HOST": "runtime"}).host == "127.0.0.1"
