"""The repository's copy of River's conformance data equals ../shared/river-conformance/."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1] / "conformance"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "river-conformance"


@pytest.mark.parametrize("name", ["catalog.sql", "schema-v7.txt", "cron.json", "protocol.json"])
def test_copy_matches_shared(name: str) -> None:
    if not SHARED.exists():
        pytest.skip("no ../shared/river-conformance beside this checkout")
    assert (HERE / name).read_bytes() == (SHARED / name).read_bytes()
