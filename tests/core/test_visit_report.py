"""`lungkd visit-report` (core/analysis/visit.py, visit_pages.py; the PDF by app/report_pdf.py in a process of its
own): one document per patient visit, each part found in the PDF's text as Qt's PDF reader (QtPdf) extracts it,
and in the HTML. Synthetic recordings in ICBHI layout, two of one visit and one of another; one annotation edited
and saved, so the report has a person's change to show."""
import shutil

import pytest
from PySide6.QtPdf import QPdfDocument

from lungkd.core.about import lungkd_version
from lungkd.core.analysis.visit import sha256_of
from lungkd.core.cli import main
from lungkd.core.data.annotation_io import file_digest, read_annotation_spans, save_annotation
from lungkd.core.data.edit_history import user_name
from lungkd.core.data.prompts import LOCATION_WORDS
from lungkd.core.models.card import model_notes, read_model_card
from tiny_model import tiny_model_folder

VISIT, OTHER = ("102_1b3_Lr_mc_LittC2SE", "102_1b3_Tc_mc_LittC2SE"), "102_2b1_Ar_sc_LittC2SE"


@pytest.fixture(scope="module")
def recordings(synthetic_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("visit")
    for name in (*VISIT, OTHER):
        for suffix in (".wav", ".txt"):
            shutil.copy(synthetic_dir / f"{name}{suffix}", folder / f"{name}{suffix}")
    annotation = folder / f"{VISIT[0]}.txt"
    spans, _ = read_annotation_spans(annotation)
    edited = [spans[0].__class__(spans[0].start, spans[0].end, 3 - (spans[0].label or 0)), *spans[1:]]
    save_annotation(annotation, edited, file_digest(annotation), actions=["Set cycle 1 to another class"])
    return folder


@pytest.fixture(scope="module")
def model_folder(synthetic_dir, tmp_path_factory):
    return tiny_model_folder(synthetic_dir, tmp_path_factory)


def pdf_text(path, qapp) -> str:
    """The PDF's text, every page, without white space (a table cell wraps long names and hashes)."""
    document = QPdfDocument()
    assert document.load(str(path)) == QPdfDocument.Error.None_
    text = "".join(document.getAllText(page).text() for page in range(document.pageCount()))
    return "".join(text.split())


def squeezed(text: str) -> str:
    return "".join(text.split())


def test_one_pdf_per_visit_holds_every_part(recordings, model_folder, tmp_path, qapp, capsys):
    assert main(["visit-report", str(recordings), "--model", str(model_folder), "--out", str(tmp_path / "v.pdf")]) == 0
    first, second = tmp_path / "v-102_1b3.pdf", tmp_path / "v-102_2b1.pdf"
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name, second.name]
    text, other = pdf_text(first, qapp), pdf_text(second, qapp)
    card = read_model_card(model_folder)

    assert squeezed("Visit report: patient 102, session 1b3") in text
    assert squeezed("Intended use — not a diagnosis.") in text and "notamedicaldevice" in text
    for part in ("The model", card.architecture, "trained on", "calibrated by temperature",
                 f"Score {card.test.score:.1f}", "Its warnings", *model_notes(card).warnings()):
        assert squeezed(part) in text, part
    for name in VISIT:
        assert name in text and name not in other
        assert sha256_of(recordings / f"{name}.wav") in text  # the files the report rests on
    assert OTHER in other and OTHER not in text
    for code in ("Lr", "Tc"):
        assert squeezed(LOCATION_WORDS[code]) in text
    assert "Recordingquality:" in text and "breaths/min" in text and "Breathing:" in text
    assert squeezed("Abnormal cycles") in text or squeezed("No cycle was called crackle, wheeze or both") in text
    assert "calibratedprobability" in text or "Nocyclewascalled" in text
    # what a person changed: who, and what (the edit saved above)
    assert squeezed("Changes by a person") in text and squeezed(user_name()) in text
    assert "changedtheclassofthecycle" in text and squeezed("Set cycle 1 to another class") in text
    assert squeezed(f"Made by LungKD {lungkd_version()}") in text
    for name, digest in card.checksums.items():
        assert digest in text
    assert "wrote the report of patient 102, session 1b3 (2 recording(s))" in capsys.readouterr().err


def test_the_html_is_one_self_contained_page_with_its_pictures(recordings, model_folder, tmp_path):
    target = tmp_path / "visit.html"
    assert main(["visit-report", *(str(recordings / f"{n}.wav") for n in VISIT), "--model", str(model_folder),
                 "--out", str(target)]) == 0
    html = target.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 3  # the visit's chest map and each recording's
    assert "http" not in html.replace("https://", "")  # nothing fetched from anywhere
    assert all(name in html for name in VISIT) and "not a diagnosis" in html


def test_a_wrong_output_name_or_an_existing_file_is_refused(recordings, model_folder, tmp_path, capsys):
    assert main(["visit-report", str(recordings), "--model", str(model_folder), "--out", str(tmp_path / "v.docx")]) == 2
    assert "end --out in .pdf or .html" in capsys.readouterr().err
    (tmp_path / "v.html").write_text("mine")
    assert main(["visit-report", str(recordings / f"{OTHER}.wav"), "--model", str(model_folder), "--out",
                 str(tmp_path / "v.html")]) == 2
    assert "exists already" in capsys.readouterr().err and (tmp_path / "v.html").read_text() == "mine"
