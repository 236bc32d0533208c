"""The run's outputs: metrics.json, report.md (the paper's table layouts) and plots/.

The report's frame (header, tables, files) is here; its columns, notes, sections and figures come from the registered
metrics, in the registry's order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ftv_train.evaluation.config import EvalConfig
from ftv_train.evaluation.metrics.base import Metric, Record, Results
from ftv_train.evaluation.metrics.registry import registered_metrics

RecordsBySystem = dict[str, dict[str, list[Record]]]  # system -> split -> records


def write_outputs(
    config: EvalConfig, results: Results, records: RecordsBySystem, metrics: Sequence[Metric] | None = None
) -> None:
    """metrics.json, plots/ and report.md."""
    out = config.out
    metrics = registered_metrics() if metrics is None else metrics
    plot_files = make_plots(config, results, records, metrics) if config.plots else []
    results["plots"] = [str(p.relative_to(out)) for p in plot_files]
    (out / "metrics.json").write_text(json.dumps(results, indent=1))
    (out / "report.md").write_text(render_report(results, plot_files, out, metrics))


def make_plots(
    config: EvalConfig, results: Results, records: RecordsBySystem, metrics: Sequence[Metric] | None = None
) -> list[Path]:
    files: list[Path] = []
    for metric in registered_metrics() if metrics is None else metrics:
        files += metric.plots(results, records, config.out / "plots")
    return files


def _setting(value: float | None) -> str:
    return "the model's own" if value is None else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render_report(
    results: Results, plot_files: Sequence[Path], out: Path, metrics: Sequence[Metric] | None = None
) -> str:
    """Markdown with the paper's table layouts (Table 2 columns, Table 7 subgroups)."""
    metrics = registered_metrics() if metrics is None else metrics
    cfg, systems, backends = results["config"], results["systems"], results["backends"]
    splits = cfg["splits"]
    models = "; ".join(f"{m.backend_title}: {backends[m.backend]}" for m in metrics if m.backend in backends)
    lines = [
        "# FTV evaluation report",
        "",
        f"- model: `{cfg['model']}`",
        *([f"- baseline model: `{cfg['baseline_model']}`"] if cfg.get("baseline_model") else []),
        f"- data: `{cfg['data']}`, splits: {', '.join(splits)}",
        "- utterances: "
        + ", ".join(f"{s} {results['num_utterances'][s]} ({results['num_speakers'][s]} speakers)" for s in splits),
        f"- {models}",
        f"- device: {results['device']}; seed {cfg['seed']}; noise_scale {_setting(cfg['noise_scale'])}, "
        f"noise_scale_duration {_setting(cfg['noise_scale_duration'])}; created {results['created']}",
        "",
        "## Objective results (Table 2 layout)",
        "",
    ]
    columns = [column for metric in metrics for column in metric.columns(results)]
    rows = [[row["title"], *(column.cell(row) for column in columns)] for row in systems.values()]
    lines += _table(["System", *(column.header for column in columns)], rows)
    notes = [note for metric in metrics if (note := metric.note(results))]
    lines += [
        "",
        " ".join(
            [
                *notes,
                "In brackets: 95% intervals (Wilson for the proportions, a bootstrap over utterances for CER), to tell "
                "a difference from sampling noise.",
            ]
        ),
        "",
    ]
    if len(splits) > 1:
        split_columns = [column for metric in metrics for column in metric.split_columns(results)]
        rows = [
            [row["title"], split, str(summary["num_utterances"]), *(column.cell(summary) for column in split_columns)]
            for row in systems.values()
            for split, summary in row["splits"].items()
        ]
        lines += ["## Per split", ""]
        lines += _table(["System", "Split", "n", *(column.header for column in split_columns)], rows)
        lines.append("")
    for metric in metrics:
        lines += metric.section(results)
    if plot_files:
        lines += ["## Plots", ""]
        for p in plot_files:
            lines.append(f"![{p.stem}]({p.relative_to(out).as_posix()})")
        lines.append("")
    lines += [
        "## Files",
        "",
        "`metrics.json` (everything above, machine-readable), `audio/<system>/<split>/*.wav` (what was scored), "
        "`cache/` (per-utterance scores and transcripts; delete it to recompute everything).",
        "",
    ]
    return "\n".join(lines)
