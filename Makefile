# One command per task. Every target creates .venv and installs into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint proto bench bench-smoke soak fuzz clean catalogues

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m node.demo

test: $(STAMP)
	@bash scripts/ensure-chromium.sh
	@bash scripts/ensure-postgresql.sh
	@bash scripts/ensure-softhsm.sh
	@bash scripts/ensure-node.sh
	@bash scripts/ensure-systemd-analyze.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Coverage-guided fuzzing (atheris) of every parser a peer or an operator file reaches, FUZZ_SECONDS
# per target (FUZZ_TARGETS: a subset); new inputs land in tests/fuzz/corpus, which make test replays.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

lint: $(STAMP)
	$(BIN)/ruff check node tests benchmarks
	$(BIN)/mypy node
	$(BIN)/mypy tests
	bash scripts/buf.sh lint

# proto/ against the previous commit's: a wire-breaking change fails (buf's FILE rules).
breaking:
	bash scripts/buf.sh breaking-previous

# The console's gettext catalogues (babel.cfg): new texts into messages.pot and every .po;
# translators fill node/web/locale/<lang>/LC_MESSAGES/messages.po (compiled at start).
catalogues: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --omit-header --sort-output \
	  -o node/web/locale/messages.pot .
	$(BIN)/pybabel update -i node/web/locale/messages.pot -d node/web/locale \
	  --no-fuzzy-matching --ignore-obsolete --width 100

proto: $(STAMP)
	$(BIN)/python -m node.wire.codegen

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks.run --smoke

# An hour at a fixed rate, node memory sampled each minute (SOAK_SECONDS, SOAK_RATE).
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
