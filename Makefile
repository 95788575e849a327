# Everything from nothing: `make test` (tests) and `make demo` (embedded recipe),
# in the exact, tested environment of $(LOCK) (Python 3.11, x86-64 Linux).
PYTHON ?= python3
VENV ?= .venv
UV_VERSION := 0.13.9
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
LOCK := requirements/py311-linux-x86_64.lock

.PHONY: venv test demo lock clean

$(VENV)/.installed: setup.py $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv==$(UV_VERSION)
	# The lock is complete and exact: install it as it is, no resolving.
	$(UV) pip install -q --python $(PY) --no-deps -r $(LOCK)
	# The package itself; its build compiles the generation kernel once per ISA level.
	$(UV) pip install -q --python $(PY) --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

# A pytest-xdist worker per core, at most 2 (measured only with 2; many tests run
# two-process jobs themselves); a file's tests stay on one worker, so its module
# fixtures (the recipe run, the Slurm cluster) run once.
test: venv
	$(PY) -m pytest -q -n auto --maxprocesses 2 --dist loadfile \
		--durations=15 tests  # the slowest, for whoever trims the run time

demo: venv
	cd egs/mini_kathleen/voc1 && ./run.sh

# Re-resolve the lock from setup.py and requirements/lock.in after a dependency
# change (then commit both, and run `make test` from a clean clone).
lock: venv
	$(UV) pip compile setup.py requirements/lock.in --extra test --extra eval \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command "make lock" -q -o $(LOCK)

clean:
	rm -rf $(VENV)
