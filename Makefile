# Everything from nothing: `make test` (tests) and `make demo` (embedded recipe).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv test demo clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	# pip < 25: newer pip rejects a direct-URL extra in ci_sdr (an ESPnet dependency).
	$(PY) -m pip install -q "pip>=23,<25" wheel
	$(PY) -m pip install -q -e ".[test,eval]"
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -q tests

demo: venv
	cd egs/mini_kathleen/voc1 && ./run.sh

clean:
	rm -rf $(VENV)
