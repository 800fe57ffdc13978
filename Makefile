# Forge build. `make` builds build/bin/{forged,forgectl,forge-agent};
# `make test` runs the whole suite; `make run` installs, builds and starts forged.
# SAN=1 builds into build-san/ with ASan+UBSan.

SAN ?= 0
ifeq ($(SAN),1)
B := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1 -g
else
B := build
SANFLAGS :=
OPT := -O2 -g
endif

CC ?= cc
MUSLCC ?= musl-gcc

WARN := -Wall -Wextra -Werror -Wmissing-prototypes -Wshadow -Wformat=2 -Wno-unused-parameter
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
COMMON := -std=gnu11 $(OPT) $(WARN) -D_GNU_SOURCE -Iinclude -Isrc
CFLAGS_ALL = $(COMMON) $(HARDEN) $(SANFLAGS) $(EXTRA_CFLAGS)
LDFLAGS_ALL := -pie -Wl,-z,relro -Wl,-z,now $(SANFLAGS)

DAEMON_LIBS := -luv -ljansson -larchive -lhttp_parser -lwslay -lnettle -lseccomp -lm
CLI_LIBS := -lcurl -ljansson -lwslay -lnettle

basic_src := $(wildcard src/basic/*.c)
proto_src := $(wildcard src/proto/*.c)
agent_src := $(wildcard src/agent/*.c)
daemon_src := $(filter-out src/daemon/main.c,$(shell find src/daemon -name '*.c' | sort))
libforge_src := $(wildcard src/libforge/*.c)
cli_src := $(wildcard src/cli/*.c)

obj = $(patsubst src/%.c,$(B)/obj/%.o,$(1))
muslobj = $(patsubst src/%.c,$(B)/musl/%.o,$(1))

BIN := $(B)/bin
all: $(BIN)/forged $(BIN)/forgectl $(BIN)/forge-agent $(BIN)/forged-faults $(BIN)/forge-vm-build

$(B)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@
$(B)/obj/libforge/%.o: EXTRA_CFLAGS += -fvisibility=hidden

# The agent is static and links only basic and proto; musl keeps it small.
# Sanitizers do not apply to the static agent.
$(B)/musl/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(MUSLCC) -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -Isrc -fstack-protector-strong -MMD -MP -c $< -o $@

$(B)/libbasic.a: $(call obj,$(basic_src))
$(B)/libproto.a: $(call obj,$(proto_src))
$(B)/libforged.a: $(call obj,$(daemon_src))
$(B)/libforge.a: $(call obj,$(libforge_src))
$(B)/%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/forged: $(B)/obj/daemon/main.o $(B)/libforged.a $(B)/libproto.a $(B)/libbasic.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DAEMON_LIBS)

# forged-faults: the daemon compiled a second time with -DFORGE_FAULTS, so that its
# FAULT_POINT()s (src/basic/fault.h) SIGKILL it where FORGE_FAULT names them. Only
# tests/integration/test_faults.py runs it; the release forged has no fault code.
faultobj = $(patsubst src/%.c,$(B)/obj-faults/%.o,$(1))
$(B)/obj-faults/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DFORGE_FAULTS -MMD -MP -c $< -o $@
$(B)/libforged-faults.a: $(call faultobj,$(daemon_src))
$(BIN)/forged-faults: $(B)/obj-faults/daemon/main.o $(B)/libforged-faults.a $(B)/libproto.a $(B)/libbasic.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DAEMON_LIBS)

$(BIN)/forgectl: $(call obj,$(cli_src)) $(B)/libforge.a $(B)/libbasic.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CLI_LIBS)

$(BIN)/forge-agent: $(call muslobj,$(agent_src) $(proto_src) $(basic_src))
	@mkdir -p $(dir $@)
	$(MUSLCC) -static -o $@ $^

# The qemu isolator's guest-parts builder, which `forgectl vm setup` runs from beside it.
$(BIN)/forge-vm-build: images/vm/build-guest.sh
	@mkdir -p $(dir $@)
	install -p -m 0755 $< $@

# Unit tests mirror src/: tests/unit/<component>/test_*.c, each its own binary, linked
# with that component and what it depends on (cmocka runs each in its own process).
unit_src := $(shell find tests/unit -name 'test_*.c' 2>/dev/null | sort)
unit_bin := $(patsubst tests/unit/%.c,$(B)/tests/%,$(unit_src))
agentlib_src := $(filter-out src/agent/main.c,$(agent_src))
$(B)/libagent.a: $(call obj,$(agentlib_src))

TEST_CC = @mkdir -p $(dir $@) && $(CC) $(CFLAGS_ALL) -Itests/unit $(LDFLAGS_ALL) -o $@
$(B)/tests/basic/%: tests/unit/basic/%.c $(B)/libbasic.a
	$(TEST_CC) $^ -lcmocka
$(B)/tests/proto/%: tests/unit/proto/%.c $(B)/libproto.a $(B)/libbasic.a
	$(TEST_CC) $^ -lcmocka
$(B)/tests/agent/%: tests/unit/agent/%.c $(B)/libagent.a $(B)/libproto.a $(B)/libbasic.a
	$(TEST_CC) $^ -lcmocka
$(B)/tests/daemon/%: tests/unit/daemon/%.c $(B)/libforged.a $(B)/libproto.a $(B)/libbasic.a
	$(TEST_CC) $^ $(DAEMON_LIBS) -lcmocka
$(B)/tests/libforge/%: tests/unit/libforge/%.c $(B)/libforge.a $(B)/libbasic.a
	$(TEST_CC) $^ $(CLI_LIBS) -lcmocka
$(B)/tests/cli/%: tests/unit/cli/%.c $(filter-out $(B)/obj/cli/main.o,$(call obj,$(cli_src))) $(B)/libforge.a $(B)/libbasic.a
	$(TEST_CC) $^ $(CLI_LIBS) -lcmocka

unit: $(unit_bin) $(BIN)/forge-agent
	@set -e; for t in $(unit_bin); do echo "== $$t"; FORGE_AGENT_BIN=$(CURDIR)/$(BIN)/forge-agent $$t; done

# The security battery's in-sandbox probe (tests/security): static like the agent,
# without PIE so its buffers have 32-bit addresses for the i386/x32 ABI probes.
$(B)/tests/security/probe: $(wildcard tests/security/probe/*.c tests/security/probe/*.h)
	@mkdir -p $(dir $@)
	$(MUSLCC) -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -static -no-pie -o $@ $(filter %.c,$^)

PYTEST := /usr/bin/python3 -m pytest
integration: all $(BIN)/forged-faults $(B)/tests/security/probe
	FORGE_BUILD=$(B) $(PYTEST) -q -p no:cacheprovider tests/integration $(wildcard tests/security)

# Debian packages the build, the daemon and the tests need (DESIGN.md section 8).
DEB_PKGS := build-essential pkg-config musl-tools libuv1-dev libhttp-parser-dev \
	libwslay-dev nettle-dev libjansson-dev libseccomp-dev libarchive-dev libcurl4-openssl-dev libcmocka-dev \
	python3 python3-pytest nodejs clang libclang-rt-dev util-linux iproute2 bubblewrap e2fsprogs debootstrap \
	tmux qemu-system-x86 cpio
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

test: deps
	$(MAKE) all unit integration
	$(MAKE) SAN=1 all unit integration
	$(MAKE) fuzz-ci

# ISOLATOR=qemu makes the microVM guest parts first (forgectl vm setup).
ISOLATOR ?= auto
run: deps all
	mkdir -p /var/lib/forge
	if [ "$(ISOLATOR)" = qemu ]; then $(BIN)/forgectl vm setup --state-dir /var/lib/forge; fi
	$(BIN)/forged --listen 127.0.0.1:3456 --state-dir /var/lib/forge --isolator $(ISOLATOR)

# ---- fuzzing (docs/fuzzing.md) ----
# libFuzzer targets built with clang, ASan and UBSan into build-fuzz/. `make fuzz` runs
# each for FUZZ_SECONDS and fails on any crash, leak or sanitizer report; `make fuzz-ci`
# is the short run for `make test`. Sources are built again here (instrumented for
# coverage), never taken from build/ or build-san/.
FUZZ_CC := clang
FUZZ_SECONDS ?= 60
FUZZ_CI_SECONDS ?= 30
FUZZ_JOBS ?= 2
FB := build-fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -O1 -g $(WARN) -D_GNU_SOURCE -Iinclude -Isrc $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_TARGETS := fuzz_http fuzz_api_json fuzz_proto_agent fuzz_proto_host fuzz_path
fuzzobj = $(patsubst src/%.c,$(FB)/obj/%.o,$(1))

$(FB)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
$(FB)/fuzz/%.o: fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

FUZZ_LINK = @mkdir -p $(dir $@) && $(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^
fuzz_http_src := $(wildcard src/daemon/http/*.c) $(basic_src)
fuzz_api_src := $(daemon_src) $(proto_src) $(basic_src)
fuzz_agent_src := src/agent/conn.c src/agent/path.c $(proto_src) $(basic_src)
fuzz_host_src := src/daemon/agentc.c $(proto_src) $(basic_src)
fuzz_path_src := src/daemon/api/validate.c src/agent/path.c $(basic_src)

$(FB)/bin/fuzz_http: $(FB)/fuzz/fuzz_http.o $(FB)/fuzz/http-feed.o $(call fuzzobj,$(fuzz_http_src))
	$(FUZZ_LINK) -luv -lhttp_parser -lwslay -lnettle
$(FB)/bin/fuzz_api_json: $(FB)/fuzz/fuzz_api_json.o $(FB)/fuzz/http-feed.o $(call fuzzobj,$(fuzz_api_src))
	$(FUZZ_LINK) $(DAEMON_LIBS)
$(FB)/bin/fuzz_proto_agent: $(FB)/fuzz/fuzz_proto_agent.o $(call fuzzobj,$(fuzz_agent_src))
	$(FUZZ_LINK)
$(FB)/bin/fuzz_proto_host: $(FB)/fuzz/fuzz_proto_host.o $(call fuzzobj,$(fuzz_host_src))
	$(FUZZ_LINK) -luv
$(FB)/bin/fuzz_path: $(FB)/fuzz/fuzz_path.o $(call fuzzobj,$(fuzz_path_src))
	$(FUZZ_LINK) -ljansson

fuzz-build: $(addprefix $(FB)/bin/,$(FUZZ_TARGETS))

# Runs every target for FUZZ_SECONDS, FUZZ_JOBS at a time, each from its committed seeds
# (fuzz/corpus/<target>) plus what earlier runs found ($(FB)/corpus/<target>, not
# committed). A crash leaves its input in $(FB)/crashes/<target>/ and fails the run.
fuzz: fuzz-build
	@FB=$(FB) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) sh fuzz/run.sh $(FUZZ_TARGETS)

# The short run `make test` uses: every target for FUZZ_CI_SECONDS, two at a time.
fuzz-ci: fuzz-build
	@FB=$(FB) FUZZ_SECONDS=$(FUZZ_CI_SECONDS) FUZZ_JOBS=2 sh fuzz/run.sh $(FUZZ_TARGETS)

fuzz-clean:
	rm -rf $(FB)

.PHONY: fuzz fuzz-build fuzz-ci fuzz-clean
-include $(shell find $(FB) -name '*.d' 2>/dev/null)

clean:
	rm -rf build build-san build-fuzz

format:
	clang-format -i $$(find src include tests/unit -name '*.[ch]')

.PHONY: all unit integration deps test run clean format
.SECONDARY:

-include $(shell find $(B) -name '*.d' 2>/dev/null)
