"""Quality gates of the methodology and the promotion rule against the champion."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from freightml.evaluation.backtest import BacktestResult
from freightml.evaluation.methodology import GateSpec, Methodology


@dataclass(frozen=True)
class GateCheck:
    """One limit: ``passed`` when ``value <= limit`` (a NaN value never passes)."""

    name: str
    value: float
    limit: float
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateReport:
    """All checks of one backtest; segments below the support rule are listed as skipped."""

    checks: tuple[GateCheck, ...]
    skipped: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
            "skipped": list(self.skipped),
        }

    def to_markdown(self) -> str:
        lines = [
            f"**Gates: {'PASSED' if self.passed else 'FAILED'}** "
            f"({len(self.checks) - len(self.failed)}/{len(self.checks)} checks passed)",
            "",
            "| check | value | limit | result | detail |",
            "|---|---:|---:|---|---|",
        ]
        for c in self.checks:
            mark = "pass" if c.passed else "**FAIL**"
            lines.append(f"| {c.name} | {c.value:.4f} | {c.limit:.4f} | {mark} | {c.detail} |")
        if self.skipped:
            lines += ["", "Segments below the support rule (not gated):", ""]
            lines += [f"- {s}" for s in self.skipped]
        return "\n".join(lines) + "\n"


def segment_supported(tonnes_share: float, n_series: int, gates: GateSpec) -> bool:
    """The methodology's support rule: a segment carrying at least ``min_segment_share`` of
    the actual tonnes and holding at least ``min_segment_series`` series is judged."""
    below = tonnes_share < gates.min_segment_share or n_series < gates.min_segment_series
    return not below


def _check(name: str, value: float, limit: float, detail: str) -> GateCheck:
    value = float(value)
    ok = not math.isnan(value) and value <= limit
    if math.isnan(value):
        detail = f"undefined ({detail})"
    return GateCheck(name, value, float(limit), ok, detail)


def evaluate_gates(result: BacktestResult, methodology: Methodology) -> GateReport:
    """Overall WAPE ratio to the baseline, the ratio in every supported segment, |bias|, and
    (when the methodology sets a limit) the 80% interval's coverage error."""
    gates = methodology.gates
    overall = result.summary().iloc[0]
    checks = [
        _check(
            "wape_ratio_to_baseline",
            overall["wape_ratio"],
            gates.max_wape_ratio_to_baseline,
            f"model WAPE {overall['wape']:.4f} vs baseline {overall['wape_baseline']:.4f}",
        ),
        _check(
            "abs_bias", abs(overall["bias"]), gates.max_abs_bias, f"bias {overall['bias']:+.4f}"
        ),
    ]
    if gates.max_coverage_error_80 is not None:
        covered = result.coverage().get("coverage_80", math.nan)
        checks.append(
            _check(
                "interval_coverage_80_error",
                abs(covered - 0.80),
                gates.max_coverage_error_80,
                f"80% interval covered {covered:.1%} of the actuals"
                if not math.isnan(covered)
                else "the backtest has no calibrated intervals",
            )
        )
    skipped = []
    for column in methodology.segments:
        for row in result.by_segment(column).to_dict("records"):
            label = f"{column}={row[column]}"
            support = f"{row['tonnes_share']:.1%} of tonnes, {row['n_series']} series"
            if not segment_supported(row["tonnes_share"], row["n_series"], gates):
                skipped.append(f"{label} ({support})")
                continue
            checks.append(
                _check(
                    f"segment_wape_ratio_to_baseline[{label}]",
                    row["wape_ratio"],
                    gates.max_segment_wape_ratio_to_baseline,
                    f"WAPE {row['wape']:.4f} vs baseline {row['wape_baseline']:.4f}; {support}",
                )
            )
    return GateReport(tuple(checks), tuple(skipped))


def beats_champion(
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    methodology: Methodology,
    *,
    newer_facts: bool = False,
) -> tuple[bool, str]:
    """Whether the challenger's WAPE is strictly lower than the champion's and by at least the
    required relative improvement, so a retrain on the same data never churns the champion.

    ``newer_facts``: the challenger was trained on facts beyond the champion's (a refresh,
    e.g. an automatic retrain). Its recipe is backtested against the champion's on the same
    window, where a refresh of the same recipe ties by construction; it then wins unless it
    is worse (improvement >= 0), because it has seen what the champion never saw.

    Both metric dicts must come from the same backtest window to be comparable. With no
    champion (or no champion WAPE) the challenger wins; a missing challenger WAPE loses.
    """
    key = methodology.primary_metric
    required = methodology.promotion.min_wape_improvement_over_champion
    challenger = float(challenger_metrics.get(key, math.nan))
    if math.isnan(challenger):
        return False, f"challenger has no {key} metric: cannot promote"
    champion = float((champion_metrics or {}).get(key, math.nan))
    if math.isnan(champion):
        return True, f"no champion {key} to compare with: challenger ({challenger:.4f}) wins"
    if champion <= 0:
        improvement = 0.0 if challenger <= 0 else -math.inf
    else:
        improvement = (champion - challenger) / champion
    if newer_facts:  # a refresh on newer facts: not worse is enough
        ok = improvement >= 0
        verdict = "is no worse than" if ok else "is worse than"
        return ok, (
            f"refresh on newer facts: challenger {key} {challenger:.4f} {verdict} champion "
            f"{champion:.4f} (relative improvement {improvement:+.2%}, required >= +0.00%)"
        )
    ok = improvement > 0 and improvement >= required  # a tie never replaces the champion
    verdict = "beats" if ok else "does not beat"
    return ok, (
        f"challenger {key} {challenger:.4f} {verdict} champion {champion:.4f}: relative "
        f"improvement {improvement:+.2%} vs required {required:+.2%}"
    )
