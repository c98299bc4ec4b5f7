"""The experiment's reports: `report.json` for programs, `report.md` and `report.html` for people."""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from lungkd.core.metrics import mean_std
from lungkd.core.models.card import write_atomic_text


def _row(card: dict) -> dict:
    test = card.get("test") or {}
    return {"sp": test.get("sp"), "se": test.get("se"), "score": test.get("score"), "confusion": test.get("confusion")}


def _summary(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:  # e.g. no baseline trained: nothing to summarise
        return {"mean": None, "std": None, "n": 0}
    ms = mean_std(values)
    return {"mean": None if np.isnan(ms.mean) else ms.mean, "std": None if np.isnan(ms.std) else ms.std, "n": ms.n}


def _same_as_teachers(student, recipe) -> bool:
    t = recipe.teachers
    return (student.arch, student.size, student.pretrained, student.train) == \
        (t.arch, t.size, t.pretrained, recipe.teacher_train)


def build_report(experiment, teacher_cards: list[dict], ensembles: dict, groups: list[list[dict]],
                 second: dict | None, logits: dict) -> dict:
    recipe = experiment.recipe
    teachers = [{"seed": c["seed"], "arch": c["architecture"], "epoch": c["selected_epoch"], **_row(c),
                 "bootstrap": experiment.bootstrap(c["run_folder"], c["architecture"])}
                for c in teacher_cards]
    students, groups_out = [], []
    for spec, cards in zip(recipe.students, groups):
        rows = []
        for card in cards:
            rows.append({"arch": card["architecture"], "labels": card["labels"], "role": card["role"],
                         "seed": card["seed"], "epoch": card["selected_epoch"], **_row(card),
                         "bootstrap": experiment.bootstrap(card["run_folder"], card["architecture"])})
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
        "data_fingerprint": experiment.index.fingerprint(),
        "teacher_arch": recipe.teachers.arch,
        "teachers": teachers,
        "teacher_summary": _summary([t["score"] for t in teachers]),
        "ensembles": ensembles["first_k"],
        "curated": ensembles["curated"],
        "students": students,
        "student_groups": groups_out,
        "second_generation": second,
        "test_cycles": int(len(logits["test_labels"])),
        "train_cycles": int(len(logits["train_labels"])),
        "recipe": recipe.to_dict(),
    }


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
    lines = [f"# LungKD experiment `{report['name']}`", "",
             f"Checkpoint selection: **{report['selection']}**"
             + (" (the papers' protocol: the test set doubles as validation)" if report["selection"] == "best_test"
                else ""),
             f"Training cycles {report['train_cycles']}, test cycles {report['test_cycles']}, "
             f"data fingerprint `{report['data_fingerprint']}`. Scores are percentages; intervals are 95% "
             "patient-level bootstrap intervals of the Score.", "",
             f"## Teachers ({report['teacher_arch']})", "", "| seed | epoch | Sp | Se | Score | 95% CI |",
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
        lines += [f"| {s['arch']} | {s['labels']} | {s['seed']} | {s['epoch']} | {_f(s['sp'])} | {_f(s['se'])} | "
                  f"{_f(s['score'])} | {_ci(s)} |" for s in report["students"]]
        lines += ["", "| student | distilled Score | hard-label Score | gain |", "|---|---|---|---|"]
        lines += [f"| {g['arch']} ({g['labels']}) | {_pm(g['distilled'])} | {_pm(g['baseline'])}"
                  f"{' (the teachers)' if g['baseline_source'] == 'the teachers' else ''} | {_f(g['gain'])} |"
                  for g in report["student_groups"]]
    if report["second_generation"]:
        s = report["second_generation"]
        lines += ["", f"## Second generation (ensemble of {s['k']} {s['arch']} students, {s['labels']})", "",
                  f"Sp {_f(s['sp'])}, Se {_f(s['se'])}, Score {_f(s['score'])}"]
    return "\n".join(lines) + "\n"


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


def html_report(report: dict) -> str:
    """The Markdown tables as HTML, with the ensemble curve; self-contained, opens in any browser."""
    body = []
    table: list[str] = []

    def flush() -> None:
        if table:
            rows = [r.strip("|").split(" | ") for r in table if not set(r) <= set("|-")]
            head, *rest = rows
            body.append("<table><tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>"
                                  for r in rest) + "</table>")
            table.clear()

    for line in markdown_report(report).splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
            if line.startswith("## Teacher ensembles"):
                body.append(_curve_svg(report["ensembles"]))
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:]).replace('`', '')}</h1>")
        elif line:
            body.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    flush()
    style = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
             "text-align:right}th{background:#f2f2f2}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>LungKD {html.escape(report['name'])}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_reports(report: dict, folder: Path) -> list[Path]:
    paths = [folder / "report.json", folder / "report.md", folder / "report.html"]
    write_atomic_text(paths[0], json.dumps(report, indent=2))
    write_atomic_text(paths[1], markdown_report(report))
    write_atomic_text(paths[2], html_report(report))
    return paths

