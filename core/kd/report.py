"""The experiment's reports: `report.json` for programs, `report.md` and `report.html` for people."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from lungkd.core.metrics import mean_std
from lungkd.core.recipes import ExperimentRecipe, StudentSpec
from lungkd.core.storage import write_json_atomic, write_text_atomic
from lungkd.core.text import markdown_text, unescape_markdown
from lungkd.core.training.calibration import expected_calibration_error


def _row(card: dict) -> dict:
    test = card.get("test") or {}
    return {"sp": test.get("sp"), "se": test.get("se"), "score": test.get("score"), "confusion": test.get("confusion"),
            "selection_note": card.get("selection_note") or "", "calibration": _calibration(card)}


def _calibration(card: dict) -> dict | None:
    """A run's temperature and its calibration error before and after (None: uncalibrated)."""
    c = card.get("calibration") or {}
    if not c.get("temperature"):
        return None
    return {"temperature": c["temperature"], "ece_before": c["ece_before"], "ece_after": c["ece_after"],
            "split": c["measured_on"]["split"], "cycles": c["measured_on"]["cycles"]}


def _pooled_reliability(name: str, cards: list[dict]) -> dict | None:
    """The reliability diagram of a group of runs (their bins added up), before and after calibration."""
    fitted = [c["calibration"] for c in cards if (c.get("calibration") or {}).get("temperature")]
    if not fitted:
        return None
    out = {"name": name, "runs": len(fitted)}
    for when in ("before", "after"):
        bins = []
        for parts in zip(*(f[f"reliability_{when}"] for f in fitted)):
            count = sum(p["count"] for p in parts)
            mean = (lambda key: sum(p[key] * p["count"] for p in parts if p["count"]) / count if count else None)
            bins.append({"low": parts[0]["low"], "high": parts[0]["high"], "count": count,
                         "confidence": mean("confidence"), "accuracy": mean("accuracy")})
        out[when], out[f"ece_{when}"] = bins, expected_calibration_error(bins)
    return out


def _summary(values: list[float]) -> dict:
    """Mean ± std of the Scores there are; none (no baseline trained, no class to score) is n = 0."""
    scored = [v for v in values if v is not None]
    if not scored:
        return {"mean": None, "std": None, "n": 0}
    ms = mean_std(scored)
    return {"mean": None if np.isnan(ms.mean) else ms.mean, "std": None if np.isnan(ms.std) else ms.std, "n": ms.n}


def _same_as_teachers(student: StudentSpec, recipe: ExperimentRecipe) -> bool:
    t = recipe.teachers
    return (student.arch, student.size, student.pretrained, student.train) == (t.arch, t.size, t.pretrained, t.train)


def build_report(recipe: ExperimentRecipe, data_fingerprint: str, teacher_cards: list[dict], ensembles: dict,
                 groups: list[list[dict]], second: dict | None, *, train_cycles: int, test_cycles: int) -> dict:
    """The report from plain data: the cards of every run (each with its bootstrap interval), the ensemble
    curve and the second generation."""
    teachers = [{"seed": c["seed"], "arch": c["architecture"], "epoch": c["selected_epoch"], **_row(c),
                 "bootstrap": c.get("bootstrap")} for c in teacher_cards]
    students, groups_out = [], []
    reliability = [_pooled_reliability(f"{recipe.teachers.arch} teachers", teacher_cards)]
    for spec, cards in zip(recipe.students, groups):
        reliability.append(_pooled_reliability(f"{spec.arch} students ({spec.labels})",
                                                [c for c in cards if c["role"] == "student"]))
        rows = [{"arch": c["architecture"], "labels": c["labels"], "role": c["role"], "seed": c["seed"],
                 "epoch": c["selected_epoch"], **_row(c), "bootstrap": c.get("bootstrap")} for c in cards]
        students += rows
        distilled = _summary([r["score"] for r in rows if r["role"] == "student"])
        baseline = _summary([r["score"] for r in rows if r["role"] == "baseline"])
        baseline_source = "baseline runs"
        if not baseline["n"] and _same_as_teachers(spec, recipe):
            # A student of the teachers' own architecture and recipe on hard labels *is* a teacher.
            baseline, baseline_source = _summary([t["score"] for t in teachers]), "the teachers"
        gain = (distilled["mean"] - baseline["mean"]) if baseline["n"] and distilled["n"] else None
        groups_out.append({"arch": spec.arch, "labels": spec.labels, "distilled": distilled, "baseline": baseline,
                           "baseline_source": baseline_source if baseline["n"] else None, "gain": gain})
    return {
        "name": recipe.name,
        "selection": recipe.selection,
        "data_fingerprint": data_fingerprint,
        "teacher_arch": recipe.teachers.arch,
        "teachers": teachers,
        "teacher_summary": _summary([t["score"] for t in teachers]),
        "ensembles": ensembles["first_k"],
        "curated": ensembles["curated"],
        "students": students,
        "student_groups": groups_out,
        "second_generation": second,
        "reliability": [r for r in reliability if r is not None],
        "test_cycles": int(test_cycles),
        "train_cycles": int(train_cycles),
        "recipe": recipe.to_dict(),
    }


def headline_scores(report: dict) -> dict:
    """What `lungkd runs` and the Experiments page show beside an experiment."""
    best_ensemble = max((e for e in report["ensembles"] if e["score"] is not None), key=lambda e: e["score"],
                        default=None)
    return {
        "teachers": report["teacher_summary"]["mean"],
        "ensemble": {"k": best_ensemble["k"], "score": best_ensemble["score"]} if best_ensemble else None,
        "students": [{"arch": g["arch"], "labels": g["labels"], "score": g["distilled"]["mean"],
                      "hard": g["baseline"]["mean"], "gain": g["gain"]} for g in report["student_groups"]],
        "second_generation": (report["second_generation"] or {}).get("score"),
    }


def selection_notes(report: dict) -> list[str]:
    """One line per model whose checkpoint selection found no qualifying epoch, naming the epoch it used."""
    runs = [(f"teacher seed {t['seed']}", t) for t in report["teachers"]]
    runs += [(f"{s['role']} {s['arch']} {s['labels']} seed {s['seed']}", s) for s in report["students"]]
    return [f"{name}: {row['selection_note']}." for name, row in runs if row.get("selection_note")]


def headline(report: dict) -> list[str]:
    """The result in a few lines, as `lungkd run` ends: best teacher, best ensemble, each student and its gain."""
    teachers = [t for t in report["teachers"] if t["score"] is not None]
    lines = []
    if teachers:
        best = max(teachers, key=lambda t: t["score"])
        lines.append(f"best teacher: seed {best['seed']}, Score {_f(best['score'])} "
                     f"(mean of {len(teachers)}: {_pm(report['teacher_summary'])})")
    scored = [e for e in report["ensembles"] if e["score"] is not None]
    if scored:
        best = max(scored, key=lambda e: e["score"])
        lines.append(f"best ensemble: the first {best['k']} teachers, Score {_f(best['score'])}")
    for g in report["student_groups"]:
        hard = f"hard labels {_pm(g['baseline'])}" + (" (the teachers)" if g["baseline_source"] == "the teachers"
                                                       else "")
        gain = "n/a" if g["gain"] is None else f"{g['gain']:+.2f}"
        lines.append(f"student {g['arch']} ({g['labels']}): Score {_pm(g['distilled'])}, {hard}, gain {gain}")
    if report["second_generation"]:
        lines.append(f"second generation: Score {_f(report['second_generation']['score'])}")
    return lines + [f"note: {note}" for note in selection_notes(report)]


def _f(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pm(summary: dict) -> str:
    if not summary["n"]:
        return "—"
    return f"{_f(summary['mean'])} ± {_f(summary['std'])} (n={summary['n']})"


def _ci(row: dict) -> str:
    b = row.get("bootstrap")
    return f"[{_f(b['low'])}, {_f(b['high'])}]" if b and b.get("low") is not None else "n/a"


def markdown_report(report: dict) -> str:
    """The report for people. What it quotes (names, architectures, labels) is escaped: shown, never markup."""
    q = markdown_text
    lines = [f"# LungKD experiment {q(report['name'])}", "",
             f"Checkpoint selection: **{report['selection']}**"
             + (" (the papers' protocol: the test set doubles as validation)" if report["selection"] == "best_test"
                else ""),
             f"Training cycles {report['train_cycles']}, test cycles {report['test_cycles']}, "
             f"data fingerprint {q(report['data_fingerprint'])}. Scores are percentages; intervals are 95% "
             "patient-level bootstrap intervals of the Score.", "",
             f"## Teachers ({q(report['teacher_arch'])})", "", "| seed | epoch | Sp | Se | Score | 95% CI |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {t['seed']} | {t['epoch']} | {_f(t['sp'])} | {_f(t['se'])} | {_f(t['score'])} | {_ci(t)} |"
              for t in report["teachers"]]
    lines += ["", f"Mean single teacher: {_pm(report['teacher_summary'])}", "",
              "## Teacher ensembles (mean of logits of the first k teachers)", "", "| k | Sp | Se | Score |",
              "|---|---|---|---|"]
    lines += [f"| {e['k']} | {_f(e['sp'])} | {_f(e['se'])} | {_f(e['score'])} |" for e in report["ensembles"]]
    if report["curated"]:
        c = report["curated"]
        lines += ["", f"Curated ensemble (best {c['k']} teachers, seeds {c['seeds']}): Sp {_f(c['sp'])}, "
                      f"Se {_f(c['se'])}, Score {_f(c['score'])}"]
    if report["students"]:
        lines += ["", "## Students", "", "| arch | labels | seed | epoch | Sp | Se | Score | 95% CI |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {q(s['arch'])} | {q(s['labels'])} | {s['seed']} | {s['epoch']} | {_f(s['sp'])} | {_f(s['se'])} | "
                  f"{_f(s['score'])} | {_ci(s)} |" for s in report["students"]]
        lines += ["", "| student | distilled Score | hard-label Score | gain |", "|---|---|---|---|"]
        lines += [f"| {q(g['arch'])} ({q(g['labels'])}) | {_pm(g['distilled'])} | {_pm(g['baseline'])}"
                  f"{' (the teachers)' if g['baseline_source'] == 'the teachers' else ''} | {_f(g['gain'])} |"
                  for g in report["student_groups"]]
    if report["second_generation"]:
        s = report["second_generation"]
        lines += ["", f"## Second generation (ensemble of {s['k']} {q(s['arch'])} students, {q(s['labels'])})", "",
                  f"Sp {_f(s['sp'])}, Se {_f(s['se'])}, Score {_f(s['score'])}"]
    if notes := selection_notes(report):
        lines += ["", "## Checkpoint selection fell back", "",
                  "Selection ignores epochs with Se ≤ 5 %; where no epoch qualified, the first was used:", ""]
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines + _calibration_lines(report)) + "\n"


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _calibration_lines(report: dict) -> list[str]:
    """Each run's temperature and expected calibration error (ECE) before and after, and the reliability
    diagrams of the teachers and of each group of students."""
    runs = [(f"teacher seed {t['seed']}", t) for t in report["teachers"]]
    runs += [(f"{s['role']} {s['arch']} {s['labels']} seed {s['seed']}", s) for s in report["students"]]
    lines = ["", "## Calibration", "",
             "Each run's temperature is fitted on cycles it neither trained nor was selected on (its validation "
             "split, or the part of train held out for calibration); the expected calibration error (ECE: the "
             "cycles' share-weighted gap between confidence and accuracy, ten bins) is measured on the test cycles.",
             "", "| run | temperature | ECE before | ECE after |", "|---|---|---|---|"]
    for name, row in runs:
        c = row.get("calibration")
        lines.append(f"| {name} | {_f(c['temperature'])} | {_percent(c['ece_before'])} | {_percent(c['ece_after'])} |"
                     if c else f"| {name} | uncalibrated | n/a | n/a |")
    for diagram in report.get("reliability", []):
        runs = f"{diagram['runs']} run{'s' * (diagram['runs'] != 1)}"
        lines += ["", f"Reliability of the {diagram['name']} ({runs}, their test cycles together): ECE "
                      f"{_percent(diagram['ece_before'])} before, {_percent(diagram['ece_after'])} after", "",
                  "| confidence | cycles before | mean confidence | accuracy | cycles after | mean confidence | accuracy |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {b['low']:.1f}–{b['high']:.1f} | {b['count']} | {_percent(b['confidence'])} | "
                  f"{_percent(b['accuracy'])} | {a['count']} | {_percent(a['confidence'])} | {_percent(a['accuracy'])} |"
                  for b, a in zip(diagram["before"], diagram["after"]) if b["count"] or a["count"]]
    return lines


def _curve_svg(points: list[dict], width: int = 480, height: int = 220) -> str:
    """Ensemble Score against k as a small inline SVG (no plotting dependency in the engine)."""
    scores = [p["score"] for p in points if p["score"] is not None]
    if not scores:
        return ""
    ks = [p["k"] for p in points if p["score"] is not None]
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


def _reliability_svg(diagram: dict, size: int = 240) -> str:
    """Accuracy against confidence per bin, before (grey) and after (blue) calibration, beside the diagonal
    of a perfectly calibrated model; a bar's width follows how many cycles its bin holds."""
    pad, plot = 36, size - 66
    x = lambda v: pad + v * plot  # noqa: E731
    y = lambda v: size - 32 - v * plot  # noqa: E731
    total = max(1, sum(b["count"] for b in diagram["after"]))
    ticks = "".join(f'<text x="{x(v):.1f}" y="{size - 19}" text-anchor="middle">{v:g}</text>'
                    f'<text x="{pad - 4}" y="{y(v) + 3:.1f}" text-anchor="end">{v:g}</text>' for v in (0, 0.5, 1))
    bars = []
    for when, colour, shift in (("before", "#999999", 0.0), ("after", "#3366cc", 0.5)):
        for b in diagram[when]:
            if b["count"]:
                width = 0.5 * (b["high"] - b["low"]) * plot * min(1.0, 0.3 + 5 * b["count"] / total)
                left = x(b["low"] + shift * (b["high"] - b["low"]))
                bars.append(f'<rect x="{left:.1f}" y="{y(b["accuracy"]):.1f}" width="{width:.1f}" '
                            f'height="{b["accuracy"] * plot:.1f}" fill="{colour}"><title>{when}: {b["count"]} cycles, '
                            f'confidence {b["confidence"]:.2f}, accuracy {b["accuracy"]:.2f}</title></rect>')
    return (f'<figure><svg width="{size}" height="{size}" xmlns="http://www.w3.org/2000/svg" font-size="10">'
            f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(0)}" stroke="#888"/>'
            f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(0)}" y2="{y(1)}" stroke="#888"/>{"".join(bars)}'
            f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#cc3333" stroke-dasharray="4 3"/>'
            f'<text x="{size / 2}" y="{size - 4}" text-anchor="middle">confidence</text>'
            f'<text x="2" y="12">accuracy</text>{ticks}</svg><figcaption>{html.escape(diagram["name"])}: ECE '
            f'{_percent(diagram["ece_before"])} before (grey), {_percent(diagram["ece_after"])} after (blue)'
            f'</figcaption></figure>')


def html_report(report: dict) -> str:
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
                body.append(_curve_svg(report["ensembles"]))
            if line.startswith("## Calibration"):
                body += [_reliability_svg(diagram) for diagram in report.get("reliability", [])]
        elif line.startswith("# "):
            body.append(f"<h1>{text(line[2:])}</h1>")
        elif line:
            body.append(f"<p>{text(line)}</p>")
    flush()
    style = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
             "text-align:right}th{background:#f2f2f2}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>LungKD {html.escape(report['name'])}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_reports(report: dict, folder: Path) -> list[Path]:
    paths = [folder / "report.json", folder / "report.md", folder / "report.html"]
    write_json_atomic(paths[0], report)
    write_text_atomic(paths[1], markdown_report(report))
    write_text_atomic(paths[2], html_report(report))
    return paths

