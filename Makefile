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
