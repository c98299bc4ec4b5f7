"""A saved model's files, checked whole before a tensor is built.

A model folder is what users pass to each other, so every file in it is untrusted input, as its card is
(core.models.card). Before a library opens anything: every file is a regular file and matches the sha256 its
card recorded; config.json is a bounded JSON object of the architecture's kind that describes one of its sizes
(for a model trained from random weights, the size its card names); and the weights are safetensors whose
header gives exactly the tensors — names, shapes and dtypes — the architecture has at that size, with as many
bytes as the header says. A file cut short, a pickle in place of safetensors, a configuration for another size
and a head with other tensors are each a DamagedModelError naming the file and what is wrong.

The tensors an architecture has are read off its backbone built on PyTorch's meta device (shapes, no memory),
under the names `save_pretrained` gives them (transformers 5 writes a checkpoint's original names, e.g. AST's
`encoder.layer.0.attention.attention.query`).
"""
from __future__ import annotations

import json
import math
import os
import stat
import struct
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lungkd.core.models.card import CARD_FILE, DAMAGED_FIX, SIZES, DamagedModelError, ModelCard
from lungkd.core.storage import UnreadableFileError, file_sha256, read_regular_file

if TYPE_CHECKING:  # torch is imported only where tensors are built: listing models needs none
    from lungkd.core.models.classifiers import Classifier

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HEAD_FILE = "head.safetensors"
MAX_CONFIG_BYTES = 1 << 20  # a backbone's config.json is a few kB
MAX_JSON_BYTES = 32 << 20  # tokenizer files (RoBERTa's tokenizer.json: 2 MB)
MAX_HEADER_BYTES = 100 << 20  # the safetensors format's own limit
ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
              "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}
# Configuration values that do not decide what the backbone is: flags of the forward call, label names, token ids.
_NOT_STRUCTURE = {"output_hidden_states", "output_attentions", "return_dict", "is_encoder_decoder", "use_cache",
                  "chunk_size_feed_forward", "torchscript", "tie_word_embeddings", "out_indices", "label2id"}

Tensors = dict[str, tuple[str, tuple[int, ...]]]  # name: (safetensors dtype, shape)


def damaged(message: str, path: Path) -> DamagedModelError:
    return DamagedModelError(message, path=path, fix=DAMAGED_FIX)


def check_model_folder(folder: str | os.PathLike, card: ModelCard, classifier: type[Classifier], *,
                       checksums: bool = True) -> str:
    """Raises DamagedModelError when a file of the model folder is not what LungKD wrote; returns the size its
    config.json describes. `checksums=False` leaves out the sha256 of the files (a listing of many models)."""
    folder = Path(folder)
    check_regular_files(folder)
    if checksums:
        check_checksums(folder, card)
    size = config_size(read_json(folder / CONFIG_FILE, MAX_CONFIG_BYTES), card, classifier, folder / CONFIG_FILE)
    backbone, features = expected_tensors(classifier, size)
    check_tensors(folder / WEIGHTS_FILE, dict(backbone))
    check_tensors(folder / HEAD_FILE, {"weight": ("F32", (card.num_classes, features)),
                                       "bias": ("F32", (card.num_classes,))})
    for path in sorted(folder.glob("*.json")):  # the tokenizer's files
        if path.name not in (CONFIG_FILE, CARD_FILE) and not path.name.startswith("."):
            read_json(path, MAX_JSON_BYTES)
    return size


def check_regular_files(folder: Path) -> None:
    """A library opening a FIFO named tokenizer.json would wait for ever; a device, read for ever."""
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            continue
        try:
            mode = os.stat(entry.path).st_mode
        except OSError as exc:
            raise damaged(f"the file cannot be read ({exc.strerror or exc}).", Path(entry.path)) from None
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise damaged("it is not a regular file (a pipe, a device or a socket).", Path(entry.path))


def check_checksums(folder: Path, card: ModelCard) -> None:
    """Every file the card recorded is there with the same size and sha256 (a byte flipped on disk loads without
    complaint otherwise). Cards written before checksums were recorded are taken as they are."""
    for name, digest in card.checksums.items():
        path = folder / name
        try:
            size = path.stat().st_size
            if card.file_sizes.get(name, size) != size:  # said before hashing what may be a huge file
                raise damaged(f"the file is {size:,} bytes where lungkd.json says {card.file_sizes[name]:,} (cut short "
                              "or changed after the model was saved).", path)
            actual = file_sha256(path)
        except OSError:
            raise damaged("a file of the saved model is missing or unreadable.", path) from None
        if actual != digest:
            raise damaged("the file's bytes changed after the model was saved (its sha256 differs from the one in "
                          "lungkd.json).", path)


def read_json(path: Path, max_bytes: int) -> dict:
    """A JSON object from a regular file of at most `max_bytes`."""
    try:
        document = json.loads(read_regular_file(path, max_bytes).decode("utf-8"))
    except UnreadableFileError as exc:
        raise damaged(f"the file is not read: {exc.reason}.", path) from None
    except FileNotFoundError:
        raise damaged("the file is missing.", path) from None
    except OSError as exc:
        raise damaged(f"the file cannot be read ({exc.strerror or exc}).", path) from None
    except RecursionError:
        raise damaged("the file is JSON nested too deep.", path) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise damaged(f"the file is not JSON ({exc}).", path) from None
    if not isinstance(document, dict):
        raise damaged("the file is not a JSON object.", path)
    return document


# ---------------------------------------------------------------- config.json


def structure(config: Any) -> dict[str, Any]:
    """What decides a backbone's tensors in its configuration: every whole number, flag and list of them, by
    dotted name (CLAP's text_config.hidden_size); not the forward call's flags, label names or token ids."""
    found, stack = {}, [("", config.to_dict())]
    while stack:
        prefix, table = stack.pop()
        for key, value in table.items():
            if key in _NOT_STRUCTURE or key == "id2label" or key.endswith("_token_id"):
                continue
            if isinstance(value, dict):
                stack.append((f"{prefix}{key}.", value))
            elif isinstance(value, int) or (isinstance(value, (list, tuple)) and value
                                            and all(isinstance(v, int) for v in value)):
                found[prefix + key] = list(value) if isinstance(value, (list, tuple)) else value
    return found


def config_size(document: dict, card: ModelCard, classifier: type[Classifier], path: Path) -> str:
    """The size (full or tiny) whose structure `document` has; refused when it has neither's, or — for a model
    trained from random weights, whose size the card names — another size than the card's."""
    arch = card.architecture
    config_class = classifier.backbone_class().config_class
    if document.get("model_type") != config_class.model_type:
        raise damaged(f"the configuration is of model type {str(document.get('model_type'))[:40]!r}, not "
                      f"{config_class.model_type!r} as a {arch} model's.", path)
    try:
        found = structure(config_class.from_dict(document))
    except Exception as exc:  # noqa: BLE001 - a library's parser raises many kinds for a value of the wrong type
        raise damaged(f"the configuration is not a {arch} configuration ({type(exc).__name__}: "
                      f"{str(exc).strip()[:200]}).", path) from None
    wanted = {size: structure(classifier.backbone_config(size)) for size in SIZES}
    matching = _sizes_matching(found, wanted)
    if not matching:
        key = next(k for k, v in wanted[card.size].items() if found.get(k) != v)
        raise damaged(f"the configuration describes no {arch} LungKD knows: {key} is {found.get(key)} where a "
                      f"{card.size} {arch} has {wanted[card.size][key]}.", path)
    size = card.size if card.size in matching else matching[0]
    if card.pretrained is None and size != card.size:
        raise damaged(f"the configuration is a {size} {arch}'s, but the model card says the model is {card.size}.",
                      path)
    return size


def _sizes_matching(found: dict[str, Any], wanted: dict[str, dict[str, Any]]) -> list[str]:
    return [size for size in SIZES if all(found.get(key) == value for key, value in wanted[size].items())]


def size_of(config: Any, classifier: type[Classifier]) -> str | None:
    """The size whose structure a backbone's configuration has; None for one of neither (a checkpoint's own)."""
    matching = _sizes_matching(structure(config), {size: structure(classifier.backbone_config(size))
                                                   for size in SIZES})
    return matching[0] if matching else None


# ---------------------------------------------------------------- safetensors


@lru_cache(maxsize=32)
def expected_tensors(classifier: type[Classifier], size: str) -> tuple[tuple[tuple[str, tuple[str, tuple]], ...], int]:
    """The tensors `save_pretrained` writes for the backbone at `size`, and the width of its features (the head's
    input), from the backbone built on the meta device."""
    import torch

    with torch.device("meta"):
        backbone = classifier.backbone_class()(classifier.backbone_config(size))
    state = _as_saved(backbone, backbone.state_dict())
    tensors = tuple((name, (_dtype_name(t.dtype), tuple(t.shape))) for name, t in state.items())
    return tensors, classifier.feature_dim(backbone)


def _as_saved(backbone, state: dict) -> dict:
    """The names save_pretrained gives: transformers 5 reverts its renamings to the checkpoint's, 4.x keeps them."""
    if not type(backbone).__module__.startswith("transformers."):
        return state
    try:
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:
        return state
    return revert_weight_conversion(backbone, state)


def _dtype_name(dtype) -> str:
    return {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "int32": "I32",
            "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}[str(dtype).removeprefix("torch.")]


def safetensors_header(path: Path) -> Tensors:
    """The tensors a safetensors file holds, from its header, checked against the file: a known dtype and a shape
    for each, their bytes laid end to end, exactly filling the file after the header."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise damaged("the weights file is missing.", path) from None
    except OSError as exc:
        raise damaged(f"the weights file cannot be read ({exc.strerror or exc}).", path) from None
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        start = f.read(8)
        length = struct.unpack("<Q", start)[0] if len(start) == 8 else -1
        if not 2 <= length <= min(size - 8, MAX_HEADER_BYTES):
            raise damaged(_not_safetensors(start), path)
        text = f.read(length)
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise damaged(_not_safetensors(start), path) from None
    if not isinstance(header, dict):
        raise damaged(_not_safetensors(start), path)
    header.pop("__metadata__", None)
    return _tensors(header, size - 8 - length, path)


def _not_safetensors(start: bytes) -> str:
    if start.startswith(b"PK\x03\x04") or start.startswith(b"\x80"):
        return ("the weights file is a pickle (as torch.save writes), not safetensors: LungKD never unpickles a model "
                "folder's weights, which could run any code.")
    return "the weights file is not safetensors (its header is missing or damaged)."


def _tensors(header: dict, data_bytes: int, path: Path) -> Tensors:
    tensors, spans = {}, []
    for name, entry in header.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("dtype"), str) and entry["dtype"] in ITEM_BYTES \
            and isinstance(entry.get("shape"), list) \
            and all(isinstance(n, int) and n >= 0 for n in entry["shape"]) \
            and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2 \
            and all(isinstance(n, int) for n in entry["data_offsets"])
        if not ok:
            raise damaged(f"the weights file's header describes tensor {name[:80]!r} wrongly.", path)
        begin, end = entry["data_offsets"]
        if end - begin != math.prod(entry["shape"]) * ITEM_BYTES[entry["dtype"]]:
            raise damaged(f"the weights file's header gives tensor {name[:80]!r} a size its shape does not have.",
                          path)
        tensors[name] = (entry["dtype"], tuple(entry["shape"]))
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise damaged("the weights file's tensors overlap or leave gaps.", path)
        position = end
    if position != data_bytes:
        what = "cut short" if position > data_bytes else "longer than its tensors"
        raise damaged(f"the weights file is {what}: its header describes {position:,} bytes of tensors, the file "
                      f"holds {data_bytes:,}.", path)
    return tensors


def check_tensors(path: Path, expected: Tensors) -> None:
    """The file holds exactly the `expected` tensors, each of its dtype and shape."""
    found = safetensors_header(path)
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        parts = ([f"lacks {_names(missing)}"] if missing else []) + ([f"has no place for {_names(extra)}"]
                                                                     if extra else [])
        raise damaged(f"the weights file does not fit the model: it {' and '.join(parts)}.", path)
    for name, (dtype, shape) in expected.items():
        if found[name] != (dtype, shape):
            got_dtype, got_shape = found[name]
            raise damaged(f"the weights file's tensor {name} is {got_dtype} {list(got_shape)} where the model needs "
                          f"{dtype} {list(shape)}.", path)


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n[:80]) for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")
