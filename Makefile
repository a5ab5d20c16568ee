# The two commands of the README's Quick start. Both create .venv/ on a fresh machine and reuse it after.
PYTHON ?= python3
# pytest-xdist workers for make test. The machines have two cores, but many tests spend their
# time waiting (laporham subprocesses starting, a fake server's "retry after 1 s", two-process
# runs): four workers overlap those waits. Measured idle on two cores: SQLite 3:09 with 2,
# 2:44 with 4; PostgreSQL 2:53 with 4.
PYTEST_WORKERS ?= 4
VENV := .venv
STAMP := $(VENV)/.installed
# Every dependency (runtime and the dev extra) pinned, with hashes, for every platform:
# `make lock` writes it from pyproject.toml.
LOCK := requirements.lock
UV := $(VENV)/bin/uv
# pip-audit reads each locked version's vulnerabilities from PyPI's JSON API, one URL per
# release, like this one: probed first, so that an unreachable database is said plainly.
AUDIT_PROBE_URL ?= https://pypi.org/pypi/pip/24.0/json
# What `make audit` checks: the whole lock (tests/test_audit.py gives it a file of two packages).
AUDIT_REQUIREMENTS ?= $(LOCK)

.PHONY: demo test lint bench clean lock audit

# Exactly the locked versions, each checked against its hash, then the project itself without
# dependencies (they are all in the lock). `pip check` catches a lock that misses a dependency
# pyproject.toml gained since (then: make lock).
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade 'pip>=24,<27'
	$(VENV)/bin/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	@$(VENV)/bin/python -m pip check >/dev/null || { $(VENV)/bin/python -m pip check; \
		echo "$(LOCK) does not match pyproject.toml: run 'make lock', then make again." >&2; \
		exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/laporham demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

# Re-resolve every dependency from pyproject.toml (after adding or bounding one) and write
# the lock; then `make` installs it. Needs only PyPI. uv comes from the lock once installed.
lock:
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(VENV)/bin/python -m pip install --quiet 'uv>=0.9,<1'
	$(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --quiet -o $(LOCK)
	@echo "$(LOCK) written; 'make' installs it."

# Known vulnerabilities in the locked versions (pip-audit, PyPI's vulnerability data). The
# recipe ends with 0: every package checked, none vulnerable; 1: VULNERABLE, listed; 2: NOT
# AUDITED, the data could not be reached (not at all, or not for every package), or pip-audit
# failed. make itself exits 2 for any failing recipe, so a caller tells 1 from 2 by the last
# line ("make audit: VULNERABLE" / "make audit: NOT AUDITED") or make's "Error 1"/"Error 2".
# pip-audit exits 1 both for vulnerabilities and for its own failures: its summary tells them
# apart. tests/test_audit.py runs each outcome against a fake of the data.
audit: $(STAMP)
	@$(VENV)/bin/python -c "import urllib.request as u; u.urlopen('$(AUDIT_PROBE_URL)', timeout=20)" \
		2>/dev/null || { echo "make audit: NOT AUDITED: PyPI's vulnerability data ($(AUDIT_PROBE_URL))" \
		"is not reachable from this machine (a registry mirror serves packages, not that API)." >&2; \
		exit 2; }
	@out=$$(mktemp); $(VENV)/bin/pip-audit --disable-pip --require-hashes --requirement $(AUDIT_REQUIREMENTS) \
		--strict --vulnerability-service pypi --progress-spinner off > $$out 2>&1; status=$$?; \
		cat $$out; code=0; \
		if grep -q "could not be audited" $$out; then code=2; \
			verdict="NOT AUDITED: some packages' vulnerability data could not be fetched (listed above)."; \
		elif grep -q "^Found [0-9]* known vulnerabilit" $$out; then code=1; \
			verdict="VULNERABLE: known vulnerabilities in the audited versions (listed above)."; \
		elif [ $$status -ne 0 ]; then code=2; \
			verdict="NOT AUDITED: pip-audit failed (its output is above)."; fi; \
		rm -f $$out; \
		if [ $$code -ne 0 ]; then echo "make audit: $$verdict" >&2; fi; \
		exit $$code

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
