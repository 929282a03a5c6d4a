# Two commands do all set-up on a fresh Debian machine: `make run` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test stress bench soak lint clean hub-demo

$(STAMP): pyproject.toml scripts/bootstrap.sh
	@VENV=$(VENV) bash scripts/bootstrap.sh
	@touch $@

## run: decode the bundled IQ recording (recordings/) and print the readings
run: $(STAMP)
	$(VENV)/bin/wmbus-sdr decode recordings/example_868.625M_2M4.sigmf-meta --keys recordings/keys.txt

## test: the whole test suite
test: $(STAMP)
	@bash scripts/test_deps.sh
	PATH="$$PATH:/usr/sbin" $(PY) -m pytest -q

## stress: make test 5 times in a fresh clone of HEAD with a CPU hog on every core
stress: $(STAMP)
	bash scripts/stress_test.sh 5

## bench: the benchmarks quoted in the README
bench: $(STAMP)
	$(PY) benchmarks/telegram_throughput.py
	$(PY) benchmarks/driver_values.py
	$(PY) benchmarks/fuzz_stack.py
	$(PY) benchmarks/rx_throughput.py --r2 --live 60
	$(PY) benchmarks/rx_throughput.py --rate 2.4e6
	$(PY) benchmarks/jobs_speedup.py
	$(PY) benchmarks/rx_throughput_n.py
	$(PY) benchmarks/memory.py
	$(PY) benchmarks/sensitivity.py
	$(PY) benchmarks/false_frames.py
	$(PY) benchmarks/false_frames.py --no-gate
	$(PY) benchmarks/tx_roundtrip.py
	$(PY) benchmarks/sessions.py --count 30
	$(PY) benchmarks/gateway_turnaround.py
	$(PY) benchmarks/analyzer_accuracy.py --count 200 --impairments --target-count 20
	$(PY) benchmarks/hub_ingest.py

## soak: 30 minutes of live reception over rtl_tcp (memory, frames, CPU)
soak: $(STAMP)
	$(PY) benchmarks/soak_rtltcp.py --minutes 30

## hub-demo: mosquitto, two rx edges on rtl_tcp streams of the bundled recording (one 6 dB weaker) and the
## hub with SQLite; prints the dashboard URL
hub-demo: $(STAMP)
	bash scripts/hub_demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
