"""Benchmark results: one record per metric, medians over repeated runs."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Record:
    """One measured figure, as written to the JSON output."""

    backend: str
    metric: str
    value: float
    unit: str
    params: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The JSON shape: {backend, metric, value, unit, params}."""
        return asdict(self)


def median_record(
    backend: str, metric: str, unit: str, samples: list[float], **params: Any
) -> Record:
    """A record whose value is the median of ``samples`` (all samples kept in params)."""
    value = statistics.median(samples)
    return Record(
        backend,
        metric,
        round(value, 3),
        unit,
        {**params, "runs": len(samples), "samples": [round(s, 3) for s in samples]},
    )


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of ``values`` by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def render_table(records: list[Record]) -> str:
    """A plain-text table of the records."""
    rows = [("backend", "metric", "value", "unit", "params")]
    for r in records:
        shown = {k: v for k, v in r.params.items() if k != "samples"}
        rows.append(
            (r.backend, r.metric, f"{r.value:,.3f}".rstrip("0").rstrip("."), r.unit, _fmt(shown))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        )
    return "\n".join(lines)


def _fmt(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())
