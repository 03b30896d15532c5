# exshim: non-recursive build.  make | make test | make run | make fuzz | make bench | make lint
#   BUILD=dir   object/binary directory (default build); helpers may use their own
#   SAN=1       AddressSanitizer + UndefinedBehaviorSanitizer
#   WERROR=1    warnings are errors (CI)

BUILD  ?= build
CC     ?= cc
CLANG  ?= clang-14
PKGS   := libevent libevent_openssl openssl krb5-gssapi krb5 libconfig libsystemd

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN   := -Wall -Wextra -Wwrite-strings -Wformat=2 -Wshadow -Wpointer-arith -Wmissing-prototypes \
          -Wstrict-prototypes -Wno-unused-parameter
OPT    ?= -O2 -g
CFLAGS_ALL := -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE $(OPT) $(WARN) -I. $(PKG_CFLAGS) \
              $(if $(WERROR),-Werror) -MMD -MP
ifeq ($(SAN),1)
CFLAGS_ALL += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS_ALL += -fsanitize=address,undefined
endif
LIBS := $(PKG_LIBS)
# Debian's http-parser is no part of exshim: it is the oracle that the head parser's
# differential test and fuzzer compare against, and only those two link it.
ORACLE_SRC  := tests/unit/h1_oracle.c
ORACLE_LIBS := -lhttp_parser

AUTH_SRC  := $(wildcard auth/*.c)
CONF_SRC  := $(wildcard conf/*.c)
PROXY_SRC := $(filter-out proxy/main.c,$(wildcard proxy/*.c))
LAB_SRC   := $(wildcard bench/lab/*.c)
LOAD_SRC  := $(wildcard bench/load/*.c)
PROBE_SRC := $(wildcard probe/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBAUTH  := $(BUILD)/libauth.a
LIBCONF  := $(BUILD)/libconf.a
LIBPROXY := $(BUILD)/libproxy.a

EXSHIM := $(BUILD)/exshim
LAB    := $(BUILD)/exshim-lab
BENCH  := $(BUILD)/exshim-bench
PROBE  := $(BUILD)/exshim-probe
UNITS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))

BINS := $(EXSHIM) $(if $(LAB_SRC),$(LAB)) $(if $(LOAD_SRC),$(BENCH)) $(if $(PROBE_SRC),$(PROBE))
# Test programs the end-to-end scripts run (tests/tools/NAME.c -> $(BUILD)/tests-tools/NAME).
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOLS    := $(patsubst tests/tools/%.c,$(BUILD)/tests-tools/%,$(TOOL_SRC))

.PHONY: all units tools fuzzers test check run fuzz bench lint clean deps
all: $(BINS) $(TOOLS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(LIBAUTH): $(call obj,$(AUTH_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIBCONF): $(call obj,$(CONF_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIBPROXY): $(call obj,$(PROXY_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(EXSHIM): $(call obj,proxy/main.c) $(LIBPROXY) $(LIBAUTH) $(LIBCONF)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
$(LAB): $(call obj,$(LAB_SRC)) $(LIBPROXY) $(LIBAUTH) $(LIBCONF)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
$(BENCH): $(call obj,$(LOAD_SRC)) $(LIBPROXY) $(LIBAUTH) $(LIBCONF)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
# exshim-probe shares the bench's GSS initiator and RTS builders (bench/load/bench_{gss,rts}.c)
$(PROBE): $(call obj,$(PROBE_SRC) bench/load/bench_gss.c bench/load/bench_rts.c) $(LIBPROXY) \
          $(LIBAUTH) $(LIBCONF)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

# Unit tests: one binary per file; static archives mean each links only what it uses.
$(BUILD)/tests/%: $(call obj,tests/unit/%.c) $(LIBPROXY) $(LIBAUTH) $(LIBCONF)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) -lcmocka
units: $(UNITS)
$(BUILD)/tests/test_http1: $(call obj,$(ORACLE_SRC))
$(BUILD)/tests/test_http1: LIBS += $(ORACLE_LIBS)

# test_auth_edge runs auth/edge.c over a fake GSS layer: every authgss_* call edge.c makes is
# redirected to the test's __wrap_ functions, and free() is wrapped to check that password
# bytes are zero when they are freed.
comma := ,
EDGE_WRAPS := authgss_accept_new authgss_accept_free authgss_accept_step authgss_accept_client \
              authgss_accept_spnego authgss_accept_take_cred authgss_verify_password \
              authgss_cred_impersonate authgss_cred_password_krb5 authgss_cred_password_ntlm \
              authgss_cred_free authgss_cred_name authgss_cred_mech authgss_init_new \
              authgss_init_free authgss_init_step free
$(BUILD)/tests/test_auth_edge: LDFLAGS_ALL += $(addprefix -Wl$(comma)--wrap=,$(EDGE_WRAPS))

# test_tlsio counts the write() calls proxy/tls.c makes.
$(BUILD)/tests/test_tlsio: LDFLAGS_ALL += -Wl,--wrap=write

# edge_client plays the proxy over auth/gss.h for t80_edge_gss.sh: it links libauth.a only.
$(BUILD)/tests-tools/%: $(call obj,tests/tools/%.c) $(LIBAUTH)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
tools: $(TOOLS)

# libFuzzer targets: clang, ASan+UBSan, the pure parsers compiled again with coverage.
FUZZ_CFLAGS := -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -g -O1 -I. $(PKG_CFLAGS) \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
# Pure wire-data parsers (no libevent, no logger): fuzzed and unit-tested on their own.
PURE_SRC  := $(wildcard proxy/http1.c proxy/chunked.c proxy/target.c proxy/guard.c proxy/proxyproto.c)
FUZZ_DEPS := $(AUTH_SRC) $(PURE_SRC)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/fuzz/fuzz_http1: $(ORACLE_SRC)
$(BUILD)/fuzz/fuzz_http1: LIBS += $(ORACLE_LIBS)
# Session-level target: the real session code (all of proxy/ but main.c, auth/, conf/) over
# socketpairs and a loopback backend; this rule wins over the pattern rule above.
FUZZ_SESSION := $(BUILD)/fuzz/fuzz_session
$(FUZZ_SESSION): tests/fuzz/fuzz_session.c $(PROXY_SRC) $(AUTH_SRC) $(CONF_SRC)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -o $@ $^ $(LIBS)
fuzzers: $(FUZZERS) $(FUZZ_SESSION)

# exshim-probe's parsers of server input: the pure parts of the probe on top of FUZZ_DEPS
PROBE_PURE := probe/wire.c
$(BUILD)/fuzz/fuzz_probe_%: tests/fuzz/fuzz_probe_%.c $(FUZZ_DEPS) $(PROBE_PURE)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -o $@ $^ $(LIBS)

deps:
	@bash tests/install-deps.sh

test check: deps
	$(MAKE) all units
	$(MAKE) BUILD=$(BUILD)/san SAN=1 all units
	$(MAKE) fuzzers
	BUILD=$(BUILD) bash tests/run

fuzz: fuzzers
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} bash tests/run --only fuzz

run: deps
	$(MAKE) all
	bash tests/make-run.sh

bench: deps
	$(MAKE) all
	bash bench/compare

# No pipes in these recipes: each line's exit status is the check's own.
lint:
	clang-format --dry-run --Werror proxy/*.[ch] auth/*.[ch] conf/*.[ch] bench/lab/*.[ch] \
	    probe/*.[ch]
	@! grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok|alloca)\(' \
	    proxy/*.c auth/*.c conf/*.c bench/*/*.c probe/*.c || (echo "banned function"; false)
	@! grep -ln '#include "proxy/' auth/*.[ch] conf/*.[ch] || (echo "auth/conf include proxy/"; false)
	@python3 tests/tools/includes.py proxy auth conf bench/lab bench/load probe

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
