from __future__ import annotations

import pytest
from river_supervisor.backoff import service_backoff


def test_doubles_from_one_second_to_the_sixty_second_cap() -> None:
    middle = lambda: 0.5  # noqa: E731 - no jitter at the midpoint
    assert [service_backoff(n, rand=middle) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_jitter_stays_within_ten_percent() -> None:
    assert service_backoff(3, rand=lambda: 0.0) == pytest.approx(3.6)
    assert service_backoff(3, rand=lambda: 0.999999) == pytest.approx(4.4, rel=1e-5)
    assert service_backoff(50, rand=lambda: 0.999999) <= 66.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert service_backoff(10_000, rand=lambda: 0.5) == 60.0


def test_base_and_cap_can_be_shortened_for_renewals() -> None:
    assert service_backoff(1, base=0.1, cap=1.0, rand=lambda: 0.5) == pytest.approx(0.1)
    assert service_backoff(9, base=0.1, cap=1.0, rand=lambda: 0.5) == pytest.approx(1.0)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="attempt"):
        service_backoff(0)
