"""What compile says a reload would do, from the revisions of the previous manifest and the new one."""

from sglangc.report import reload_summary


def test_nothing_to_compare_with_says_nothing():
    assert reload_summary(None, {"a": "1"}, "run.sh") is None


def test_every_kind_of_change_is_named():
    said = reload_summary({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "9", "d": "4"}, "run.sh")
    assert said == "run.sh reload would start d (new), restart b (changed), stop c (removed), leave a untouched"


def test_no_change_is_said_too():
    assert reload_summary({"a": "1"}, {"a": "1"}, "run.sh") == "run.sh reload would change nothing"
