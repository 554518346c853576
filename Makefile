# image-cloner — build, test and package.
#
#   make test      the gate: formatting, clippy, every test (installs skopeo and
#                  docker-registry with apt-get when they are missing)
#   make build     release binary in target/release/image-cloner

CARGO ?= cargo
# Debian packages the tests run for real: skopeo, and the CNCF distribution registry.
TEST_PACKAGES := skopeo docker-registry
TEST_COMMANDS := skopeo docker-registry

.PHONY: all build test test-deps fmt-check clippy cargo-test

all: build

build:
	$(CARGO) build --release --locked

## The gate. KUBEBUILDER_ASSETS (see README) enables the real-API-server tests.
test: test-deps fmt-check clippy cargo-test

test-deps:
	@missing=""; for c in $(TEST_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make: installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_PACKAGES) >/dev/null; \
	  else \
	    echo "make: missing$$missing; run: sudo apt-get install $(TEST_PACKAGES)" >&2; exit 1; \
	  fi; \
	fi
	@if [ -z "$$KUBEBUILDER_ASSETS" ]; then echo "make: KUBEBUILDER_ASSETS is not set: the real-API-server tests will be SKIPPED (see README)" >&2; fi

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

cargo-test:
	$(CARGO) test --workspace --locked
