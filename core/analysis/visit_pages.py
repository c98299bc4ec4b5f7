"""A visit report (visit.py) as one self-contained HTML page: its pictures (spectrogram snippets, chest maps)
drawn with matplotlib and embedded as PNG data, no file or network beside it. The HTML keeps to what Qt's
rich-text engine lays out (tables, headings, images with sizes, inline colours, page breaks), so the same page
becomes the PDF through QTextDocument and QPdfWriter (app/report_pdf.py) and opens in any browser.

Names and texts that come from files are escaped: a recording named `<b>` is shown as written.
"""
from __future__ import annotations

import base64
import io
from html import escape


from lungkd.core.analysis.visit import RecordingEntry, VisitReport
from lungkd.core.data.prompts import LOCATION_WORDS

# the Studio's class colours (app/theme.py), for a map read beside it
COLOURS = {"normal": "#68a068", "crackle": "#e8881c", "wheeze": "#2e6ed6", "both": "#9448be"}
MARK, MUTED, POOR_COLOUR = "#8a5a00", "#6e747e", "#d62728"
DB_RANGE = 70.0
# where each ICBHI chest location sits on the map: (panel, x, y); the front seen facing the patient (their right
# on the left), the back seen from behind (their left on the left)
SITES = {"Tc": (0, 0.5, 0.9), "Ar": (0, 0.34, 0.62), "Al": (0, 0.66, 0.62), "Lr": (0, 0.13, 0.42),
         "Ll": (0, 0.87, 0.42), "Pl": (1, 0.34, 0.55), "Pr": (1, 0.66, 0.55)}


def _png(figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _site_colour(crackles: int, wheezes: int) -> str:
    return COLOURS["both" if crackles and wheezes else "crackle" if crackles else "wheeze" if wheezes else "normal"]


def chest_map(locations: dict[str, tuple[int, int]], highlight: set[str] = frozenset(), scale: float = 1.0) -> str:
    """A front and a back outline of the chest, each recorded location a dot in the colour of what was found
    there (crackle and wheeze cycles written beside it), `highlight`ed ones ringed; a PNG data URL."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

    figure = Figure(figsize=(3.4 * scale, 2.0 * scale), dpi=110)
    for panel, title in enumerate(("front", "back")):
        ax = figure.add_axes((panel * 0.5, 0.0, 0.5, 0.9))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_axis_off()
        ax.set_title(title, fontsize=8 * scale, color=MUTED, pad=1)
        ax.add_patch(FancyBboxPatch((0.08, 0.04), 0.84, 0.76, boxstyle="round,pad=0,rounding_size=0.12",
                                    fill=False, edgecolor=MUTED, linewidth=1))
        ax.add_patch(Rectangle((0.42, 0.8), 0.16, 0.16, fill=False, edgecolor=MUTED, linewidth=1))
        for code, (where, x, y) in SITES.items():
            if where != panel:
                continue
            if code not in locations:
                ax.add_patch(Circle((x, y), 0.045, fill=False, edgecolor="#c9ccd1", linewidth=0.8, linestyle=":"))
                continue
            crackles, wheezes = locations[code]
            ax.add_patch(Circle((x, y), 0.06, color=_site_colour(crackles, wheezes)))
            if code in highlight:
                ax.add_patch(Circle((x, y), 0.1, fill=False, edgecolor="black", linewidth=1.6))
            words = f"{code}\nC{crackles} W{wheezes}"
            ax.text(x, y - 0.12, words, ha="center", va="top", fontsize=6.5 * scale, color="#1d2330")
    return _png(figure)


def snippet_image(snippet) -> str:
    """The cycle's spectrogram with a little of the recording on either side, its bounds marked; a PNG data URL."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2.9, 1.5), dpi=120)
    ax = figure.add_axes((0.16, 0.24, 0.82, 0.66))
    frames = snippet.db.shape[0]
    ax.imshow(snippet.db.T, origin="lower", aspect="auto", cmap="viridis", vmin=-DB_RANGE, vmax=0,
              extent=(snippet.shown_from, snippet.shown_from + frames * snippet.seconds_per_frame, 0,
                      snippet.top_hz / 1000))
    for bound in (snippet.start, snippet.end):
        ax.axvline(bound, color="white", linewidth=1.2)
    colour = POOR_COLOUR if snippet.marks else COLOURS.get(snippet.predicted, "#1d2330")
    ax.set_title(f"{snippet.predicted} {snippet.probability:.0%} · {snippet.start:.2f}–{snippet.end:.2f} s",
                 fontsize=7.5, color=colour, pad=2)
    ax.set_xlabel("time (s)", fontsize=6.5, labelpad=1)
    ax.set_ylabel("kHz", fontsize=6.5, labelpad=1)
    ax.tick_params(labelsize=6, length=2, pad=1)
    return _png(figure)


# ---------------------------------------------------------------- the page


def _row(*cells: str, header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{cell}</{tag}>" for cell in cells) + "</tr>"


def _quality(entry: RecordingEntry) -> str:
    verdict = entry.quality or "not checked"
    colour = {"poor": POOR_COLOUR, "warning": MARK}.get(verdict, "#40783f")
    return f"<span style='color:{colour}'><b>{escape(verdict)}</b></span>"


def _summary(report: VisitReport) -> str:
    rows = [_row("recording", "chest location", "quality", "breathing", "cycles", "crackle", "wheeze", header=True)]
    for r in report.recordings:
        rows.append(_row(escape(r.name), escape(r.location_words), _quality(r), escape(r.breathing), str(r.cycles),
                         str(r.crackle_cycles), str(r.wheeze_cycles)))
    return "<table border='1' cellspacing='0' cellpadding='3' width='100%'>" + "".join(rows) + "</table>"


def _model(report: VisitReport) -> str:
    m = report.model
    rows = [("model", escape(m.name)), ("architecture", escape(m.architecture)),
            ("description", escape(m.description) or "—"), ("trained on", escape(m.trained_on)),
            ("training labels", escape(m.training_labels)), ("tested", escape(m.score)),
            ("calibration", escape(m.calibration)), ("versions it was trained with", escape(m.versions)),
            ("folder", escape(m.folder))]
    table = "<table cellspacing='0' cellpadding='2'>" + "".join(
        f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows) + "</table>"
    warnings = "".join(f"<li style='color:{MARK}'>{escape(w)}</li>" for w in m.warnings)
    return "<h2>The model</h2>" + table + (f"<p><b>Its warnings</b></p><ul>{warnings}</ul>" if warnings else
                                           "<p><b>Its warnings:</b> none (its card shows it calibrated, able to "
                                           "mark recordings unlike its training data, and trained on real "
                                           "recordings).</p>")


def _edits(entry: RecordingEntry) -> str:
    if not entry.edits and not entry.history_problems:
        return "<p><b>Changes by a person:</b> none recorded (the annotation was not edited in LungKD).</p>"
    items = []
    for record in entry.edits:
        what = record.changes or ["saved without changing a cycle"]
        actions = f"<br><span style='color:{MUTED}'>as done: {escape('; '.join(record.actions))}</span>" \
            if record.actions else ""
        items.append(f"<li><b>{escape(record.saved)}</b>, {escape(record.user)}: {escape('; '.join(what))}{actions}"
                     "</li>")
    items += [f"<li style='color:{MARK}'>{escape(problem)}</li>" for problem in entry.history_problems]
    return f"<p><b>Changes by a person</b> ({escape(entry.annotation or '')}):</p><ul>{''.join(items)}</ul>"


def _snippets(entry: RecordingEntry) -> str:
    if not entry.snippets:
        return "<p>No cycle was called crackle, wheeze or both.</p>"
    cells = []
    for snippet in entry.snippets:
        truth = f"annotated {escape(snippet.truth)}" if snippet.truth else "not annotated"
        marks = "".join(f"<br><span style='color:{POOR_COLOUR}'>⚠ {escape(m)}</span>" for m in snippet.marks)
        cells.append(f"<td valign='top' width='50%'><img src='{snippet_image(snippet)}' width='270' height='140'><br>"
                     f"<b>{escape(snippet.predicted)}</b>, calibrated probability {snippet.probability:.0%}; {truth}"
                     f"{marks}</td>")
    rows = "".join("<tr>" + "".join(cells[i:i + 2]) + "</tr>" for i in range(0, len(cells), 2))
    more = f"<p>{entry.abnormal_cycles - len(entry.snippets)} more abnormal cycles are not shown (the likeliest " \
           "are).</p>" if entry.abnormal_cycles > len(entry.snippets) else ""
    return f"<p><b>Abnormal cycles</b> ({entry.abnormal_cycles}):</p><table cellpadding='3' width='100%'>{rows}</table>{more}"


def _recording(entry: RecordingEntry) -> str:
    counts = ", ".join(f"{n} {name}" for name, n in entry.class_counts.items())
    reasons = "".join(f"<li>{escape(r)}</li>" for r in entry.quality_reasons)
    unlike = f"<p style='color:{MARK}'>⚠ Most of its cycles are outside the model's training data: do not trust " \
             "these predictions.</p>" if entry.unlike_training else ""
    poor = f", {entry.poor_cycles} of its cycles too poorly recorded for their prediction to mean much" \
        if entry.poor_cycles else ""
    facts = (f"{entry.duration:.1f} s at {entry.sample_rate / 1000:g} kHz" + (f", {escape(entry.device)}"
                                                                            if entry.device else "")
             + f"; {entry.cycles} cycles from {escape(entry.cycle_source)}: {counts}")
    where = {entry.location: (entry.crackle_cycles, entry.wheeze_cycles)} if entry.location else {}
    return (f"<h2 style='page-break-before: always'>{escape(entry.name)}</h2>"
            f"<table><tr><td valign='top'><img src='{chest_map(where, set(where), 0.7)}' width='262' height='154'>"
            f"</td><td valign='top'><p><b>Chest location:</b> {escape(entry.location_words)}<br>{facts}<br>"
            f"<b>Recording quality:</b> {_quality(entry)}{poor}</p>"
            + (f"<ul>{reasons}</ul>" if reasons else "")
            + f"<p><b>Breathing:</b> {escape(entry.breathing)}</p></td></tr></table>{unlike}"
            + _snippets(entry) + _edits(entry))


def _files(report: VisitReport) -> str:
    rows = [_row("file", "sha256", header=True)]
    for r in report.recordings:
        rows.append(_row(escape(r.path), f"<tt>{r.sha256}</tt>"))
        if r.annotation:
            rows.append(_row(escape(r.annotation), f"<tt>{r.annotation_sha256}</tt>"))
    rows += [_row(f"model: {escape(name)}", f"<tt>{digest}</tt>") for name, digest in report.model.checksums.items()]
    return ("<h2 style='page-break-before: always'>Versions and files</h2>"
            f"<p>Made by LungKD {escape(report.lungkd_version)} on {escape(report.created)} (UTC).</p>"
            "<table border='1' cellspacing='0' cellpadding='2'>" + "".join(rows) + "</table>")


def visit_html(report: VisitReport) -> str:
    """The whole report as one HTML document."""
    sites = ", ".join(f"{LOCATION_WORDS.get(code, code)} ({code})" for code in report.locations()) or "none given"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Visit report: {escape(report.title)}</title></head>"
        "<body style='font-family: sans-serif; font-size: 9pt'>"
        f"<h1>Visit report: {escape(report.title)}</h1>"
        f"<p style='color:{MUTED}'>{len(report.recordings)} recording(s) · made {escape(report.created)} (UTC) by "
        f"LungKD {escape(report.lungkd_version)}</p>"
        "<table width='100%' cellpadding='6' style='background-color:#fff4d6'><tr><td>"
        f"<b>Intended use — not a diagnosis.</b> {escape(report.intended_use)}</td></tr></table>"
        f"<h2>The recordings</h2><table><tr><td><img src='{chest_map(report.locations())}' width='320' "
        f"height='188'></td><td valign='top'><p>Recorded at: {escape(sites)}.</p><p>Each dot: a chest location "
        "recorded, coloured by what was found there (crackle, wheeze, both, or neither: normal), with its crackle "
        "(C) and wheeze (W) cycles; a cycle called both counts in each.</p></td></tr></table>"
        + _summary(report) + _model(report) + "".join(_recording(r) for r in report.recordings) + _files(report)
        + "</body></html>")
