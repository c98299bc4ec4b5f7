"""Text from users and their files (recording, experiment and file names), made safe for where it is shown:
a terminal, a spreadsheet, a Markdown report. Names are shown as they are, never interpreted."""
from __future__ import annotations

import html
import re

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as the start of a formula (OWASP)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&!#])")
_MARKDOWN_ESCAPED = re.compile(r"\\([\\`*_\[\]<>|~&!#])")


def printable(text: str) -> str:
    """`text` with the bytes of a file name that is not valid UTF-8 shown as U+FFFD. Python keeps such bytes
    as lone surrogates, which no terminal, Qt label or UTF-8 file can take."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the bytes of the name, as the file system has them
    except UnicodeEncodeError:  # a surrogate that did not come from a file name
        raw = text.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def html_text(text: str) -> str:
    """Text for a rich-text label (Qt, HTML): shown as written, line breaks kept."""
    return html.escape(printable(str(text))).replace("\n", "<br>")


def spreadsheet_cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a leading apostrophe."""
    text = printable(text)
    return "'" + text if text.startswith(_FORMULA_START) else text


def markdown_text(text: str) -> str:
    """Text quoted in Markdown, shown as written: what Markdown (or HTML inside it) could read as markup is
    escaped with a backslash."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", printable(str(text)))


def unescape_markdown(text: str) -> str:
    """The inverse of `markdown_text`, for a renderer that reads our own Markdown."""
    return _MARKDOWN_ESCAPED.sub(r"\1", text)
