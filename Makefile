# The two commands a new user needs:  `make demo`  and  `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The dashboard's browser tests drive Debian's headless Chromium through Debian's chromedriver.
BROWSER := /usr/bin/chromium /usr/bin/chromedriver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	# bfcl-eval only ships the public benchmark data and the official checker; its own pins
	# (numpy 1.26, faiss, sentence-transformers) would break the environment, hence --no-deps.
	$(BIN)/pip install -q --no-deps bfcl-eval==2026.3.23
	touch $(STAMP)

$(BROWSER) &:
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver

install: $(STAMP) $(BROWSER)

demo: $(STAMP)
	$(BIN)/tooldiff demo --out runs/demo

test: $(STAMP) $(BROWSER)
	$(BIN)/python -m pytest -q

.PHONY: install demo test
