"""The small text files of a dataset (annotations, split, demographics, diagnosis): read whole only when they
are of a plausible size, as UTF-8 with or without a byte-order mark, with an error that names the file for
anything else."""
from __future__ import annotations

from pathlib import Path

from lungkd.core.errors import DataError
from lungkd.core.storage import UnreadableFileError, read_regular_file

# ICBHI's largest annotation file has 63 lines and its split file 920; these allow a day of breathing
# cycles or a hundred thousand recordings and refuse what no dataset file is before it is read whole.
MAX_TEXT_BYTES = 4 << 20
MAX_TEXT_LINES = 100_000


def read_text_bytes(path: str | Path, what: str, fix: str) -> bytes:
    """The bytes of a regular file of a plausible size; DataError, naming the file, for anything else (a FIFO or
    a device refused by its type, before a byte is read; a file too large by its size; one that cannot be read)."""
    path = Path(path)
    try:
        return read_regular_file(path, MAX_TEXT_BYTES)
    except UnreadableFileError as exc:
        if "larger than" in exc.reason:
            raise DataError(f"more than {MAX_TEXT_BYTES // (1 << 20)} MB, far larger than any {what}; not read.",
                            path=path, fix=f"check that this is the right file; {fix}") from None
        raise DataError(f"the {what} is not read: {exc.reason}.", path=path,
                        fix=f"give a text file; {fix}") from None
    except PermissionError:
        raise DataError(f"permission denied: the {what} cannot be read.", path=path,
                        fix="give your user read permission (e.g. `chmod u+r FILE`).") from None
    except OSError as exc:
        raise DataError(f"the {what} cannot be read ({exc.strerror or exc}).", path=path,
                        fix="check the file, or copy it again.") from None


def read_text_lines(path: str | Path, what: str, fix: str) -> list[str]:
    """The lines of the file; DataError, naming the file, when it is unreadable, too large or not text.
    `what` names the kind of file in messages ("annotation file"), `fix` says what a good one looks like."""
    path = Path(path)
    raw = read_text_bytes(path, what, fix)
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark from a Windows editor is fine
    except UnicodeDecodeError:
        raise DataError(f"not a text {what} (it is not UTF-8 text).", path=path, fix=fix) from None
    lines = text.splitlines()
    if len(lines) > MAX_TEXT_LINES:
        raise DataError(f"{len(lines):,} lines, far more than any {what} has (at most {MAX_TEXT_LINES:,}); not read.",
                        path=path, fix=f"check that this is the right file; {fix}")
    return lines
