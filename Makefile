# replica — every target does its own set-up on a fresh machine and is a quick no-op when set up.
#   make test    the layering contracts, then the whole suite (CPU, < 15 min on 2 cores)
#   make demo    the system end to end on tiny data
#   make bench   speed/memory benchmarks → bench/results/*.json
#   make release retrain the default foundation release (≈1 h on 2 cores) and install it into foundation/release/

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.replica-installed
# Debian packages replica needs at run time (TTS engines for the voice pool); the image installs these too.
DEBS   := espeak-ng flite
# Debian packages only the tests need (the web page's browser test), installed by `make setup` too.
TEST_DEBS := chromium chromium-driver

.PHONY: setup debs test demo docs bench release clean

setup: debs $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

debs:
	@missing=""; for p in $(DEBS) $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (run 'sudo apt-get install$$missing')"; exit 1; \
	  fi; \
	fi

# The end-to-end demo, the GPU script's dry run, the cluster commands (create, jobs, fleet: `replica`
# subprocesses, their own Ray heads) and `replica doctor`'s subprocesses share no fixture with the rest, so they
# run beside the main session: on 2 cores the suite's idle time (Ray start-ups, subprocess waits, sleeps)
# overlaps, and the two sessions end about together. Their log prints after.
# Each session lists its slowest tests (main 15, side 10): `make test` must stay under 15 minutes on 2 cores.
# tests/conftest.py keeps every process of both sessions on one OpenMP thread (OMP_NUM_THREADS=1): with two
# sessions on 2 cores, a second thread spin-waits for a descheduled one (a Ray task reserving 2 CPUs still uses 2).
SIDE_TESTS := tests/e2e tests/bench tests/cluster tests/launch/test_doctor.py

test: setup
	$(VENV)/bin/lint-imports --cache-dir .cache/import-linter
	@mkdir -p .cache
	@$(PY) -m pytest -q --durations=10 $(SIDE_TESTS) > .cache/side-tests.log 2>&1 & side=$$!; \
	$(PY) -m pytest -q --durations=15 $(addprefix --ignore=,$(SIDE_TESTS)); main=$$?; \
	wait $$side; side_rc=$$?; echo "== $(SIDE_TESTS) (run beside the rest)"; cat .cache/side-tests.log; \
	test $$main -eq 0 && test $$side_rc -eq 0

DEMO_OUT := runs/demo

# The demo writes only under runs/; `make docs` refreshes the pictures and tables kept in docs/.
demo: setup
	$(VENV)/bin/replica demo --out $(DEMO_OUT)

docs: demo
	cp $(DEMO_OUT)/data/contact_sheet.png docs/demo_synth_contact_sheet.png
	cp $(DEMO_OUT)/avatar/side_by_side.png docs/demo_avatar_side_by_side.png
	$(PY) docs/synth_contact_sheet.py
	$(PY) docs/make_head_model_sheet.py
	$(PY) docs/motion_curves.py
	$(PY) bench/avatar_quality.py --sheet docs/avatar_side_by_side.png

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

release: setup
	$(VENV)/bin/replica release build --out runs/release --install

clean:
	rm -rf $(VENV) runs .pytest_cache .cache
