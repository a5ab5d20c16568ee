"""The administrative score estimate: a pure function, table-driven."""

from __future__ import annotations

import pytest

from storage.scoring import (
    TARGET,
    ReportFacts,
    ScoreEstimate,
    Shortfall,
    combine,
    combine_counted,
    estimate,
    is_nihil,
)

PERFECT = ReportFacts(
    sent=True,
    sent_on_time=True,
    deadline_passed=False,
    required_answers=4,
    given_answers=4,
    required_evidence=2,
    met_evidence=2,
    nihil_answers=0,
)


def facts(**changes: object) -> ReportFacts:
    return ReportFacts(**{**PERFECT.__dict__, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "points", "causes"),
    [
        ({}, 100.0, []),
        ({"sent_on_time": False}, 75.0, [Shortfall.late]),
        ({"sent": False}, 75.0, [Shortfall.not_sent]),
        ({"sent": False, "deadline_passed": True}, 0.0, [Shortfall.not_sent]),
        ({"given_answers": 2}, 87.5, [Shortfall.answers_missing]),
        ({"met_evidence": 1}, 82.5, [Shortfall.evidence_missing]),
        ({"met_evidence": 0}, 65.0, [Shortfall.evidence_missing]),
        ({"nihil_answers": 1}, 96.2, [Shortfall.nihil]),
        (
            {"sent": False, "given_answers": 0, "met_evidence": 0},
            15.0,
            [Shortfall.evidence_missing, Shortfall.not_sent, Shortfall.answers_missing],
        ),
        # A measure with nothing required: the parts that do not apply are not lost.
        (
            {"required_answers": 0, "given_answers": 0, "required_evidence": 0, "met_evidence": 0},
            100.0,
            [],
        ),
    ],
)
def test_estimate_of_one_report(changes, points, causes) -> None:
    result = estimate(facts(**changes))
    assert result.points == points
    assert result.main_shortfalls() == causes
    assert result.official_points == pytest.approx(points * 0.3)
    assert result.meets_target is (points >= TARGET)


def test_a_sent_report_on_time_but_late_is_not_counted_as_unsent() -> None:
    late = estimate(facts(sent_on_time=False, deadline_passed=True))
    assert late.lost == {Shortfall.late: 25.0}


def test_a_pemda_is_the_mean_of_its_reports_with_the_mean_loss_by_cause() -> None:
    pemda = combine([estimate(PERFECT), estimate(facts(met_evidence=0))])
    assert pemda.points == 82.5
    assert pemda.lost == {Shortfall.evidence_missing: 17.5}
    assert combine([]) == ScoreEstimate(0.0, {})


def test_reports_counted_in_groups_combine_as_the_reports_one_by_one() -> None:
    kinds = [
        estimate(PERFECT),
        estimate(facts(met_evidence=1)),
        estimate(facts(sent=False, given_answers=1)),
        estimate(facts(nihil_answers=3, sent_on_time=False)),
        estimate(facts(sent=False, deadline_passed=True)),
    ]
    counts = [7, 1, 3, 2, 5]
    one_by_one = [item for item, times in zip(kinds, counts, strict=True) for _ in range(times)]
    grouped = combine_counted(zip(kinds, counts, strict=True))
    assert grouped == combine(one_by_one) == combine(reversed(one_by_one))
    assert combine_counted([]) == combine([]) == ScoreEstimate(0.0, {})


def test_equal_losses_are_named_in_a_fixed_order_whatever_report_came_first() -> None:
    answers = estimate(facts(sent=False, given_answers=0))  # not sent 25, answers 25
    assert answers.main_shortfalls()[:2] == [Shortfall.not_sent, Shortfall.answers_missing]
    evidence = ScoreEstimate(50.0, {Shortfall.nihil: 10.0, Shortfall.late: 10.0})
    assert evidence.main_shortfalls() == [Shortfall.late, Shortfall.nihil]


@pytest.mark.parametrize(
    ("value", "nihil"),
    [
        ("nihil", True),
        (" NIHIL ", True),
        ("-", True),
        ("tidak ada", True),
        ("0", False),
        ("12", False),
    ],
)
def test_nihil_words(value: str, nihil: bool) -> None:
    assert is_nihil(value) is nihil
