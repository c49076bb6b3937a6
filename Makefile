# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both install exactly the versions in requirements.lock; `make lock` regenerates it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock

# The browser the tests render the safety report page in: Debian's chromium package.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM

.PHONY: demo test venv lock clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(LOCK) pip setuptools
	# torch first: the lock pins torch==2.13.0+cpu, the CPU wheel that lies on this disk.
	$(PY) -m pip install --quiet -c $(LOCK) torch
	# Every package from the lock, nothing else; then this project without resolving again.
	$(PY) -m pip install --quiet --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

venv: $(STAMP)

# Installed when missing (as root, with apt-get); otherwise a clear error before any test runs.
$(CHROMIUM):
	@if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "error: $(CHROMIUM) is missing: the tests render the safety report in headless Chromium." >&2; \
		echo "Install Debian's chromium package as root (apt-get install -y chromium), or set CHROMIUM=/path/to/chromium." >&2; \
		exit 1; fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || { \
		echo "error: apt-get could not install Debian's chromium package (needed by the report tests)." >&2; exit 1; }
	test -x $(CHROMIUM)

# Re-resolve pyproject.toml's `dev` extra into the lock, keeping current pins that still fit.
# Newest versions of everything: make lock LOCK_ARGS=--upgrade. Then run make test.
lock:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(LOCK) pip pip-tools
	$(VENV)/bin/pip-compile --quiet --extra dev --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links $(LOCK_ARGS) -o $(LOCK) pyproject.toml

# The operator's alignment of the real base model never trains on the public sets its
# benchmarks evaluate on (../shared/data, where present): the demo's base is theirs.
DEMO_EXCLUDE ?= $(wildcard ../shared/data/advbench/harmful_behaviors.csv ../shared/data/xstest/xstest_prompts.csv)

demo: $(STAMP)
	$(VENV)/bin/safetylock demo $(addprefix --exclude ,$(DEMO_EXCLUDE))

test: $(STAMP) $(CHROMIUM)
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
