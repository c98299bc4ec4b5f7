"""The experiment's report for people: `report.md` and `report.html` (with the ensemble curve and the
reliability diagrams as inline SVG, no plotting dependency in the engine), written beside `report.json`."""
from __future__ import annotations

import html
from pathlib import Path

from lungkd.core.kd.report import DatasetTable, EnsemblePoint, ExperimentReport, ReliabilityDiagram, RunRow
from lungkd.core.kd.report import number_text as _n
from lungkd.core.workspace.status import gain_text
from lungkd.core.storage import write_json_atomic, write_text_atomic
from lungkd.core.text import markdown_text, unescape_markdown
from lungkd.core.workspace.layout import REPORT_HTML, REPORT_JSON, REPORT_MARKDOWN


def _ci(row: RunRow) -> str:
    return row.bootstrap.text() if row.bootstrap else "n/a"


def markdown_report(report: ExperimentReport) -> str:
    """The report for people. What it quotes (names, architectures, labels) is escaped: shown, never markup."""
    q = markdown_text
    lines = [f"# LungKD experiment {q(report.name)}", "",
             f"Checkpoint selection: **{report.selection}** ({report.selection.explanation})",
             f"Training cycles {report.train_cycles}, test cycles {report.test_cycles}, "
             f"data fingerprint {q(report.data_fingerprint)}. Scores are percentages; intervals are 95% "
             "patient-level bootstrap intervals of the Score.", "",
             f"## Teachers ({q(report.teacher_arch)})", "", "| seed | epoch | Sp | Se | Score | 95% CI |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {t.seed} | {t.epoch} | {_n(t.sp)} | {_n(t.se)} | {_n(t.score)} | {_ci(t)} |" for t in report.teachers]
    lines += ["", f"Mean single teacher: {report.teacher_summary.text()}", "",
              "## Teacher ensembles (mean of logits of the first k teachers)", "", "| k | Sp | Se | Score |",
              "|---|---|---|---|"]
    lines += [f"| {e.k} | {_n(e.sp)} | {_n(e.se)} | {_n(e.score)} |" for e in report.ensembles]
    if c := report.curated:
        lines += ["", f"Curated ensemble (best {c.k} teachers, seeds {c.seeds}): Sp {_n(c.sp)}, Se {_n(c.se)}, "
                      f"Score {_n(c.score)}"]
    if report.students:
        lines += ["", "## Students", "", "| arch | labels | seed | epoch | Sp | Se | Score | 95% CI |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {q(s.arch)} | {q(s.labels)} | {s.seed} | {s.epoch} | {_n(s.sp)} | {_n(s.se)} | {_n(s.score)} | "
                  f"{_ci(s)} |" for s in report.students]
        lines += ["", "| student | distilled Score | hard-label Score | gain |", "|---|---|---|---|"]
        lines += [f"| {q(g.arch)} ({q(g.labels)}) | {g.distilled.text()} | {g.baseline.text()}"
                  f"{' (the teachers)' if g.baseline_source == 'the teachers' else ''} | {gain_text(g.gain)} |"
                  for g in report.student_groups]
    if s := report.second_generation:
        lines += ["", f"## Second generation (ensemble of {s.k} {q(s.arch)} students, {q(s.labels)})", "",
                  f"Sp {_n(s.sp)}, Se {_n(s.se)}, Score {_n(s.score)}"]
    lines += _dataset_lines(report)
    if notes := report.selection_notes():
        lines += ["", "## Checkpoint selection fell back", "",
                  "Selection ignores epochs with Se ≤ 5 %; where no epoch qualified, the first was used:", ""]
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines + _calibration_lines(report)) + "\n"


def _table_lines(table: DatasetTable, pooled: bool) -> list[str]:
    q = markdown_text
    heads = [f"{q(name)} ({part}, {row.cycles} cycles)" for name, part, row in
             zip(table.datasets, table.parts, table.rows[0].datasets)] if table.rows else list(map(q, table.datasets))
    if pooled and table.rows and table.rows[0].pooled:
        heads.append(f"pooled ({table.rows[0].pooled.cycles} cycles)")
    lines = ["| model | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for row in table.rows:
        cells = [s.text() for s in row.datasets] + ([row.pooled.text()] if pooled and row.pooled else [])
        lines.append(f"| {q(row.model)} | " + " | ".join(cells) + " |")
    return lines


def _dataset_lines(report: ExperimentReport) -> list[str]:
    """The Scores dataset by dataset: of the datasets trained on together, and of those never trained on."""
    lines = []
    if table := report.per_dataset:
        lines += ["", "## Scores per dataset", "",
                  "Score (Sp / Se) on the test cycles of each dataset trained on together; pooled is all of them, "
                  "as in the tables above.", ""] + _table_lines(table, pooled=True)
    if table := report.cross_dataset:
        lines += ["", "## Cross-dataset: datasets the models never trained on", "",
                  "Score (Sp / Se) of each model on datasets outside its training data: their official test split "
                  "where they have one, every annotated cycle otherwise.", ""] + _table_lines(table, pooled=False)
    return lines


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _calibration_lines(report: ExperimentReport) -> list[str]:
    """Each run's temperature and expected calibration error (ECE) before and after, and the reliability
    diagrams of the teachers and of each group of students."""
    lines = ["", "## Calibration", "",
             "Each run's temperature is fitted on cycles it neither trained nor was selected on (its validation "
             "split, or the part of train held out for calibration); the expected calibration error (ECE: the "
             "cycles' share-weighted gap between confidence and accuracy, ten bins) is measured on the test cycles.",
             "", "| run | temperature | ECE before | ECE after |", "|---|---|---|---|"]
    for row in report.teachers + report.students:
        c = row.calibration
        lines.append(f"| {row.name} | {_n(c.temperature)} | {_percent(c.ece_before)} | {_percent(c.ece_after)} |"
                     if c else f"| {row.name} | uncalibrated | n/a | n/a |")
    for diagram in report.reliability:
        runs = f"{diagram.runs} run{'s' * (diagram.runs != 1)}"
        lines += ["", f"Reliability of the {diagram.name} ({runs}, their test cycles together): ECE "
                      f"{_percent(diagram.ece_before)} before, {_percent(diagram.ece_after)} after", "",
                  "| confidence | cycles before | mean confidence | accuracy | cycles after | mean confidence | accuracy |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {b.low:.1f}–{b.high:.1f} | {b.count} | {_percent(b.confidence)} | "
                  f"{_percent(b.accuracy)} | {a.count} | {_percent(a.confidence)} | {_percent(a.accuracy)} |"
                  for b, a in zip(diagram.before, diagram.after) if b.count or a.count]
    return lines


def _curve_svg(points: list[EnsemblePoint], width: int = 480, height: int = 220) -> str:
    """Ensemble Score against k as a small inline SVG (no plotting dependency in the engine)."""
    scores = [p.score for p in points if p.score is not None]
    if not scores:
        return ""
    ks = [p.k for p in points if p.score is not None]
    lo, hi = min(scores) - 1, max(scores) + 1
    kmax = max(max(ks), 2)
    x = lambda k: 40 + (k - 1) / (kmax - 1) * (width - 60)  # noqa: E731
    y = lambda s: height - 30 - (s - lo) / (hi - lo) * (height - 50)  # noqa: E731
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(k):.1f},{y(s):.1f}" for i, (k, s) in enumerate(zip(ks, scores)))
    dots = "".join(f'<circle cx="{x(k):.1f}" cy="{y(s):.1f}" r="3"><title>k={k}: {s:.2f}</title></circle>'
                   for k, s in zip(ks, scores))
    return (f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="11">'
            f'<line x1="40" y1="{height - 30}" x2="{width - 20}" y2="{height - 30}" stroke="#888"/>'
            f'<line x1="40" y1="20" x2="40" y2="{height - 30}" stroke="#888"/>'
            f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">teachers in the ensemble (k)</text>'
            f'<text x="4" y="16">Score</text><text x="4" y="{y(hi - 1) + 4:.0f}">{hi - 1:.1f}</text>'
            f'<text x="4" y="{y(lo + 1) + 4:.0f}">{lo + 1:.1f}</text>'
            f'<path d="{path}" fill="none" stroke="#3366cc" stroke-width="2"/>'
            f'<g fill="#3366cc">{dots}</g></svg>')


def _reliability_svg(diagram: ReliabilityDiagram, size: int = 240) -> str:
    """Accuracy against confidence per bin, before (grey) and after (blue) calibration, beside the diagonal
    of a perfectly calibrated model; a bar's width follows how many cycles its bin holds."""
    pad, plot = 36, size - 66
    x = lambda v: pad + v * plot  # noqa: E731
    y = lambda v: size - 32 - v * plot  # noqa: E731
    total = max(1, sum(b.count for b in diagram.after))
    ticks = "".join(f'<text x="{x(v):.1f}" y="{size - 19}" text-anchor="middle">{v:g}</text>'
                    f'<text x="{pad - 4}" y="{y(v) + 3:.1f}" text-anchor="end">{v:g}</text>' for v in (0, 0.5, 1))
    bars = []
    for when, colour, shift in (("before", "#999999", 0.0), ("after", "#3366cc", 0.5)):
        for b in getattr(diagram, when):
            if b.count:
                width = 0.5 * (b.high - b.low) * plot * min(1.0, 0.3 + 5 * b.count / total)
                left = x(b.low + shift * (b.high - b.low))
                bars.append(f'<rect x="{left:.1f}" y="{y(b.accuracy):.1f}" width="{width:.1f}" '
                            f'height="{b.accuracy * plot:.1f}" fill="{colour}"><title>{when}: {b.count} cycles, '
                            f'confidence {b.confidence:.2f}, accuracy {b.accuracy:.2f}</title></rect>')
    return (f'<figure><svg width="{size}" height="{size}" xmlns="http://www.w3.org/2000/svg" font-size="10">'
            f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(0)}" stroke="#888"/>'
            f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(0)}" y2="{y(1)}" stroke="#888"/>{"".join(bars)}'
            f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#cc3333" stroke-dasharray="4 3"/>'
            f'<text x="{size / 2}" y="{size - 4}" text-anchor="middle">confidence</text>'
            f'<text x="2" y="12">accuracy</text>{ticks}</svg><figcaption>{html.escape(diagram.name)}: ECE '
            f'{_percent(diagram.ece_before)} before (grey), {_percent(diagram.ece_after)} after (blue)'
            f'</figcaption></figure>')


def html_report(report: ExperimentReport) -> str:
    """The Markdown tables as HTML, with the ensemble curve; self-contained, opens in any browser."""
    body = []
    table: list[str] = []

    def text(markdown: str) -> str:  # the words of our Markdown as HTML text
        return html.escape(unescape_markdown(markdown.replace("**", "")))

    def flush() -> None:
        if table:
            rows = [r.strip("|").split(" | ") for r in table if not set(r) <= set("|-")]
            head, *rest = rows
            body.append("<table><tr>" + "".join(f"<th>{text(c.strip())}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{text(c.strip())}</td>" for c in r) + "</tr>"
                                  for r in rest) + "</table>")
            table.clear()

    for line in markdown_report(report).splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("## "):
            body.append(f"<h2>{text(line[3:])}</h2>")
            if line.startswith("## Teacher ensembles"):
                body.append(_curve_svg(report.ensembles))
            if line.startswith("## Calibration"):
                body += [_reliability_svg(diagram) for diagram in report.reliability]
        elif line.startswith("# "):
            body.append(f"<h1>{text(line[2:])}</h1>")
        elif line:
            body.append(f"<p>{text(line)}</p>")
    flush()
    style = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
             "text-align:right}th{background:#f2f2f2}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>LungKD {html.escape(report.name)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_reports(report: ExperimentReport, folder: Path) -> list[Path]:
    """report.json, report.md and report.html in the experiment's folder, each written atomically."""
    paths = [Path(folder) / name for name in (REPORT_JSON, REPORT_MARKDOWN, REPORT_HTML)]
    write_json_atomic(paths[0], report.to_json())
    write_text_atomic(paths[1], markdown_report(report))
    write_text_atomic(paths[2], html_report(report))
    return paths

