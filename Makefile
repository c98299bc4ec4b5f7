# Two commands on a fresh machine: `make app` and `make test`; `make package` builds the desktop bundle and
# `make check-package` builds it and tests it as a user would (what a release runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PACKAGE_STAMP := $(VENV)/.installed-package

.PHONY: app test test-fast bench package check-package demo-model clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# What the Studio and the command line need, nothing more.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $(STAMP)

# The test extras too (pytest, pytest-qt, Hypothesis, import-linter, Ray for the ray executor's tests).
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[test]"
	touch $(TEST_STAMP) $(STAMP)

app: $(STAMP)
	$(BIN)/lungkd-studio

test: $(TEST_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

# The inner loop: everything but the tests marked slow (training runs, killed processes, the wizard end to end).
test-fast: $(TEST_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m "not slow"

$(PACKAGE_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install -e ".[package]"
	touch $(PACKAGE_STAMP)

# dist/LungKD/ with lungkd-studio and lungkd; packaging/smoke.sh tests it.
package: $(PACKAGE_STAMP)
	$(BIN)/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller packaging/lungkd.spec

# A release runs this: the bundle built, then used as a user would (packaging/README.md, "The smoke test").
check-package: package
	VENV=$(VENV) packaging/smoke.sh

# resources/models/demo-cnn6 again, by the shipped recipe demo-model (about 15 minutes on a 2-core CPU).
demo-model: $(STAMP)
	$(BIN)/python packaging/build_demo_model.py

clean:
	rm -rf $(VENV) build dist *.egg-info
