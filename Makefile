# The two commands of the README: `make demo` and `make test`.
# Everything else here is what those two need on a fresh machine.

PYTHON ?= python3
VENV := .venv
EGRESS_VENV := .venv-egress
BIN := $(VENV)/bin
# pip (24.1 on) shows what the build backend warns: setuptools' notice on every
# editable install ("Please be careful with folders ...") filled pages of
# `make demo` before its first progress bar. That one warning, no other.
QUIET_EDITABLE := PYTHONWARNINGS=ignore::UserWarning:setuptools.command.editable_wheel

.PHONY: demo test lint typecheck format host-deps venv images screenshots bench clean fuzz images-ahead

# The virtualenvs' installs and the base image's debootstrap (when no
# registry gives the shipped bases) side by side: on a fresh machine both are
# minutes of downloads; `cftui demo` then builds its images in parallel.
# DEMO_ARGS: `cftui demo`'s flags (`--no-tui`: return once the fleet is up).
DEMO_ARGS ?=

demo: host-deps
	@$(MAKE) --no-print-directory -j3 venv images-ahead
	$(BIN)/cftui demo $(DEMO_ARGS)

# Only the standard library (no venv yet): one line, never a failure (the
# build says what is wrong when it gets there).
images-ahead:
	@$(PYTHON) -m cftui.runtime.images.ahead

# pytest-xdist: the suite on PYTEST_WORKERS workers, a whole file (or a group
# of files that share a fixed name) on one worker (tests/parallel.py). Most
# tests wait on Docker, sshd or a VM, not on a core; the TUI tests do not, and
# their Pilot waits flaked beside two other workers on 2 cores: 2 workers.
# PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2

test: venv host-deps typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# Build (or find cached) the images first, with progress, so no test
	@# waits minutes inside a fixture; a failure here shows again in the tests.
	-$(BIN)/python -m cftui.cli.build_images --quiet
	@# Then the tests marked `alone`, with nothing beside them. Exit 5 is
	@# "no test selected" (a PYTEST_ARGS that names none of one part).
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup -m "not alone" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(BIN)/pytest -m alone $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: venv typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The layers (.importlinter: faces -> domain -> runtime/audit -> leaves, no
# cycles, cfproxies apart, Textual only in cftui.tui) and the types: mypy over
# cftui/ and proxies/, the egress proxy in its own environment (mitmproxy).
typecheck: venv
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/mypy --python-executable $(EGRESS_VENV)/bin/python proxies/cfproxies/egress/*.py

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

venv: $(VENV)/.installed $(EGRESS_VENV)/.installed

$(VENV)/.installed: pyproject.toml proxies/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(QUIET_EDITABLE) $(BIN)/pip install -q -e './proxies[llm,fake]' -e '.[test]'
	touch $@

# mitmproxy 11 pins an older cryptography: the egress proxy gets its own
# environment, as it has its own image.
$(EGRESS_VENV)/.installed: proxies/pyproject.toml
	test -x $(EGRESS_VENV)/bin/python || $(PYTHON) -m venv $(EGRESS_VENV)
	$(EGRESS_VENV)/bin/pip install -q --upgrade pip
	$(QUIET_EDITABLE) $(EGRESS_VENV)/bin/pip install -q -e './proxies[egress]'
	touch $@

host-deps:
	@bash scripts/host-deps.sh

images: venv
	$(BIN)/python -m cftui.cli.build_images

# Coverage-guided fuzzing (atheris) of the parsers that read agent or upstream
# bytes, FUZZ_SECONDS per target; corpus and crashes under /tmp/cftui-fuzz.
# The bounded properties of the same parsers run in `make test` (tests/fuzz).
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= streams traffic tarheader patterns age

fuzz: venv
	$(BIN)/python -c "import atheris" 2>/dev/null || $(QUIET_EDITABLE) $(BIN)/pip install -q -e '.[fuzz]'
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $$t ($(FUZZ_SECONDS) s)"; log=$$(mktemp); \
		if $(BIN)/python fuzz/run.py $$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
			>$$log 2>&1; then grep -E "^Done" $$log; rm -f $$log; \
		else tail -40 $$log; rm -f $$log; \
			echo "fuzz: $$t failed (a crash input is kept in /tmp/cftui-fuzz/crashes/$$t)"; exit 1; fi; \
	done

screenshots: venv
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) $(EGRESS_VENV) .pytest_cache .ruff_cache
