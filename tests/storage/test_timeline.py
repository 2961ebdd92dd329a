"""The dashboard's traffic timeline: slots that fit the history, busiest buckets first, the
quiet ones folded into "other", a learned bucket's label passed through."""

from __future__ import annotations

from bandit_router.core.spend import HOUR_S
from bandit_router.storage.timeline import MINUTE_S, Count, slot_for, timeline_json

NOW = 1_800_000_000.0 // 86400 * 86400 + 12 * HOUR_S


def test_the_slot_grows_with_the_history():
    assert slot_for(10 * 60) == 60
    assert slot_for(5 * HOUR_S) == 300
    assert slot_for(2 * 86400) == HOUR_S
    assert slot_for(7 * 86400) == 3 * HOUR_S
    assert slot_for(30 * 86400) == 86400
    assert slot_for(400 * 86400) == 86400  # never coarser than a day


def test_minutes_for_a_short_history_and_never_finer_than_the_counts():
    counts = [Count(NOW - 300 + 60 * i, "default", "chat:low", "a", i + 1) for i in range(5)]
    tl = timeline_json(counts, NOW, grain=MINUTE_S)
    assert (tl["unit"], tl["slots"]) == ("minute", 6)
    assert tl["buckets"][0]["models"]["a"] == [1, 2, 3, 4, 5, 0]
    hourly = timeline_json(counts, NOW, grain=HOUR_S)  # hourly rows: an hour at least
    assert hourly["slot_s"] == HOUR_S and sum(hourly["buckets"][0]["models"]["a"]) == 15


def test_buckets_come_busiest_first_and_the_quiet_ones_are_folded():
    counts = [Count(NOW - HOUR_S, "default", f"b{i}", "m", 100 - i) for i in range(9)]
    counts.append(Count(NOW - HOUR_S, "default", "b8", "n", 1))
    tl = timeline_json(counts, NOW, labels={("default", "b0"): "greetings"})
    keys = [b["key"] for b in tl["buckets"]]
    assert keys == ["b0", "b1", "b2", "b3", "b4", "b5", "other"]
    assert tl["buckets"][0]["label"] == "greetings" and tl["buckets"][1]["label"] is None
    other = tl["buckets"][-1]
    assert other["folded"] == ["b6", "b7", "b8"] and other["decisions"] == 94 + 93 + 92 + 1
    assert sum(other["models"]["n"]) == 1
    # one bucket past the top is shown by name, not folded alone into "other"
    seven = timeline_json(counts[:7], NOW)
    assert [b["key"] for b in seven["buckets"]][-1] == "b6"


def test_two_policies_name_their_buckets_with_the_policy():
    counts = [Count(NOW - HOUR_S, "default", "chat:low", "m", 3),
              Count(NOW - HOUR_S, "cheap", "chat:low", "m", 2)]
    assert [b["key"] for b in timeline_json(counts, NOW)["buckets"]] == [
        "default · chat:low", "cheap · chat:low"]


def test_no_history_is_an_empty_timeline():
    assert timeline_json([], NOW)["buckets"] == []
