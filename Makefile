# Makefile: the two commands (make demo, make check) and friends; meson does the build.
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FAULT_BUILD ?= build-fault
FAULT_ASAN_BUILD ?= build-fault-asan
HARD_BUILD ?= build-hard
NINJA ?= ninja

.PHONY: all deps demo check sanitizers test unit integration fuzz bench clean \
	check-faults fault-builds check-valgrind load soak deb check-systemd

all: $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD)

deps:
	scripts/install-deps

# Runs the demo server (see README).
demo: deps all
	scripts/demo --build $(BUILD)

# Installs, builds (plain, ASan+UBSan, TSan, fault injection, .debs) and runs every test (systemd ones included); ends with "N passed, N failed".
check: deps all sanitizers fault-builds deb
	tests/run-all --build $(BUILD) --asan $(ASAN_BUILD) --tsan $(TSAN_BUILD) --fault $(FAULT_BUILD) --fault $(FAULT_ASAN_BUILD) --deb $(DEB_BUILD)

sanitizers: $(ASAN_BUILD)/build.ninja $(TSAN_BUILD)/build.ninja
	$(NINJA) -C $(ASAN_BUILD)
	$(NINJA) -C $(TSAN_BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

$(TSAN_BUILD)/build.ninja:
	meson setup $(TSAN_BUILD) -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug

test: all
	tests/run-all --build $(BUILD)

unit: all
	tests/run-all --build $(BUILD) --only unit

integration: all
	tests/run-all --build $(BUILD) --only integration

fuzz: deps
	fuzz/run

bench: deps all
	bench/run-all

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz $(DEB_BUILD)

# Allocation-failure injection (-Dfault_injection=true): the request-path walk and the walk through
# the module pipeline (whoami, static, Basic/PAM, peer), plain and ASan+UBSan+LSan.
FAULT_TEST = tests/unit/fault/fault_request_walk tests/unit/fault/fault_pipeline_walk
fault-builds: $(FAULT_BUILD)/build.ninja $(FAULT_ASAN_BUILD)/build.ninja
	$(NINJA) -C $(FAULT_BUILD) $(FAULT_TEST) gatehoused modules/static/static.so modules/whoami/whoami.so
	$(NINJA) -C $(FAULT_ASAN_BUILD) $(FAULT_TEST)

check-faults: fault-builds
	tests/run-all --only fault --fault $(FAULT_BUILD) --fault $(FAULT_ASAN_BUILD)

$(FAULT_BUILD)/build.ninja:
	meson setup $(FAULT_BUILD) -Dfault_injection=true

$(FAULT_ASAN_BUILD)/build.ninja:
	meson setup $(FAULT_ASAN_BUILD) -Dfault_injection=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

# The helpers.Daemon integration tests with gatehoused under valgrind memcheck: no definite leaks.
check-valgrind: $(HARD_BUILD)/build.ninja
	$(NINJA) -C $(HARD_BUILD)
	tests/stress/run-valgrind --build $(HARD_BUILD)

# Full load and slowloris run (10,000 connections; 1,000 dribblers, p99 <= 100 ms).
load: $(HARD_BUILD)/build.ninja
	$(NINJA) -C $(HARD_BUILD)
	bench/load/run $(HARD_BUILD)

$(HARD_BUILD)/build.ninja:
	meson setup $(HARD_BUILD)

# Identity-leak soak: 1,000,000 requests, 4 users x 64 clients x mixed schemes and sites, zero mismatches, RSS flat.
SOAK_BUILD ?= build-soak
soak: $(SOAK_BUILD)/build.ninja
	$(NINJA) -C $(SOAK_BUILD) gatehoused bench/soak/gh-soak bench/soak/gh-soak-cgi bench/negotiate/gh-negotiate-bench modules/static/static.so modules/cgi/cgi.so modules/whoami/whoami.so
	bench/soak/run --build $(SOAK_BUILD)

$(SOAK_BUILD)/build.ninja:
	meson setup $(SOAK_BUILD)

# Debian packages (gatehouse, libgatehouse0, libgatehouse-dev) with dpkg-buildpackage from a copy
# of the tree in $(DEB_BUILD)/src (the .debs land in $(DEB_BUILD)), then lintian: errors fail.
DEB_BUILD ?= build-deb
deb: deps
	rm -rf $(DEB_BUILD) && mkdir -p $(DEB_BUILD)/src
	tar -c --exclude=./.git --exclude='./build*' --exclude=./.cache --exclude=__pycache__ \
	    --exclude=./fuzz/out --exclude=./bench/results . | tar -x -C $(DEB_BUILD)/src
	cd $(DEB_BUILD)/src && dpkg-buildpackage -us -uc -b -jauto
	lintian --fail-on error --tag-display-limit 0 $(DEB_BUILD)/*.changes

# systemd as PID 1: a cached Debian 12 tree booted with systemd-nspawn, the .debs installed in it
# (tests/systemd; the fault build's gatehoused for the forced-revert case).
check-systemd: deb fault-builds
	tests/run-all --only systemd --deb $(DEB_BUILD) --fault $(FAULT_BUILD)
