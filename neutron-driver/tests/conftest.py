"""Marks the tests listed in known-failures.txt as expected to fail, strictly: one that passes fails the run."""

from pathlib import Path

import pytest

KNOWN = {}
for line in (Path(__file__).parent / "known-failures.txt").read_text().splitlines():
    if line.strip() and not line.startswith("#"):
        test, _, reason = line.partition("  ")
        KNOWN[test.strip()] = reason.strip()


def pytest_collection_modifyitems(config, items):
    seen = set()
    for item in items:
        key = "%s::%s" % (item.cls.__name__, item.name) if item.cls else item.name
        if key in KNOWN:
            seen.add(key)
            item.add_marker(pytest.mark.xfail(reason=KNOWN[key], strict=True))
    missing = set(KNOWN) - seen
    whole = any(item.module.__name__.endswith("test_neutron_db_plugin") for item in items)
    if missing and whole and not config.getoption("keyword") and not config.getoption("markexpr"):
        raise pytest.UsageError("known-failures.txt lists tests that do not exist: %s" % ", ".join(sorted(missing)))
