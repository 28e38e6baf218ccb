# The two entry points of the README: `make demo` runs the product, `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench clean install uninstall

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/xrayd demo --dir build/demo

# On a server, as root: the product in its own venv, then `xrayd install` (units, accounts, token).
PREFIX ?= /opt/xray-report
install:
	$(PY) -m venv $(PREFIX)/venv
	$(PREFIX)/venv/bin/pip install -q .
	$(PREFIX)/venv/bin/xrayd install --bin-dir $(PREFIX)/venv/bin --units-from $(CURDIR)/systemd

uninstall:
	$(PREFIX)/venv/bin/xrayd uninstall

bench: $(STAMP)
	$(BIN)/python bench/rpc.py

clean:
	rm -rf $(VENV) build .pytest_cache
