"""Nagios threshold ranges: every form of the plugin guidelines, and the bad ones."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from bot.status.model import Level
from bot.status.ranges import NagiosRange, SizeRange, parse_size
from bot.status.thresholds import SizeThresholds, Thresholds, assess, missing

# (range, values that alert, values that do not) -- the table of the plugin guidelines.
FORMS = [
    ("10", [-1, -0.001, 10.001, 11, 1e9], [0, 5, 10]),
    ("10:", [-5, 0, 9.999], [10, 10.5, 1e12]),
    ("~:10", [10.001, 11, 1e9], [-1e9, -1, 0, 10]),
    ("10:20", [9.99, 20.01, -3], [10, 15, 20]),
    ("@10:20", [10, 15, 20], [9.99, 20.01, -3]),
    ("@10", [0, 5, 10], [-0.5, 10.5]),
    ("@~:10", [-100, 10], [10.5]),
    ("@10:", [10, 1e12], [9]),
    (":10", [-1, 11], [0, 10]),  # monitoring-plugins: a missing start is 0
    ("0", [-1, 0.5, 1], [0]),
    ("-10:-5", [-11, -4, 0], [-10, -7, -5]),
    ("1.5:2.5", [1.49, 2.51], [1.5, 2, 2.5]),
    ("1e3", [1001], [999, 1000]),
    ("~:", [], [-1e300, 0, 1e300]),
    (" 10 ", [11], [10]),
]


@pytest.mark.parametrize(("text", "alert", "quiet"), FORMS)
def test_forms(text: str, alert: list[float], quiet: list[float]) -> None:
    rng = NagiosRange.parse(text)
    for value in alert:
        assert rng.alerts(value), (text, value)
    for value in quiet:
        assert not rng.alerts(value), (text, value)


@pytest.mark.parametrize("text", ["", " ", "@", ":", "@:", "abc", "10x", "x:10", "10:y",
                                  "1:2:3", "20:10", "@20:10", "~", "10:~", "nan", "inf",
                                  "1e999", "--1", "@@10", "10 :20:", "5;6"])
def test_bad_forms(text: str) -> None:
    with pytest.raises(ValueError, match="not a Nagios range"):
        NagiosRange.parse(text)


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(-2e6, 2e6), st.booleans())
def test_inside_is_the_opposite_of_outside(a: float, b: float, value: float,
                                           _: bool) -> None:
    low, high = sorted((a, b))
    outside = NagiosRange.parse(f"{low!r}:{high!r}")
    inside = NagiosRange.parse(f"@{low!r}:{high!r}")
    assert outside.alerts(value) != inside.alerts(value)
    assert outside.alerts(value) == (value < low or value > high)


def test_bounds_and_text_kept() -> None:
    rng = NagiosRange.parse("~:10")
    assert (rng.start, rng.end, rng.inside, str(rng)) == (-math.inf, 10, False, "~:10")
    assert NagiosRange.parse(90).alerts(91) and not NagiosRange.parse(90).alerts(90)
    assert NagiosRange.parse(0.5).alerts(0.6)


@pytest.mark.parametrize(("text", "words"), [("10", "> 10"), ("10:", "< 10"),
                                             ("~:10", "> 10"), ("10:20", "outside 10..20"),
                                             ("@10:20", "inside 10..20"), ("@10:", ">= 10"),
                                             ("@~:3", "<= 3")])
def test_describe(text: str, words: str) -> None:
    assert NagiosRange.parse(text).describe() == words


def test_sizes() -> None:
    assert parse_size("10GB") == 10e9
    assert parse_size("1.5 GiB") == 1.5 * 2**30
    assert parse_size("512") == 512
    assert parse_size("200m") == 200e6
    for bad in ("10 XB", "GB", "", "1,5G", "-"):
        with pytest.raises(ValueError):
            parse_size(bad)
    rng = NagiosRange.parse("2GB:", parse_size)
    assert rng.alerts(1.9e9) and not rng.alerts(2e9)


class _Model(BaseModel):
    plain: NagiosRange | None = None
    size: SizeRange | None = None


def test_in_pydantic_models() -> None:
    model = _Model.model_validate({"plain": 10, "size": "~:500MiB"})
    assert model.plain is not None and model.plain.alerts(11)
    assert model.size is not None and model.size.alerts(500 * 2**20 + 1)
    assert model.model_dump() == {"plain": "10", "size": "~:500MiB"}
    for bad in ({"plain": "20:10"}, {"plain": True}, {"plain": [1]}, {"size": "10XB:"},
                {"plain": "10GB"}):
        with pytest.raises(ValidationError):
            _Model.model_validate(bad)


def test_thresholds_levels() -> None:
    rule = Thresholds(warning="10", critical="20")
    assert [rule.level(v) for v in (5, 10, 15, 20, 25, -1)] == [
        Level.OK, Level.OK, Level.WARNING, Level.WARNING, Level.CRITICAL, Level.CRITICAL]
    assert rule.level(math.nan) is Level.UNKNOWN
    assert rule.reason("x", 25) == "x=25 (critical: > 20)"
    assert rule.reason("x", 5) is None
    only_critical = Thresholds(critical="@0")
    assert only_critical.level(0) is Level.CRITICAL and only_critical.level(1) is Level.OK
    sizes = SizeThresholds(warning="10GB:", critical="2GB:")
    assert sizes.level(5e9) is Level.WARNING and sizes.level(1e9) is Level.CRITICAL


def test_assess_globs_and_missing() -> None:
    rules = {"*.nfail": Thresholds(warning="0", critical="5"), "held": Thresholds(warning="0"),
             "absent": Thresholds(warning="1")}
    values = {"a.nfail": 1.0, "b.nfail": 7.0, "c.nfail": 0.0, "held": 0.0}
    level, reasons = assess(values, rules)
    assert level is Level.CRITICAL
    assert reasons == ["b.nfail=7 (critical: > 5)", "a.nfail=1 (warning: > 0)"]
    assert missing(rules, values) == ["absent"]
    assert assess({}, rules) == (Level.OK, [])
