"""The key layout, the record codec and the URL settings: pure functions, no server."""

from __future__ import annotations

import pytest

from entroq_core.errors import InvalidArgument
from entroq_etcd import config, keys, record
from entroq_etcd.window import TARGET, WindowSizer

LAYOUT = keys.KeyLayout("/p/")


def test_index_keys_parse_back() -> None:
    ready = LAYOUT.ready("a/b", "id-1")
    future = LAYOUT.future("a/b", 1_700_000_000_123, "id-1")
    assert LAYOUT.parse_index(ready) == keys.IndexKey("a/b", "id-1", True, -1)
    assert LAYOUT.parse_index(future) == keys.IndexKey("a/b", "id-1", False, 1_700_000_000_123)
    assert LAYOUT.index("q", 5, "x", now_ms=5) == LAYOUT.ready("q", "x")
    assert LAYOUT.index("q", 6, "x", now_ms=5) == LAYOUT.future("q", 6, "x")


@pytest.mark.parametrize(
    "key",
    [b"/p/r/q", b"/p/r/q\x00zz\x00id", b"/p/f/q\x00123\x00id", b"/p/x/q\x00a\x00b", b"/other"],
)
def test_foreign_index_keys_do_not_parse(key: bytes) -> None:
    assert LAYOUT.parse_index(key) is None


def test_queue_ranges_do_not_overlap_longer_names() -> None:
    start, end = LAYOUT.ready_range("q")
    assert start <= LAYOUT.ready("q", "t") < end
    assert not start <= LAYOUT.ready("q/sub", "t") < end
    assert not start <= LAYOUT.ready("q\x01", "t") < end
    due_start, due_end = LAYOUT.due_range("q", 1000)
    assert due_start <= LAYOUT.future("q", 1000, "t") < due_end
    assert not due_start <= LAYOUT.future("q", 1001, "t") < due_end


def test_stats_keys_put_most_claims_first() -> None:
    many = LAYOUT.stats("q", 7, 10, "a")
    few = LAYOUT.stats("q", 1, 5, "b")
    assert many < few
    assert LAYOUT.parse_stats_claims(many) == 7
    lo, hi = LAYOUT.unclaimed_future_range("q", 100)
    assert lo <= LAYOUT.stats("q", 0, 101, "c") < hi
    assert not lo <= LAYOUT.stats("q", 0, 100, "c") < hi
    assert not lo <= LAYOUT.stats("q", 1, 101, "c") < hi


def test_ready_window_wraps_around_the_hash_space() -> None:
    pieces = LAYOUT.ready_window("q", keys.HASH_SPACE - 10, 20)
    assert len(pieces) == 2
    whole = LAYOUT.ready_window("q", 0, keys.HASH_SPACE)
    assert whole == [LAYOUT.ready_range("q")]
    # The whole queue from a random point: two pieces that cover every key once.
    rotated = LAYOUT.ready_window("q", 12345, keys.HASH_SPACE)
    assert len(rotated) == 2
    for task_id in ("a", "b", "c", "d"):
        key = LAYOUT.ready("q", task_id)
        assert sum(lo <= key < hi for lo, hi in rotated) == 1
    ids = [f"task-{i}" for i in range(2000)]
    inside = 0
    for task_id in ids:
        key = LAYOUT.ready("q", task_id)
        inside += any(lo <= key < hi for lo, hi in pieces)
    # 20 of 2**32 hash positions: essentially nothing falls inside.
    assert inside <= 1


def test_prefix_end() -> None:
    assert keys.prefix_end(b"a/") == b"a0"
    assert keys.prefix_end(b"a\xff") == b"b"
    assert keys.prefix_end(b"\xff") == b"\x00"


def test_record_round_trip_and_junk() -> None:
    rec = record.Record("q/ü", "id", 3, 10, "me", 1, 2, 4, 5, "boom\nagain")
    assert record.decode(record.encode(rec)) == rec
    assert record.decode(b"") is None
    assert record.decode(b"not ours") is None
    assert record.decode(record.encode(rec)[:-1]) is None
    assert record.decode(record.encode(rec) + b"x") is None


def test_window_sizer_narrows_on_big_queues_and_widens_when_empty() -> None:
    sizer = WindowSizer()
    _, width = sizer.window("q")
    sizer.observe("q", width, 100 * TARGET)  # the window held far too many
    _, narrower = sizer.window("q")
    assert narrower < width
    sizer.observe("q", keys.HASH_SPACE, 0)  # a full read found nothing
    assert sizer.window("q")[1] == keys.HASH_SPACE


def test_url_with_endpoints_credentials_prefix_and_options() -> None:
    cfg = config.parse(
        "etcd://u:p%40ss@127.0.0.1:1,localhost:2/app/q/?call_timeout=2.5&tls=false", {}
    )
    assert cfg.endpoints == ("127.0.0.1:1", "localhost:2")
    assert (cfg.user, cfg.password, cfg.prefix) == ("u", "p@ss", "/app/q/")
    assert cfg.call_timeout == 2.5 and not cfg.tls
    assert config.parse("etcd://h:1", {"prefix": "/x/"}).prefix == "/x/"
    assert config.parse("etcd://h:1", {}).prefix == keys.DEFAULT_PREFIX
    assert config.parse("etcd://h:1", {"ca_file": "/ca.pem"}).tls


def test_no_endpoint_means_etcds_default_client_address() -> None:
    assert config.parse("etcd://", {}).endpoints == ("127.0.0.1:2379",)
    cfg = config.parse("etcd://u:p@/app/", {})
    assert cfg.endpoints == ("127.0.0.1:2379",)
    assert (cfg.user, cfg.prefix) == ("u", "/app/")


@pytest.mark.parametrize(
    ("url", "options", "field"),
    [
        ("etcd://host", {}, "url"),
        ("etcd://,", {}, "url"),
        ("etcd://host:0", {}, "url"),
        ("etcd://host:99999", {}, "url"),
        ("pg://host:1", {}, "url"),
        ("etcd://h:1?bogus=1", {}, "url"),
        ("etcd://h:1", {"bogus": 1}, "bogus"),
        ("etcd://h:1", {"call_timeout": 0}, "call_timeout"),
        ("etcd://h:1", {"call_timeout": "soon"}, "call_timeout"),
        ("etcd://h:1", {"call_timeout": "inf"}, "call_timeout"),
        ("etcd://h:1", {"call_timeout": "nan"}, "call_timeout"),
        ("etcd://h:1", {"max_request_bytes": -1}, "max_request_bytes"),
        ("etcd://h:1", {"tls": "maybe"}, "tls"),
        ("etcd://h:1", {"prefix": ""}, "prefix"),
        ("etcd://h:1", {"password": "x"}, "user"),
        ("etcd://h:1", {"cert_file": "/c.pem"}, "cert_file"),
    ],
)
def test_bad_urls_and_options_name_the_field(
    url: str, options: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        config.parse(url, options)
    assert info.value.field == field
