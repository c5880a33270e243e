# ddb: a Lua 5.4 DynamoDB client with a C core.
#   make          build build/ddb/core.so (needs the Debian packages; `make deps` installs them)
#   make test     install what is missing, build, start moto on loopback, run the whole suite
#   make demo     install what is missing, build, start moto, run the messaging demo
#   make lint     luacheck
#   make bench    install what the benchmarks need, build, run bench/run: writes bench/RESULTS.md

LUA      ?= lua5.4
CC       ?= cc
CFLAGS   ?= -O2 -g
PKGS     := lua5.4 libcurl openssl
DDB_CFLAGS = -std=c11 -Wall -Wextra -Werror -fPIC -D_POSIX_C_SOURCE=200809L \
             $(shell pkg-config --cflags $(PKGS))
DDB_LIBS   = $(shell pkg-config --libs libcurl openssl)

SRC := $(wildcard src/*.c)
HDR := $(wildcard src/*.h)
BUILD ?= build
OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRC))

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;
export LUA_CPATH := $(abspath $(BUILD))/?.so;;

.PHONY: all deps build test test-unit demo lint clean bench bench-deps

all: $(BUILD)/ddb/core.so
build: $(BUILD)/ddb/core.so

$(BUILD)/obj/%.o: src/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DDB_CFLAGS) -c -o $@ $<

$(BUILD)/ddb/core.so: $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $(OBJ) $(LDFLAGS) $(DDB_LIBS)

# Debian packages and the project-local venv (moto server, botocore), only what is missing.
deps:
	@scripts/deps.sh

# The whole suite against a moto server started on a free loopback port.
test: deps
	@$(MAKE) --no-print-directory build
	@scripts/with-moto scripts/run-specs spec

demo: deps
	@$(MAKE) --no-print-directory build
	@scripts/demo

# Benchmarks (bench/): ddb beside boto3, the AWS CLI and a bare libcurl loop,
# against nginx on loopback; writes bench/RESULTS.md. BENCH_ARGS is passed to
# bench/run (e.g. BENCH_ARGS="--quick --parts percall").
BENCH_ARGS ?=

bench-deps:
	@scripts/deps.sh bench

BENCH_TOOLS := $(BUILD)/bench/curl_floor $(BUILD)/bench/measure

$(BUILD)/bench/curl_floor: bench/curl_floor.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c11 -Wall -Wextra -Werror $(shell pkg-config --cflags libcurl) -o $@ $< $(LDFLAGS) \
		$(shell pkg-config --libs libcurl)

$(BUILD)/bench/measure: bench/measure.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c11 -Wall -Wextra -Werror -o $@ $< $(LDFLAGS)

bench: bench-deps
	@$(MAKE) --no-print-directory build $(BENCH_TOOLS)
	@bench/run $(BENCH_ARGS)

# Memory safety and fuzzing (fuzz/README.md).
#   make test-asan      the whole suite with ddb/core.so built with ASan + UBSan
#                       (build/asan); every lua5.4 the specs start runs with gcc's
#                       ASan and UBSan runtimes preloaded (scripts/sanitize); any
#                       report fails the run
#   make test-valgrind  the C-heavy specs (VALGRIND_SPECS) under valgrind memcheck
#   make fuzz           each libFuzzer target of fuzz/ for FUZZ_SECONDS (30) seconds
#                       from its seeds in fuzz/corpus/<target>; built with clang
.PHONY: test-asan test-valgrind fuzz fuzz-build

SAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_BUILD := build/asan
VALGRIND_SPECS ?= spec/sigv4_suite_spec.lua spec/sigv4_botocore_spec.lua spec/json_spec.lua \
                  spec/client_spec.lua spec/retry_spec.lua spec/stream_spec.lua \
                  spec/stream_races_spec.lua spec/hostile_options_spec.lua

test-asan:
	@scripts/deps.sh asan
	@$(MAKE) --no-print-directory build BUILD=$(ASAN_BUILD) CFLAGS="-O1 -g $(SAN_FLAGS)"
	@LUA_CPATH='$(abspath $(ASAN_BUILD))/?.so;;' scripts/sanitize asan $(ASAN_BUILD) \
		scripts/with-moto scripts/run-specs spec

test-valgrind:
	@scripts/deps.sh valgrind
	@$(MAKE) --no-print-directory build
	@scripts/sanitize valgrind build/valgrind scripts/with-moto scripts/run-specs $(VALGRIND_SPECS)

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_BUILD   := build/fuzz
FUZZ_TARGETS := $(patsubst fuzz/%_fuzz.c,%,$(wildcard fuzz/*_fuzz.c))
FUZZ_CFLAGS  := -g -O1 $(SAN_FLAGS) -std=c11 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L \
                $(shell pkg-config --cflags $(PKGS)) -Isrc
FUZZ_OBJ     := $(patsubst src/%.c,$(FUZZ_BUILD)/obj/%.o,$(SRC))
FUZZ_BINS    := $(patsubst %,$(FUZZ_BUILD)/%_fuzz,$(FUZZ_TARGETS))

.SECONDARY: $(FUZZ_OBJ)
$(FUZZ_BUILD)/obj/%.o: src/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/%_fuzz: fuzz/%_fuzz.c fuzz/fuzz.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(shell pkg-config --libs $(PKGS))

fuzz-build:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run $(FUZZ_TARGETS)

lint:
	luacheck --no-color -q lua bin spec examples

clean:
	rm -rf $(BUILD)
