# The two commands of README.md: `make dev` (run it) and `make test` (test it).
.PHONY: bootstrap dev test typecheck pytest fuzz kafka-start kafka-stop clean

VENV_PY := .venv/bin/python

bootstrap:
	@scripts/bootstrap.sh

## Local Kafka + engine in the foreground, the example service registered, curl lines printed.
dev: bootstrap
	@$(VENV_PY) compose/dev.py

## Everything CI runs: type checks, then the whole test suite against a real Kafka.
test: bootstrap typecheck pytest

typecheck:
	@echo "mypy --strict engine sdk subscriptions"
	@$(VENV_PY) -m mypy

pytest:
	@$(VENV_PY) -m pytest $(PYTEST_ARGS)

## Long fuzz run (docs/SECURITY.md, "Fuzzing"): the tests/fuzz targets with
## LOGSTRATE_FUZZ_SCALE (default 20) times the normal suite's examples, random seeds;
## counts per target printed and written to fuzz-report.json.
fuzz: bootstrap
	@LOGSTRATE_FUZZ_SCALE=$${LOGSTRATE_FUZZ_SCALE:-20} LOGSTRATE_FUZZ_REPORT=$${LOGSTRATE_FUZZ_REPORT:-fuzz-report.json} \
		$(VENV_PY) -m pytest tests/fuzz -p no:cacheprovider --timeout 3600 $(PYTEST_ARGS)

## Kill the Kafka broker for 60 s under load, then restart it (tests/chaos/test_kafka_outage.py;
## the normal suite runs a 10 s outage). Part of `make chaos`.
.PHONY: chaos chaos-kafka-outage
chaos: chaos-kafka-outage
chaos-kafka-outage: bootstrap
	@LOGSTRATE_OUTAGE_S=60 $(VENV_PY) -m pytest -s tests/chaos/test_kafka_outage.py $(PYTEST_ARGS)

kafka-start: bootstrap
	@$(VENV_PY) compose/kafka_local.py start

kafka-stop:
	@$(VENV_PY) compose/kafka_local.py stop

clean:
	rm -rf .venv .cache .mypy_cache .pytest_cache

## Leadership under racing start-ups: 50 rounds of two or three engine processes started
## 0-500 ms apart; every partition led within 30 s in each (issue 15). The suite runs 5.
.PHONY: leadership
leadership: bootstrap
	@LOGSTRATE_LEADERSHIP_ROUNDS=$${LOGSTRATE_LEADERSHIP_ROUNDS:-50} $(VENV_PY) -m pytest -s tests/engine/partition/test_leadership_rounds.py $(PYTEST_ARGS)

## Fault tests at full length (docs/ARCHITECTURE.md, "Faults"): CHAOS_KILLS (default 100)
## kill -9 and CHAOS_FREEZES (10) SIGSTOP/SIGCONT of one of two engines under mixed load, one Kafka broker of three killed under
## load, a SIGSTOP/SIGCONT zombie leader. Progress on stderr; figures in CHAOS_REPORT.
.PHONY: chaos
CHAOS_KILLS ?= 100
CHAOS_FREEZES ?= 10
CHAOS_REPORT ?= .cache/chaos-report.json
chaos: bootstrap
	@LOGSTRATE_CHAOS_KILLS=$(CHAOS_KILLS) LOGSTRATE_CHAOS_FREEZES=$(CHAOS_FREEZES) LOGSTRATE_CHAOS_REPORT=$(CHAOS_REPORT) $(VENV_PY) -m pytest -s \
		tests/chaos/test_kill_storm.py tests/chaos/test_broker_kill.py tests/chaos/test_zombie_leader.py $(PYTEST_ARGS)
