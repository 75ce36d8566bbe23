# The book's two commands (see README): `make book` builds the HTML, `make test` runs every test.
# Both create or refresh the virtual environment .venv from requirements.txt first (Python >= 3.11 needed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test lint unit notebooks build-check chapters env clean rot

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# HTML in _build/html, from the chapters' committed outputs; any Sphinx warning fails the build.
book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

# A lint (ruff: pyflakes' checks and syntax errors, pyproject.toml's [tool.ruff]), the unit tests, then every chapter
# re-executed under nbval against its committed outputs, then the book build and a check of its HTML for rendering
# defects (tools/check_html.py).
test: lint unit notebooks build-check

lint: $(STAMP)
	$(BIN)/ruff check --output-format concise .

# The unit tests run in JOBS worker processes (pytest-xdist; a worker that runs out of tests takes some of the
# other's); JOBS=0 runs them in one process. The chapters also run on JOBS workers, each chapter whole on one
# worker in its own kernel, longest first (book/conftest.py orders them by book/runtimes.json). Each worker, and
# the kernels it starts, is pinned to its own share of the cores (conftest.py, which gives the measurements):
# unpinned, two chapters side by side compete for the cores and run far slower than in turn.
JOBS ?= 2

unit: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist worksteal --durations=15 tests

notebooks: $(STAMP)
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		--nbval-cell-timeout 1200 -n $(JOBS) --dist loadfile --no-loadscope-reorder book

build-check: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going --path-output _build/check >/dev/null \
		&& echo "book build: ok (no Sphinx warnings)"
	$(BIN)/python tools/check_html.py _build/check/_build/html

# Re-execute every chapter in place after changing code or a chapter (commits then carry fresh outputs).
chapters: $(STAMP)
	$(BIN)/python tools/chapters.py sync
	$(BIN)/python tools/chapters.py run

clean:
	rm -rf _build

# Code-rot guard (not part of CI's gate): the unit tests in a fresh environment with the newest releases of wvi's
# dependencies and the book's extras, instead of requirements.txt's pins. Prints what broke, if anything.
ROT := .venv-rot
rot:
	rm -rf $(ROT) && $(PYTHON) -m venv $(ROT)
	$(ROT)/bin/python -m pip install --quiet --upgrade pip
	$(ROT)/bin/python -m pip install --quiet --upgrade -e ".[book,test]"
	$(ROT)/bin/python -m pip freeze | grep -iE '^(jax|jaxlib|optax|numpy|scipy|numpyro|matplotlib|seaborn|scikit-learn)=='
	$(ROT)/bin/python -m pytest -q tests
