# `make demo` and `make test` each set up everything on a fresh Debian machine
# (system packages, a virtual environment, the package in editable mode) and run.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.koala-installed
# pcscd + vpcd: the band as a PC/SC card; swig + libpcsclite-dev build pyscard;
# pcsc-tools (pcsc_scan, scriptor) and opensc (opensc-tool) are the standard tools tested;
# softhsm2 is the PKCS#11 token the issuer's key store is tested against;
# faketime runs the date-sensitive suites on other days (see `test`);
# tshark reads the taps' pcapng traces back as Wireshark does (`--trace-file`, tests/support/tshark.py);
# nats-server (JetStream) carries the terminals' records to clearing and the blacklists to the gates.
APT_PACKAGES := gcc swig libpcsclite-dev pcscd vsmartcard-vpcd pcsc-tools opensc softhsm2 faketime \
	tshark nats-server
# Time is an input: the suites whose outcome depends on dates run again under libfaketime on a
# leap day and across a new year, in a zone eleven hours from the network's (UTC+8).
DATE_SUITES := tests/test_cli.py tests/test_cli_issuer.py tests/issuer/test_orders.py \
	tests/issuer/test_card_orders.py tests/issuer/test_topup.py tests/issuer/test_ec_topup.py \
	tests/applets/test_access.py tests/reader/test_door.py tests/reader/test_gate.py
FAKE_DAYS := "2028-02-29 12:00:00" "2035-12-31 23:59:30"
FAKE_TZ := America/Sao_Paulo

.PHONY: demo test lint bench clean system-packages

demo: $(STAMP)
	$(BIN)/koala demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest
	@for day in $(FAKE_DAYS); do \
	  echo "date-sensitive suites on $$day ($(FAKE_TZ))"; \
	  TZ=$(FAKE_TZ) faketime -m "$$day" \
	    $(BIN)/pytest -q -p no:cacheprovider $(DATE_SUITES) || exit 1; \
	done

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.pcsc
	$(BIN)/python -m bench.issuance
	$(BIN)/python -m bench.ota

system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	$(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$$missing python3 python3-venv python3-dev"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "please install:$$missing"; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml Makefile | system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,pcsc,nfc]'
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
