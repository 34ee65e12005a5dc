# Makefile: the two commands (make demo, make check) and friends; meson does the build.
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
NINJA ?= ninja

.PHONY: all deps demo check sanitizers test unit integration fuzz bench clean

all: $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD)

deps:
	scripts/install-deps

# Runs the demo server (see README).
demo: deps all
	scripts/demo --build $(BUILD)

# Installs, builds (plain, ASan+UBSan, TSan) and runs every test; ends with "N passed, N failed".
check: deps all sanitizers
	tests/run-all --build $(BUILD) --asan $(ASAN_BUILD) --tsan $(TSAN_BUILD)

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
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz
