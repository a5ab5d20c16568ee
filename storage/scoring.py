"""An ESTIMATE of the administrative part of the official score, from what the bot can know.

The ministry scores each period 0-100: administration weighs 30%, substance 70%. Only the
verifiers can judge substance; the administrative part is about form, which the bot sees:
was the report sent on time, is every required answer given, is every required kind of
evidence there, are numbers given where numbers were asked (not "nihil"). This module turns
those facts into an estimate on the administrative scale (0-100, the target is 80) and says
what pulls it down, so a coordinator knows before the deadline which OPD to call and why.

The weights are ours, not the ministry's: they follow the causes of failed reports named in
the field (missing notulen or daftar hadir above all, then late or missing reports, then
gaps and "nihil"). Pure functions: no database, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

TARGET = 80.0  # the national target for a period's score
ADMINISTRATIVE_SHARE = 0.30  # of the official score

# Words people write where a number was asked. The report flow refuses them for numeric
# questions (handlers/answers.py); answers that reached the database another way still count.
NIL_WORDS = frozenset(
    {"nihil", "nil", "tidak ada", "kosong", "-", "none", "nol", "n/a", "na", "tidak"}
)


class Shortfall(StrEnum):
    """What pulls an estimate down (the locale keys are `score.reason.<value>`)."""

    not_sent = "not_sent"
    late = "late"
    answers_missing = "answers_missing"
    evidence_missing = "evidence_missing"
    nihil = "nihil"


# Points out of 100 for each part of the administrative form.
WEIGHTS: dict[Shortfall, float] = {
    Shortfall.not_sent: 25.0,  # on time; `late` shares this part
    Shortfall.answers_missing: 25.0,
    Shortfall.evidence_missing: 35.0,
    Shortfall.nihil: 15.0,
}


@dataclass(frozen=True)
class ReportFacts:
    """What the bot knows of one report (an action of one office in one period)."""

    sent: bool  # submitted (or approved)
    sent_on_time: bool  # sent before the deadline (meaningless when not sent)
    deadline_passed: bool
    required_answers: int
    given_answers: int  # of the required ones
    required_evidence: int  # evidence requirements (kinds) with a minimum
    met_evidence: int  # of those, how many have their minimum number of files
    nihil_answers: int  # answers that are a "nihil" word


@dataclass(frozen=True)
class ScoreEstimate:
    points: float  # 0-100 on the administrative scale
    lost: dict[Shortfall, float] = field(default_factory=dict)  # points lost, by cause

    @property
    def official_points(self) -> float:
        """Its weight in the official 0-100 score (at most 30)."""
        return self.points * ADMINISTRATIVE_SHARE

    @property
    def meets_target(self) -> bool:
        return self.points >= TARGET

    def main_shortfalls(self) -> list[Shortfall]:
        """The causes, biggest loss first."""
        # Equal losses in the enum's order, so the order never depends on which report came first.
        order = list(Shortfall)
        ranked = sorted(self.lost.items(), key=lambda item: (-item[1], order.index(item[0])))
        return [cause for cause, points in ranked if points > 0]


def is_nihil(value: str) -> bool:
    return value.strip().casefold() in NIL_WORDS


def _share(have: int, want: int) -> float:
    return 1.0 if want <= 0 else max(0.0, min(1.0, have / want))


def estimate(facts: ReportFacts) -> ScoreEstimate:
    """The administrative estimate of one report, as it stands now.

    A report not sent when the deadline has passed reached no verifier: it scores 0. Before the
    deadline, an unsent report loses the on-time part only (it can still earn it) and the rest
    is judged on what its draft holds: the figure says what it would earn if sent as it is."""
    if not facts.sent and facts.deadline_passed:
        return ScoreEstimate(0.0, {Shortfall.not_sent: 100.0})
    lost: dict[Shortfall, float] = {}
    if not facts.sent:
        lost[Shortfall.not_sent] = WEIGHTS[Shortfall.not_sent]
    elif not facts.sent_on_time:
        lost[Shortfall.late] = WEIGHTS[Shortfall.not_sent]
    answers = _share(facts.given_answers, facts.required_answers)
    lost[Shortfall.answers_missing] = WEIGHTS[Shortfall.answers_missing] * (1 - answers)
    evidence = _share(facts.met_evidence, facts.required_evidence)
    lost[Shortfall.evidence_missing] = WEIGHTS[Shortfall.evidence_missing] * (1 - evidence)
    clean = _share(facts.given_answers - facts.nihil_answers, facts.given_answers)
    lost[Shortfall.nihil] = WEIGHTS[Shortfall.nihil] * (1 - clean)
    lost = {cause: round(points, 1) for cause, points in lost.items() if points > 0}
    return ScoreEstimate(round(max(0.0, 100.0 - sum(lost.values())), 1), lost)


def combine(estimates: Iterable[ScoreEstimate]) -> ScoreEstimate:
    """A pemda's (or a province's) estimate: the mean of its reports, with the mean loss by
    cause. No report at all: nothing to estimate, 0."""
    return combine_counted((item, 1) for item in estimates)


def combine_counted(weighted: Iterable[tuple[ScoreEstimate, int]]) -> ScoreEstimate:
    """`combine` of reports given as (estimate, how many reports have it): how the region
    figures add up groups of reports that share their facts (storage.oversight.group_figures).

    Sums are kept in whole tenths (every estimate is rounded to 0.1), so the mean does not
    depend on the order of the reports or on how they are grouped: both reads show the same."""
    count = 0
    points = 0
    lost: dict[Shortfall, int] = {}
    for item, times in weighted:
        count += times
        points += _tenths(item.points) * times
        for cause, cause_points in item.lost.items():
            lost[cause] = lost.get(cause, 0) + _tenths(cause_points) * times
    if count == 0:
        return ScoreEstimate(0.0, {})
    return ScoreEstimate(
        _mean(points, count),
        {cause: _mean(lost[cause], count) for cause in Shortfall if cause in lost},
    )


def _tenths(points: float) -> int:
    return round(points * 10)


def _mean(tenths: int, count: int) -> float:
    return round(tenths / (10 * count), 1)
