"""berth.units against docker's own numbers.

Sources of the expected values:
  * "docker 28.2.2": the real docker CLI (28.2.2, Go 1.24.3) talking to a
    stand-in Engine API on a unix socket: `docker images` for sizes, and the
    JSON it posted for `docker create -m VALUE` / `--health-interval VALUE`,
    and the since= parameter of `docker events --since VALUE`.
  * "go-units tests": the test tables in github.com/docker/go-units.
  * "Go docs": examples from Go's time package documentation.
"""

import os
import time
from datetime import datetime, timedelta, timezone

import pytest

from berth import units
from berth.errors import InvalidArgument


# docker 28.2.2: the SIZE column of `docker images` for images of these sizes.
@pytest.mark.parametrize("size,expected", [
    (0, "0B"), (1, "1B"), (999, "999B"), (1000, "1kB"), (1023, "1.02kB"), (1024, "1.02kB"),
    (999499, "999kB"), (999500, "1e+03kB"), (999999, "1e+03kB"), (1000000, "1MB"), (2150000, "2.15MB"),
    (2155000, "2.15MB"), (1234567890, "1.23GB"), (7800000, "7.8MB"), (12345678, "12.3MB"),
    (123456789, "123MB"), (5000000000000, "5TB"), (9000000000000000000, "9EB"),
])
def test_human_size_like_docker_images(size, expected):
    assert units.human_size(size) == expected


# go-units tests: HumanSize (precision 4) and BytesSize.
@pytest.mark.parametrize("size,expected", [
    (1000, "1kB"), (1024, "1.024kB"), (1000000, "1MB"), (1048576, "1.049MB"), (2 * 1000**2, "2MB"),
    (3.42 * 1000**3, "3.42GB"), (5.372 * 1000**4, "5.372TB"), (2.22 * 1000**5, "2.22PB"),
    (10000000000000 * 1000**5, "1e+04YB"),
])
def test_human_size_precision_4(size, expected):
    assert units.human_size(size, 4) == expected


@pytest.mark.parametrize("size,expected", [
    (1024, "1KiB"), (1024 * 1024, "1MiB"), (2 * 1024**2, "2MiB"), (3.42 * 1024**3, "3.42GiB"),
    (5.372 * 1024**4, "5.372TiB"), (2.22 * 1024**5, "2.22PiB"), (1024**5 * 1024**5, "1.049e+06YiB"),
    (2097152000, "1.953GiB"),
])
def test_bytes_size(size, expected):
    assert units.bytes_size(size) == expected


# docker 28.2.2: HostConfig.Memory posted for `docker create -m VALUE`, or the error after
# 'invalid argument "VALUE" for "-m, --memory" flag: '.
@pytest.mark.parametrize("text,expected", [
    ("32m", 33554432), ("32", 32), ("32b", 32), ("32B", 32), ("32k", 32768), ("32K", 32768), ("32kb", 32768),
    ("32Kib", 32768), ("32KIB", 32768), ("32Mb", 33554432), ("1g", 1073741824), ("1.5g", 1610612736),
    ("0.3MB", 314572), ("32.3", 32), ("32.3 mb", 33869004), ("1t", 1099511627776), ("6m", 6291456),
    ("1e3", 1000),
    ("", "invalid size: ''"), ("hello", "invalid size: 'hello'"), ("-32", "invalid size: '-32'"),
    (" 32 ", 'strconv.ParseFloat: parsing " 32": invalid syntax'),
    ("32m b", 'strconv.ParseFloat: parsing "32m": invalid syntax'),
    ("32bm", "invalid suffix: 'bm'"), ("1.2.3", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
    ("4e", "invalid suffix: 'e'"), ("１２m", "invalid size: '１２m'"),
])
def test_parse_size_like_docker_memory_flag(text, expected):
    if isinstance(expected, int):
        assert units.parse_size(text) == expected
    else:
        with pytest.raises(InvalidArgument) as e:
            units.parse_size(text)
        assert str(e.value) == expected


def test_parse_human_size_is_decimal():
    # go-units tests (FromHumanSize)
    assert units.parse_human_size("32k") == 32000
    assert units.parse_human_size("32Kb") == 32000
    assert units.parse_human_size("32.5 kB") == 32500
    assert units.parse_human_size("32.5 B") == 32
    assert units.parse_human_size("0.3 K") == 300
    assert units.parse_human_size("32Pb") == 32 * 1000**5
    for bad in ("", "hello", "-32", " 32 ", "32m b", "32bm"):
        with pytest.raises(InvalidArgument):
            units.parse_human_size(bad)


_DAY, _WEEK, _MONTH, _YEAR = 86400, 7 * 86400, 30 * 86400, 365 * 86400


# go-units tests (TestHumanDuration), in seconds.
@pytest.mark.parametrize("seconds,expected", [
    (0.45, "Less than a second"), (1, "1 second"), (45, "45 seconds"), (46, "46 seconds"), (59, "59 seconds"),
    (60, "About a minute"), (3 * 60, "3 minutes"), (35 * 60, "35 minutes"), (35 * 60 + 40, "35 minutes"),
    (45 * 60, "45 minutes"), (45 * 60 + 40, "45 minutes"), (46 * 60, "46 minutes"), (59 * 60, "59 minutes"),
    (3600, "About an hour"), (3600 + 29 * 60, "About an hour"), (3600 + 31 * 60, "2 hours"),
    (3600 + 59 * 60, "2 hours"), (3 * 3600, "3 hours"), (3 * 3600 + 29 * 60, "3 hours"),
    (3 * 3600 + 31 * 60, "4 hours"), (3 * 3600 + 59 * 60, "4 hours"), (3 * 3600 + 60 * 60, "4 hours"),
    (24 * 3600, "24 hours"), (_DAY + 12 * 3600, "36 hours"), (2 * _DAY, "2 days"), (7 * _DAY, "7 days"),
    (13 * _DAY + 5 * 3600, "13 days"), (2 * _WEEK, "2 weeks"), (2 * _WEEK + 4 * _DAY, "2 weeks"),
    (3 * _WEEK, "3 weeks"), (4 * _WEEK, "4 weeks"), (4 * _WEEK + 3 * _DAY, "4 weeks"), (_MONTH, "4 weeks"),
    (_MONTH + 2 * _WEEK, "6 weeks"), (2 * _MONTH, "2 months"), (2 * _MONTH + 2 * _WEEK, "2 months"),
    (3 * _MONTH, "3 months"), (3 * _MONTH + _WEEK, "3 months"), (5 * _MONTH + 2 * _WEEK, "5 months"),
    (13 * _MONTH, "13 months"), (23 * _MONTH, "23 months"), (24 * _MONTH, "24 months"),
    (24 * _MONTH + 2 * _WEEK, "2 years"), (3 * _YEAR + 2 * _MONTH, "3 years"),
    (-5, "Less than a second"),
])
def test_human_duration(seconds, expected):
    assert units.human_duration(seconds) == expected


def test_created_ago():
    now = 1_700_000_000.0
    assert units.created_ago(now - 300, now=now) == "5 minutes ago"
    assert units.created_ago(now, now=now) == "Less than a second ago"
    created = datetime.fromtimestamp(now - 3 * 3600, timezone.utc)
    assert units.created_ago(created, now=now) == "3 hours ago"
    assert units.created_ago("2023-11-14T22:13:20.5Z", now=now + 2 * _DAY) == "2 days ago"
    # docker 28.2.2 printed "3 years ago" for Created 1700000000 on this VM's clock.
    assert units.created_ago(1_700_000_000, now=1_795_592_662) == "3 years ago"


# docker 28.2.2: Healthcheck.Interval posted for `docker create --health-interval VALUE`, or the error.
@pytest.mark.parametrize("text,expected", [
    ("1h2m3.5s", 3723500000000), ("300ms", 300000000), ("1.5h", 5400000000000), ("0", 0), ("1us", 1000),
    ("1µs", 1000), ("1μs", 1000), ("2h45m", 9900000000000), ("1.000000001s", 1000000001), (".5s", 500000000),
    ("9223372036854775807ns", 9223372036854775807), ("2562047h", 9223369200000000000), ("0.1ns", 0),
    ("1h1h", 7200000000000), ("+5m", 300000000000), ("-1s", -1000000000),
    ("5.", 'time: missing unit in duration "5."'), ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("", 'time: invalid duration ""'), ("1", 'time: missing unit in duration "1"'),
    ("s", 'time: invalid duration "s"'), ("-.s", 'time: invalid duration "-.s"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("2562048h", 'time: invalid duration "2562048h"'),
    ("1.5e3s", 'time: unknown unit "e" in duration "1.5e3s"'), ("1s1", 'time: missing unit in duration "1s1"'),
])
def test_parse_duration_like_docker(text, expected):
    if isinstance(expected, int):
        assert units.parse_duration_ns(text) == expected
        assert units.parse_duration(text) == expected / 1e9
    else:
        with pytest.raises(InvalidArgument) as e:
            units.parse_duration_ns(text)
        assert str(e.value) == expected


# Go docs (time.Duration.String).
@pytest.mark.parametrize("ns,expected", [
    (0, "0s"), (1, "1ns"), (1100, "1.1µs"), (2_200_000, "2.2ms"), (3_300_000_000, "3.3s"),
    (4 * 60_000_000_000 + 5_000_000_000, "4m5s"), (4 * 60_000_000_000 + 5_001_000_000, "4m5.001s"),
    (5 * 3_600_000_000_000 + 6 * 60_000_000_000 + 7_001_000_000, "5h6m7.001s"),
    (8 * 60_000_000_000 + 1, "8m0.000000001s"), (3_600_000_000_000, "1h0m0s"), (-1_500_000_000, "-1.5s"),
    (9223372036854775807, "2562047h47m16.854775807s"),
])
def test_format_duration(ns, expected):
    assert units.format_duration(ns) == expected


# docker 28.2.2: the since= value `docker events --since VALUE` sent, with the local zone UTC
# and the clock at 1795592662 (relative values are measured back from it).
REFERENCE = datetime.fromtimestamp(1795592662, timezone.utc)


@pytest.mark.parametrize("value,expected", [
    ("0", "0"), ("10m", "1795592062"), ("1h30m", "1795587262"), ("-5m", "1795592962"),
    ("1136073600", "1136073600"), ("1136073600.5", "1136073600.5"),
    ("1136073600.000000001", "1136073600.000000001"), ("1.5", "1.5"),
    ("2006-01-02", "1136160000.000000000"), ("2006-01-02T15", "1136214000.000000000"),
    ("2006-01-02T15:04", "1136214240.000000000"), ("2006-01-02T15:04:05", "1136214245.000000000"),
    ("2006-01-02T15:04:05.999", "1136214245.999000000"), ("2006-01-02T15:04:05Z", "1136214245.000000000"),
    ("2006-01-02T15:04:05+01:00", "1136210645.000000000"),
    ("2006-01-02T15:04:05.5-07:30", "1136241245.500000000"), ("2006-01-02Z", "1136160000.000000000"),
    ("2006-01-02+02:00", "1136152800.000000000"), ("2006-01-02T15Z", "1136214000.000000000"),
    ("2006-01-02T15:04Z", "1136214240.000000000"), ("2006-01-02T1:04", "1136163840.000000000"),
    ("2006-01-02T15:04:05.123456789123Z", "1136214245.123456789"),
])
def test_get_timestamp_like_docker(value, expected):
    assert units.get_timestamp(value, REFERENCE) == expected


@pytest.mark.parametrize("value,expected", [
    ("2006-13-01", 'parsing time "2006-13-01": month out of range'),
    ("2006-02-30", 'parsing time "2006-02-30": day out of range'),
    ("2006-01-02T25:00:00", 'parsing time "2006-01-02T25:00:00": hour out of range'),
    ("abc", 'failed to parse value as time or duration: "abc"'),
    ("12abc", 'failed to parse value as time or duration: "12abc"'),
    ("2006-01-02T15:04:05z",
     'parsing time "2006-01-02T15:04:05z" as "2006-01-02T15:04:05Z07:00": cannot parse "z" as "Z07:00"'),
    ("2006-1-2", 'parsing time "2006-1-2" as "2006-01-02": cannot parse "1-2" as "01"'),
    ("2006-01-02T15:04:05Zjunk", 'parsing time "2006-01-02T15:04:05Zjunk": extra text: "junk"'),
    ("2006-01-02T15:04:05+25:00",
     'parsing time "2006-01-02T15:04:05+25:00": time zone offset hour out of range'),
])
def test_get_timestamp_errors_like_docker(value, expected):
    with pytest.raises(InvalidArgument) as e:
        units.get_timestamp(value, REFERENCE)
    assert str(e.value) == expected


def test_get_timestamp_uses_the_references_current_offset():
    # docker 28.2.2 with TZ=Europe/Berlin in winter (+01:00): even a July date is read at +01:00.
    berlin_now = REFERENCE.astimezone(timezone(timedelta(hours=1)))
    assert units.get_timestamp("2006-01-02", berlin_now) == "1136156400.000000000"
    assert units.get_timestamp("2006-07-02T15:04:05", berlin_now) == "1151849045.000000000"
    assert units.get_timestamp("2006-07-02T15:04:05.5", berlin_now) == "1151849045.500000000"


def test_parse_timestamps():
    assert units.parse_timestamps("", 7) == (7, 0)
    assert units.parse_timestamps("1136073600", 0) == (1136073600, 0)
    assert units.parse_timestamps("1136073600.5", 0) == (1136073600, 500000000)
    assert units.parse_timestamps("1136073600.000000001", 0) == (1136073600, 1)
    with pytest.raises(InvalidArgument):
        units.parse_timestamps("12abc", 0)


def test_parse_timestamp():
    assert units.parse_timestamp_ns("2006-01-02T15:04:05.123456789Z") == 1136214245123456789
    assert units.parse_timestamp("1136073600.5") == 1136073600.5
    assert units.parse_timestamp("10m", REFERENCE) == 1795592062.0
    before = time.time()
    assert before - 601 <= units.parse_timestamp("10m") <= time.time() - 599


def test_rfc3339_nano_round_trip():
    # Docker's JSON timestamps: Go's RFC3339Nano, trailing zeros of the fraction dropped.
    ns = 1704164645123456789
    assert units.format_rfc3339_nano(ns) == "2024-01-02T03:04:05.123456789Z"
    assert units.parse_rfc3339_nano("2024-01-02T03:04:05.123456789Z") == ns
    assert units.format_rfc3339_nano(1704164645120000000) == "2024-01-02T03:04:05.12Z"
    assert units.format_rfc3339_nano(1704164645000000000) == "2024-01-02T03:04:05Z"
    # A never-set time in Docker's State (FinishedAt of a created container).
    assert units.format_rfc3339_nano(datetime(1, 1, 1, tzinfo=timezone.utc)) == "0001-01-01T00:00:00Z"
    plus2 = datetime(2024, 1, 2, 5, 4, 5, 500000, tzinfo=timezone(timedelta(hours=2)))
    assert units.format_rfc3339_nano(plus2) == "2024-01-02T05:04:05.5+02:00"
    assert units.parse_rfc3339_nano("2024-01-02T05:04:05.5+02:00") == 1704164645500000000
    with pytest.raises(InvalidArgument, match="cannot parse"):
        units.parse_rfc3339_nano("2024-01-02 03:04:05Z")


@pytest.fixture
def tz_utc():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_created_at_like_docker_ps(tz_utc):
    # docker 28.2.2 (TZ=UTC): `docker ps --format '{{.CreatedAt}}'` for Created 1700000000.
    assert units.created_at(1700000000) == "2023-11-14 22:13:20 +0000 UTC"
    assert units.format_go_time(1700000000_250000000) == "2023-11-14 22:13:20.25 +0000 UTC"
    east = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert units.format_go_time(east) == "2024-01-02 03:04:05 +0530 +0530"
