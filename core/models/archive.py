"""One file between machines: a LungKD model as a `.lungkd` archive, and back.

A `.lungkd` is a zip of a model folder: its card (`lungkd.json`, which holds the limits and the sha256 and
size of every other file) and those files — safetensors weights, JSON configuration and a BTS model's
tokenizer. Export checks the folder against its card first, so what travels is what was trained.

Import trusts nothing in the file (a model comes from someone else). Before a byte is unpacked it refuses an
archive whose members are not exactly the card and the files its card lists; whose names could leave the
folder (absolute, `..`, a folder part, a backslash); that holds a symbolic link, a pickle (.bin, .pt, .pth,
.pkl, .ckpt: loading one can run any code) or any file that is not .safetensors, .json or .txt; whose sizes
are not the card's; or whose card does not validate (core.models.card.parse_card). It then unpacks each file
checking its bytes against the card's size and sha256, into a hidden folder renamed into place only when all
is well (core.storage.atomic_folder). Every refusal names the archive and what is wrong.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lungkd.core.errors import LungKDError
from lungkd.core.models.card import (CARD_FILE, MAX_CARD_BYTES, DamagedModelError, ModelCard, ParentModel, card_json,
                                     parse_card, read_model_card, write_model_card)
from lungkd.core.models.inventory import card_name
from lungkd.core.models.registry import ARCHITECTURES, check_saved_files
from lungkd.core.storage import atomic_folder, atomic_path, file_sha256
from lungkd.core.text import printable
from lungkd.core.workspace.layout import ARCHIVE_SUFFIX, unpacked_folder, valid_name

MODEL_FILE_SUFFIXES = (".safetensors", ".json", ".txt")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
MAX_MEMBERS = 64  # a BTS model folder holds 9 files
MAX_MODEL_BYTES = 16 << 30  # ten times the largest model LungKD trains (BTS, 0.6 GB)
MAX_EXPANSION = 100  # safetensors hardly compress; text does 3-5x. Beyond this a member is a zip bomb
_CHUNK = 1 << 20
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
ARCHIVE_FIX = ("ask for the model again, exported with `lungkd models export MODEL OUT.lungkd`; never unpack a "
               "refused archive by hand.")
NOT_A_MODEL_FIX = "give a model folder: one with a lungkd.json (`lungkd runs` and the Studio's model list show them)."


class RefusedArchiveError(LungKDError):
    """A .lungkd that is not exactly a LungKD model folder, or whose files are not the ones its card lists."""


def _refuse(path: Path, message: str) -> RefusedArchiveError:
    return RefusedArchiveError(message, path=path, fix=ARCHIVE_FIX)


# ---------------------------------------------------------------- export


def model_files(folder: Path, card: ModelCard) -> list[str]:
    """The files that make the model: those its card lists (a card written before checksums: every model file
    in the folder). A file a .lungkd never carries (a pickle) is refused, naming it."""
    names = sorted(card.checksums) or sorted(
        p.name for p in folder.iterdir() if p.is_file() and p.name != CARD_FILE and p.suffix in MODEL_FILE_SUFFIXES)
    for name in names:
        if Path(name).suffix not in MODEL_FILE_SUFFIXES:
            raise LungKDError(f"the model holds {name}, which a .lungkd never carries (only .safetensors weights and "
                              ".json or .txt configuration).", path=folder / name,
                              fix="save the model again with LungKD, which writes safetensors.")
    return names


def checked_model(folder: str | Path) -> tuple[ModelCard, list[str]]:
    """A model folder's card, with the sha256 and size of each of its files, after checking every file against
    the card: what an export writes."""
    folder = Path(folder)
    card = read_model_card(folder)
    if card is None:
        raise LungKDError("not a LungKD model folder (no lungkd.json).", path=folder, fix=NOT_A_MODEL_FIX)
    check_saved_files(folder)
    names = model_files(folder, card)
    return card.replace(checksums={n: file_sha256(folder / n) for n in names},
                        file_sizes={n: (folder / n).stat().st_size for n in names}), names


def export_archive(folder: str | Path, out: str | Path) -> Path:
    """Writes the model folder as one .lungkd file, whole or not at all. Weights are stored as they are (floats do
    not compress), configuration deflated."""
    folder, out = Path(folder), Path(out)
    if out.suffix != ARCHIVE_SUFFIX:
        raise LungKDError(f"an archive's name ends in {ARCHIVE_SUFFIX}.", path=out,
                          fix=f"name it {out.stem}{ARCHIVE_SUFFIX}, or give --folder for a folder.")
    card, names = checked_model(folder)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        archive.writestr(CARD_FILE, card.text(), compress_type=zipfile.ZIP_DEFLATED)  # first: read without the rest
        for name in names:
            method = zipfile.ZIP_STORED if name.endswith(".safetensors") else zipfile.ZIP_DEFLATED
            archive.write(folder / name, name, compress_type=method)
    return out


# ---------------------------------------------------------------- what import refuses


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member cannot be part of a model folder, or None."""
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "climbs out of the folder ('..')"
    if name.endswith("/") or info.is_dir():
        return "is a folder (a .lungkd holds its files at the top, no folders)"
    if "/" in name or "\\" in name:
        return "lies in a folder (a .lungkd holds its files at the top, no folders)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    suffix = Path(name).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return f"is a pickle ({', '.join(PICKLE_SUFFIXES[:5])}: loading one can run any code)"
    if suffix not in MODEL_FILE_SUFFIXES or not _FILE_NAME.match(name):
        return "is not a file a LungKD model holds (.safetensors weights, .json or .txt configuration)"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"is compressed with method {info.compress_type} (a .lungkd stores or deflates)"
    if info.file_size > MAX_EXPANSION * max(info.compress_size, 1) + _CHUNK:
        return f"expands {info.file_size // max(info.compress_size, 1):,} times (a zip bomb, not model weights)"
    return None


def _open_archive(path: Path) -> zipfile.ZipFile:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _refuse(path, f"the archive cannot be read ({exc.strerror or exc}).") from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, "this is not a file (a folder, a pipe or a device).")
    if st.st_size > MAX_MODEL_BYTES:
        raise _refuse(path, f"{st.st_size:,} bytes is larger than any LungKD model ({MAX_MODEL_BYTES >> 30} GB).")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _refuse(path, f"not a .lungkd archive (not a zip file: {exc}).") from None


def _archive_card(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> ModelCard:
    if info.file_size > MAX_CARD_BYTES:
        raise _refuse(path, f"its lungkd.json is {info.file_size:,} bytes; no model card is larger than "
                            f"{MAX_CARD_BYTES >> 20} MB.")
    try:
        raw = archive.open(info).read(MAX_CARD_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _refuse(path, f"its lungkd.json is damaged ({exc}).") from None
    try:
        return parse_card(card_json(raw, f"{path}:{CARD_FILE}"), f"{path}:{CARD_FILE}")
    except DamagedModelError as exc:
        raise _refuse(path, f"its model card is refused: {exc.problem.message}") from None


def _checked_archive(archive: zipfile.ZipFile, path: Path) -> ModelCard:
    """The archive's card, after checking that its members are exactly the card and the files it lists, each of
    its size; RefusedArchiveError naming the first thing wrong."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _refuse(path, f"it holds {len(infos):,} members; a LungKD model folder holds at most {MAX_MEMBERS}.")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        problem = _member_problem(info)
        if problem is not None:
            raise _refuse(path, f"the member '{printable(info.filename)}' {problem}.")
        if info.filename in members:
            raise _refuse(path, f"the member '{info.filename}' is there twice.")
        members[info.filename] = info
    if CARD_FILE not in members:
        raise _refuse(path, "it holds no lungkd.json: it is not a LungKD model.")
    card = _archive_card(archive, members.pop(CARD_FILE), path)
    if card.architecture not in ARCHITECTURES:
        raise _refuse(path, f"its card names architecture '{card.architecture}', which this LungKD does not know.")
    listed = set(card.checksums)
    if not listed:
        raise _refuse(path, "its card lists no files, so none can be checked.")
    unknown, missing = sorted(set(members) - listed), sorted(listed - set(members))
    if unknown:
        raise _refuse(path, f"the member '{unknown[0]}' is not one of the files its card lists "
                            f"({', '.join(sorted(listed))}).")
    if missing:
        raise _refuse(path, f"the file '{missing[0]}' its card lists is not in the archive.")
    for name in sorted(listed):
        expected = card.file_sizes.get(name)
        if expected is None:
            raise _refuse(path, f"its card gives no size for '{name}'.")
        if members[name].file_size != expected:
            raise _refuse(path, f"'{name}' is {members[name].file_size:,} bytes where its card says {expected:,}.")
    if sum(card.file_sizes.values()) > MAX_MODEL_BYTES:
        raise _refuse(path, f"its files add up to more than any LungKD model ({MAX_MODEL_BYTES >> 30} GB).")
    return card


def read_archive_card(path: str | Path) -> ModelCard:
    """The card of a .lungkd, once its members are checked (not yet their bytes): what is shown before import."""
    path = Path(path)
    with _open_archive(path) as archive:
        return _checked_archive(archive, path)


# ---------------------------------------------------------------- import


def _unpack_member(archive: zipfile.ZipFile, name: str, card: ModelCard, target: Path, path: Path) -> None:
    """One file, written as it is read, never beyond its size in the card; its sha256 must be the card's."""
    size, digest, written = card.file_sizes[name], hashlib.sha256(), 0
    try:
        with archive.open(name) as source, open(target, "xb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > size:
                    raise _refuse(path, f"'{name}' holds more than the {size:,} bytes its card says.")
                digest.update(chunk)
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise _refuse(path, f"'{name}' is damaged ({exc}).") from None
    if written != size or digest.hexdigest() != card.checksums[name]:
        raise _refuse(path, f"the bytes of '{name}' are not the ones its card lists (their sha256 differs): the file "
                            "was changed or damaged after export.")


def unpack_archive(path: str | Path, target: str | Path) -> ModelCard:
    """Checks the archive whole and unpacks it as the model folder `target` (replacing what is there), which
    appears only when every file is checked."""
    path, target = Path(path), Path(target)
    with _open_archive(path) as archive:
        card = _checked_archive(archive, path)
        with atomic_folder(target) as tmp:
            for name in sorted(card.checksums):
                _unpack_member(archive, name, card, tmp / name, path)
            write_model_card(tmp, card)
    return card


@dataclass(frozen=True)
class ImportedModel:
    folder: Path
    card: ModelCard
    already_there: bool  # the same model was imported before, under this name


def _destination(into: Path, name: str, card: ModelCard) -> tuple[Path, bool]:
    """`into/name`, or the first of name-2, name-3... that is free; a folder holding this very model already is
    taken as it is."""
    for number in range(1, 1000):
        folder = into / (name if number == 1 else valid_name(name, f"-{number}"))
        if not folder.exists():
            return folder, False
        try:
            if read_model_card(folder) == card:
                return folder, True
        except LungKDError:
            continue
    raise LungKDError(f"a thousand models named {name} are there already.", path=into, fix="give another --into.")


def import_archive(path: str | Path, into: str | Path) -> ImportedModel:
    """Checks the .lungkd and unpacks it into `into` (the workspace's models folder), named after the file."""
    path, into = Path(path), Path(into)
    card = read_archive_card(path)
    folder, there = _destination(into, valid_name(path.stem), card)
    if not there:
        unpack_archive(path, folder)
    return ImportedModel(folder, card, there)


# ---------------------------------------------------------------- starting weights


def is_archive(source: str | os.PathLike | None) -> bool:
    return source is not None and os.fspath(source).endswith(ARCHIVE_SUFFIX)


def starting_model_card(source: str | os.PathLike | None) -> ModelCard | None:
    """The card of a LungKD model named as starting weights (a model folder, or a .lungkd), checked; None for
    anything else (a Hugging Face id, a PANNs file, a folder of another library)."""
    if source is None:
        return None
    path = Path(os.fspath(source)).expanduser()
    if is_archive(source) and path.is_file():
        return read_archive_card(path)
    return read_model_card(path) if path.is_dir() else None


def starting_weights(source: str | None, workspace: Path) -> str | None:
    """What `create_model` loads for the `pretrained` of a recipe: a .lungkd is checked and unpacked into the
    workspace's cache once (by the sha256 of its bytes) and the folder given instead; anything else as it is."""
    path = Path(source).expanduser() if is_archive(source) else None
    if path is None or not path.is_file():
        return source  # create_model says what is wrong with anything that is not an archive
    target = unpacked_folder(workspace) / file_sha256(path)
    try:
        if read_model_card(target) is not None:
            check_saved_files(target)
            return str(target)
    except DamagedModelError:
        pass  # unpacked again below
    unpack_archive(path, target)
    return str(target)


def starting_parent(source: str | None) -> ParentModel | None:
    """The parent a model started from a LungKD model (a folder or a .lungkd) names in its card: that model, by
    what made it, and the sha256 of its card."""
    card = starting_model_card(source)
    if card is None:
        return None
    return ParentModel(name=(card_name(card) or Path(source).name)[:200], how="starting weights",
                       card_sha256=hashlib.sha256(card.text().encode()).hexdigest())
