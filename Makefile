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

DAEMON_LIBS := -luv -ljansson -lhttp_parser -lwslay -lseccomp -lm
CLI_LIBS := -lcurl -ljansson

basic_src := $(wildcard src/basic/*.c)
proto_src := $(wildcard src/proto/*.c)
agent_src := $(wildcard src/agent/*.c)
daemon_src := $(filter-out src/daemon/main.c,$(shell find src/daemon -name '*.c' | sort))
libforge_src := $(wildcard src/libforge/*.c)
cli_src := $(wildcard src/cli/*.c)

obj = $(patsubst src/%.c,$(B)/obj/%.o,$(1))
muslobj = $(patsubst src/%.c,$(B)/musl/%.o,$(1))

BIN := $(B)/bin
all: $(BIN)/forged $(BIN)/forgectl $(BIN)/forge-agent

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

$(BIN)/forgectl: $(call obj,$(cli_src)) $(B)/libforge.a $(B)/libbasic.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CLI_LIBS)

$(BIN)/forge-agent: $(call muslobj,$(agent_src) $(proto_src) $(basic_src))
	@mkdir -p $(dir $@)
	$(MUSLCC) -static -o $@ $^

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

PYTEST := /usr/bin/python3 -m pytest
integration: all
	FORGE_BUILD=$(B) $(PYTEST) -q -p no:cacheprovider tests/integration $(wildcard tests/security)

# Debian packages the build, the daemon and the tests need (DESIGN.md section 8).
DEB_PKGS := build-essential pkg-config musl-tools libuv1-dev libhttp-parser-dev \
	libwslay-dev libjansson-dev libseccomp-dev libcurl4-openssl-dev libcmocka-dev \
	python3-pytest clang util-linux iproute2 bubblewrap
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

test: deps
	$(MAKE) all unit integration
	$(MAKE) SAN=1 all unit integration

run: deps all
	mkdir -p /var/lib/forge
	$(BIN)/forged --listen 127.0.0.1:3456 --state-dir /var/lib/forge --isolator auto

clean:
	rm -rf build build-san

format:
	clang-format -i $$(find src include tests/unit -name '*.[ch]')

.PHONY: all unit integration deps test run clean format
.SECONDARY:

-include $(shell find $(B) -name '*.d' 2>/dev/null)
