# Makefile: the two commands (make demo, make check) and friends; meson does the build.
BUILD ?= build
NINJA ?= ninja

.PHONY: all deps demo check test unit integration fuzz bench clean

all: $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD)

deps:
	scripts/install-deps

# Runs the demo server (see README).
demo: deps all
	scripts/demo

# Installs, builds and runs every test; ends with "N passed, N failed".
check: deps all
	tests/run-all --build $(BUILD)

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
	rm -rf $(BUILD)
