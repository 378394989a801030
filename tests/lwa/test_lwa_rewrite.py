"""Authorization source and base-path removal (lwa-compat.md §5.2, §5.4), as pure functions."""

from __future__ import annotations

import logging

import pytest

from holdfast.rewrite import move_authorization, strip_base_path


def test_authorization_source_moves_the_header():
    headers = [(b"x-custom-auth", b"Bearer t"), (b"authorization", b"AWS4 sig"), (b"a", b"1")]
    assert move_authorization(headers, b"x-custom-auth") == [
        (b"a", b"1"),
        (b"authorization", b"Bearer t"),
    ]


def test_missing_authorization_source_leaves_headers_and_warns(caplog):
    headers = [(b"a", b"1")]
    with caplog.at_level(logging.WARNING, "holdfast"):
        assert move_authorization(headers, b"x-custom-auth") == [(b"a", b"1")]
    assert "x-custom-auth" in caplog.text


@pytest.mark.parametrize(
    ("path", "base", "expected"),
    [
        ("/prod/api/data", "/prod", "/api/data"),
        ("/other/path", "/prod", "/other/path"),
        ("/prod", "/prod", "/"),
        ("/prod/", "/prod", "/"),
        ("/api/api/order", "/api", "/api/order"),
        ("/apiorder", "/api", "/apiorder"),
        ("/productx", "/prod", "/productx"),
        ("/x", "", "/x"),
    ],
)
def test_base_path_is_removed_once_on_a_segment_boundary(path, base, expected):
    assert strip_base_path(path, base) == expected
