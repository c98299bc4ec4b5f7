"""HTML to PDF with Qt's own writer (QTextDocument laid out onto a QPdfWriter): no browser, no network.

The visit report (core/analysis/visit_pages.py) is HTML that Qt's rich-text engine lays out; the Studio calls
`write_pdf` in its own process, and `lungkd visit-report` (core, which never imports Qt) runs this module as a
program of its own:

    python -m lungkd.app.report_pdf REPORT.html REPORT.pdf

so the engine's process never loads Qt's GUI library, and the import contracts hold without a trick. The PDF is
written whole or not at all (a temporary file renamed onto the target).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QMarginsF
from PySide6.QtGui import QGuiApplication, QPageLayout, QPageSize, QPdfWriter, QTextDocument

from lungkd.core.storage import atomic_path

MARGIN_MM = 15.0


def write_pdf(html: str, target: str | Path, title: str = "") -> Path:
    """The HTML as an A4 PDF at `target` (needs a QGuiApplication)."""
    target = Path(target)
    with atomic_path(target) as tmp:
        writer = QPdfWriter(str(tmp))
        writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                                         QMarginsF(*[MARGIN_MM] * 4), QPageLayout.Unit.Millimeter))
        document = QTextDocument()
        document.setHtml(html)
        writer.setTitle(title or document.metaInformation(QTextDocument.MetaInformation.DocumentTitle))
        writer.setCreator("LungKD")
        document.print_(writer)
        del writer  # the file is finished when the writer goes
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m lungkd.app.report_pdf REPORT.html REPORT.pdf", file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no window: nothing is shown
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    source, target = map(Path, args)
    html = source.read_text(encoding="utf-8")
    write_pdf(html, target)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
