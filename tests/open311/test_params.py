"""Open311 parameter reading, without a server: W3C dates, the 90-day window, names, media_url."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cityweave.api.open311 import params
from cityweave.api.open311.params import Open311Error

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def test_w3c_dates_need_a_zone_and_dates_are_local_midnight():
    assert params.w3_datetime("d", "2010-01-01T08:00:00+08:00", SHANGHAI) == datetime(2010, 1, 1, tzinfo=UTC)
    assert params.w3_datetime("d", "2010-01-01T00:00:00Z", SHANGHAI) == datetime(2010, 1, 1, tzinfo=UTC)
    assert params.w3_datetime("d", "2010-01-01", SHANGHAI) == datetime(2009, 12, 31, 16, tzinfo=UTC)
    assert params.w3_datetime("d", "", SHANGHAI) is None  # empty is the same as absent
    for bad in ("2010-01-01T00:00:00", "yesterday", "2010-13-01", "2010-01-01T25:00Z"):
        with pytest.raises(Open311Error) as caught:
            params.w3_datetime("start_date", bad, SHANGHAI)
        assert caught.value.status == 400 and "start_date" in caught.value.description


def test_the_window_defaults_to_90_days_and_never_spans_more():
    assert params.window(None, None, NOW) == (NOW - timedelta(days=90), NOW)
    start = NOW - timedelta(days=10)
    assert params.window(start, None, NOW) == (start, NOW)
    old = NOW - timedelta(days=200)
    assert params.window(old, None, NOW) == (old, old + timedelta(days=90))
    assert params.window(None, old, NOW) == (old - timedelta(days=90), old)
    with pytest.raises(Open311Error, match="90 days"):
        params.window(old, NOW, NOW)
    with pytest.raises(Open311Error, match="before"):
        params.window(NOW, old, NOW)


def test_names_lists_paging_and_media():
    assert params.full_name("秀英", "王") == "王秀英"
    assert params.full_name("John", "Smith") == "John Smith"
    assert params.full_name(None, None) is None
    assert params.comma_list("status", "open, closed,") == ["open", "closed"]
    with pytest.raises(Open311Error):
        params.comma_list("service_code", "a,b c")
    assert params.paging({}) == params.Paging(1, 1000)
    assert params.paging({"page": "3", "page_size": "20"}).offset == 40
    text = params.join_media("漏水", "https://img.example.cn/1.jpg")
    assert params.split_media(text) == ("漏水", "https://img.example.cn/1.jpg")
    assert params.split_media("说明\n\nmedia_url: 不是网址") == ("说明\n\nmedia_url: 不是网址", None)
    assert params.language({"locale": "en-US"}, "zh-CN") == "en"
    assert params.language({}, "en;q=0.9") == "en"
    assert params.language({}, None) == "zh-CN"
