"""Plugin output and performance data, from the Nagios plugin API's own examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.status.model import PerfDatum
from bot.status.perfdata import format_datum, parse_perfdata, split_output

# The plugin guidelines' multi-line example.
GUIDE = """DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968
/ 15272 MB (77%);
/boot 68 MB (69%);
/home 69357 MB (27%);
/var/log 819 MB (84%); | /boot=68MB;88;93;0;98
/home=69357MB;253404;253409;0;253414
/var/log=818MB;970;975;0;980"""


def test_guidelines_example() -> None:
    summary, long_output, data = split_output(GUIDE)
    assert summary == "DISK OK - free space: / 3326 MB (56%);"
    assert long_output.splitlines() == ["/ 15272 MB (77%);", "/boot 68 MB (69%);",
                                        "/home 69357 MB (27%);", "/var/log 819 MB (84%);"]
    assert [d.label for d in data] == ["/", "/boot", "/home", "/var/log"]
    assert data[0] == PerfDatum("/", 2643, "MB", "5948", "5958", 0, 5968)
    assert data[3] == PerfDatum("/var/log", 818, "MB", "970", "975", 0, 980)


@pytest.mark.parametrize("uom", ["s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c", ""])
def test_units(uom: str) -> None:
    (datum,) = parse_perfdata(f"x=1.5{uom};1;2;0;10")
    assert (datum.value, datum.uom, datum.warn, datum.crit, datum.min, datum.max) == (
        1.5, uom, "1", "2", 0, 10)


@pytest.mark.parametrize("rng", ["10", "10:", "~:5", "10:20", "@10:20", "@~:3", "-1:1.5"])
def test_ranges_kept_as_written(rng: str) -> None:
    (datum,) = parse_perfdata(f"load={3};{rng};{rng}")
    assert datum.warn == rng and datum.crit == rng


def test_quoted_labels_unknown_and_optional_fields() -> None:
    data = parse_perfdata("'my label'=5ms;;;; 'it''s'=U 'a=b'=1c "
                          "bare=-3.25e2 only=7;;9")
    assert [(d.label, d.value, d.uom) for d in data] == [
        ("my label", 5, "ms"), ("it's", None, ""), ("a=b", 1, "c"), ("bare", -325, ""),
        ("only", 7, "")]
    assert data[0].warn is None and data[0].min is None
    assert data[-1].crit == "9" and data[-1].warn is None


def test_junk_items_skipped_others_kept() -> None:
    data = parse_perfdata("good=1 =2 bad=x nolabel 'open=3 ")
    assert [d.label for d in data] == ["good"]
    data = parse_perfdata("a=1;2;3;4;5;6 b=2;x;y c=3;;;z;")
    assert [(d.label, d.warn, d.crit, d.min) for d in data] == [("b", None, None, None),
                                                                  ("c", None, None, None)]


def test_no_perfdata_and_pipes_in_long_output() -> None:
    assert split_output("PING OK") == ("PING OK", "", [])
    assert split_output("") == ("", "", [])
    summary, long_output, data = split_output("A | x=1\nline\n | y=2\nz=3 'w w'=4")
    assert (summary, long_output) == ("A", "line")
    assert [d.label for d in data] == ["x", "y", "z", "w w"]
    summary, long_output, data = split_output("A\r\nl1\r\nl2")
    assert (summary, long_output, data) == ("A", "l1\nl2", [])


_labels = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                  max_size=12).filter(lambda s: s.strip() == s and s != "")


@given(_labels, st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False)),
       st.sampled_from(["", "s", "%", "MB", "c"]),
       st.one_of(st.none(), st.sampled_from(["10", "~:5", "@1:2", "3:"])))
def test_round_trip(label: str, value: float | None, uom: str, rng: str | None) -> None:
    datum = PerfDatum(label, value, uom, rng, rng, 0.0, None)
    assert parse_perfdata(format_datum(datum) + " other=1") == [
        datum, PerfDatum("other", 1.0)]
