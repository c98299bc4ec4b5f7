"""A model folder that is also a Hugging Face model repository: `lungkd models export MODEL OUT --folder`.

The folder holds what a model folder holds (the checked files and the card) and a README.md: the Hub's model
card, YAML front matter (license, tags, datasets, metrics and a model-index of its Scores) generated from
`lungkd.json`, above the card's sections in words (core.models.card_summary). `hf upload OWNER/NAME OUT`
publishes it, and `pretrained = "OWNER/NAME"` (or the folder itself) loads it back through the registry."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from lungkd.core.models.archive import checked_model
from lungkd.core.models.card import ModelCard, write_model_card
from lungkd.core.models.card_summary import card_sections
from lungkd.core.storage import atomic_folder
from lungkd.core.text import markdown_text
from lungkd.core.workspace.layout import valid_name

README_FILE = "README.md"
DEFAULT_LICENSE = "other"  # the weights carry their training data's terms, which only their owner can state
TAGS = ("lungkd", "audio-classification", "respiratory-sounds", "lung-sounds", "icbhi")


def _dataset_id(name: str) -> str:
    return valid_name(name).lower()


def front_matter(card: ModelCard, name: str, license: str = DEFAULT_LICENSE) -> dict:
    """The Hub's metadata of the model: what it is, what it learnt from and what it scores."""
    meta: dict = {"license": license, "library_name": "lungkd", "pipeline_tag": "audio-classification",
                  "tags": [*TAGS, card.architecture, *([card.role] if card.role else [])]}
    if card.training_data is not None:
        meta["datasets"] = [_dataset_id(card.training_data.name)]
    if card.test is not None and card.test.score is not None:
        meta["metrics"] = ["icbhi_score", "specificity", "sensitivity"]
        data = card.test_data
        dataset = {"name": data.dataset, "type": _dataset_id(data.dataset), "split": data.split} if data else \
            {"name": "unknown", "type": "unknown"}
        values = (("icbhi_score", "Score", card.test.score), ("specificity", "Sp", card.test.sp),
                  ("sensitivity", "Se", card.test.se))
        meta["model-index"] = [{"name": name, "results": [{
            "task": {"type": "audio-classification", "name": "Respiratory sound classification"},
            "dataset": dataset,
            "metrics": [{"type": kind, "name": label, "value": round(value, 2)} for kind, label, value in values
                        if value is not None]}]}]
    return meta


def readme_text(card: ModelCard, name: str, license: str = DEFAULT_LICENSE) -> str:
    """README.md: the front matter, then the card's sections and how to use the model, as Markdown that shows
    the card's words as written."""
    body = [f"# {markdown_text(name)}", "",
            "A lung-sound classifier trained with LungKD: normal, crackle, wheeze or both for each breathing "
            "cycle. For research and demonstration, not diagnosis.", ""]
    for section in card_sections(card):
        body += [f"## {section.title}", "", *(f"- {markdown_text(line)}" for line in section.lines), ""]
    body += ["## Use", "", "```sh", f"lungkd predict {name} recording.wav      # this folder, downloaded",
             "```", "", f'As the starting weights of a {card.architecture} recipe: `pretrained = "OWNER/{name}"`. '
             "`lungkd.json` holds the full card: the input contract, calibration, limits and the sha256 of every "
             "file.", ""]
    matter = yaml.safe_dump(front_matter(card, name, license), sort_keys=False, allow_unicode=True)
    return f"---\n{matter}---\n\n" + "\n".join(body)


def export_folder(folder: str | Path, out: str | Path, license: str = DEFAULT_LICENSE) -> Path:
    """Writes the checked model folder and its README.md as the folder `out`, whole or not at all."""
    folder, out = Path(folder), Path(out)
    card, names = checked_model(folder)
    with atomic_folder(out) as tmp:
        for name in names:
            shutil.copyfile(folder / name, tmp / name)
        write_model_card(tmp, card)
        (tmp / README_FILE).write_text(readme_text(card, out.name, license), encoding="utf-8")
    return out
