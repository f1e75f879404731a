# evmesh developer entry points. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BAZEL ?= bazel
MODULES := build/modules
ENVOY_BIN = $(shell $(PY) -c 'import evmesh.locate as l; print(l.envoy_binary())' 2>/dev/null)

.PHONY: help setup setup-apt setup-venv setup-kafka build test test-cc test-py run bench bench-kafka bench-policy fuzz clean

help:
	@echo "make setup   - apt packages + Python venv + Apache Kafka jars (idempotent)"
	@echo "make build   - build the Envoy module(s) into $(MODULES)"
	@echo "make test    - setup, build, C++ and Python tests (what CI runs)"
	@echo "make run     - setup, build, evmesh run envoy_configs/nats-example.yaml"
	@echo "make bench   - benchmarks (tests/perf)"
	@echo "make fuzz    - run the libFuzzer targets for a while (FUZZ_SECONDS=60)"

setup: setup-apt setup-venv setup-kafka

setup-apt:
	@bash scripts/setup-apt.sh

setup-venv:
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[test]'

setup-kafka: setup-venv
	@$(PY) -m evmesh.runtime.fetch_kafka

build:
	@$(BAZEL) build //filters/module:libevmesh.so //filters/module:libevmesh_check.so
	@mkdir -p $(MODULES)
	@# copy, then rename into place: an Envoy starting meanwhile never dlopens a half-written file
	@for f in libevmesh.so libevmesh_check.so; do \
	  install -m 0755 bazel-bin/filters/module/$$f $(MODULES)/.$$f.tmp && mv -f $(MODULES)/.$$f.tmp $(MODULES)/$$f; done
	@echo "modules in $(MODULES)"

test-cc:
	@EVMESH_ENVOY_BIN="$(ENVOY_BIN)" $(BAZEL) test //filters/...

test-py:
	@bash scripts/pytest.sh tests

test: setup build test-cc test-py

run: setup build
	@$(VENV)/bin/evmesh run envoy_configs/nats-example.yaml

bench: setup build
	@$(PY) tests/perf/bench_nats.py

bench-xds: setup build
	@$(PY) tests/perf/bench_xds.py

bench-policy: setup build
	@$(PY) tests/perf/bench_policy.py --write-docs

FUZZ_SECONDS ?= 60
fuzz:
	@mkdir -p build/fuzz/corpus_nats
	clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I. \
	  filters/nats/test/fuzz_parser.cc filters/nats/codec/parser.cc -o build/fuzz/nats_parser
	build/fuzz/nats_parser -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  build/fuzz/corpus_nats filters/nats/test/corpus/nats_parser || true
	@echo "new inputs in build/fuzz/corpus_nats; crashes as crash-*: commit reproducers to the corpus"
	@mkdir -p build/fuzz/corpus_kafka
	clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I. \
	  filters/kafka/test/fuzz_codec.cc filters/kafka/codec/api_keys.cc filters/kafka/codec/framing.cc \
	  filters/kafka/codec/messages.cc filters/kafka/codec/topics.cc filters/kafka/codec/records.cc \
	  filters/kafka/codec/stream.cc \
	  -lz -lsnappy -llz4 -lzstd -o build/fuzz/kafka_codec
	build/fuzz/kafka_codec -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
	  build/fuzz/corpus_kafka filters/kafka/test/corpus/kafka_codec || true
	@echo "new inputs in build/fuzz/corpus_kafka; crashes as crash-*: commit reproducers to the corpus"
	@mkdir -p build/fuzz/corpus_kafka_filter
	clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I. \
	  filters/kafka/test/fuzz_filter.cc filters/common/test/fake_envoy.cc filters/kafka/filter/kafka_filter.cc \
	  filters/kafka/filter/quota.cc filters/kafka/policy/config.cc filters/kafka/codec/api_keys.cc \
	  filters/kafka/codec/framing.cc filters/kafka/codec/messages.cc filters/kafka/codec/topics.cc \
	  filters/kafka/codec/records.cc filters/kafka/codec/stream.cc filters/common/config/json_config.cc \
	  filters/common/envoy/metrics.cc filters/common/envoy/module.cc filters/common/envoy/delayed_commits.cc \
	  filters/common/config/policy_ref.cc filters/common/live/registry.cc \
	  -lz -lsnappy -llz4 -lzstd -lpthread -o build/fuzz/kafka_filter
	build/fuzz/kafka_filter -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
	  build/fuzz/corpus_kafka_filter filters/kafka/test/corpus/kafka_filter || true
	@echo "new inputs in build/fuzz/corpus_kafka_filter; crashes as crash-*: commit reproducers to the corpus"
	@mkdir -p build/fuzz/corpus_amqp
	clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I. \
	  filters/amqp/test/fuzz_parser.cc filters/amqp/codec/frame_parser.cc filters/amqp/codec/methods.cc \
	  filters/amqp/codec/content_header.cc filters/amqp/codec/field_table.cc -o build/fuzz/amqp_parser
	cd build/fuzz && ./amqp_parser -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  corpus_amqp ../../filters/amqp/test/corpus/amqp_parser || true
	@echo "new inputs in build/fuzz/corpus_amqp; crashes as build/fuzz/crash-*: commit reproducers to the corpus"
	@mkdir -p build/fuzz/corpus_amqp_filter
	clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I. \
	  filters/amqp/test/fuzz_filter.cc filters/common/test/fake_envoy.cc filters/amqp/filter/amqp_filter.cc \
	  filters/amqp/policy/config.cc filters/amqp/policy/topic.cc filters/amqp/codec/frame_parser.cc \
	  filters/amqp/codec/methods.cc filters/amqp/codec/content_header.cc filters/amqp/codec/field_table.cc \
	  filters/common/config/json_config.cc filters/common/config/policy_ref.cc filters/common/live/registry.cc \
	  filters/common/envoy/metrics.cc filters/common/envoy/module.cc \
	  filters/common/envoy/delayed_commits.cc -lpthread -o build/fuzz/amqp_filter
	cd build/fuzz && ./amqp_filter -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	  corpus_amqp_filter ../../filters/amqp/test/corpus/amqp_filter || true
	@echo "new inputs in build/fuzz/corpus_amqp_filter; crashes as build/fuzz/crash-*: commit reproducers to the corpus"

clean:
	@$(BAZEL) clean
	@rm -rf build

bench-amqp: setup build
	@$(PY) tests/perf/bench_amqp.py

bench-kafka: setup build
	@$(PY) tests/perf/bench_kafka.py
