# secchat: end-to-end encrypted one-to-one chat over a ZeroMQ broker.
# Plain GNU make. `make` builds bin/, `make test` runs every test,
# `make demo` shows three users chatting through a local broker.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

# The release: `secbroker --version`, `secchat --version` and
# `secchat-keys --version` all say this, and nothing else holds it.
VERSION    = 1.0.0

# Debian packages the build, the tests and the demo need.
DEPS_PKGS = libzmq3-dev libczmq-dev libssl-dev libmsgpack-dev libcmocka-dev \
            libedit-dev libmicrohttpd-dev libsqlite3-dev pkg-config openssl gcc make
# The deployment test (tests/test_deploy.c) lints the manual pages
# (mandoc, man), validates the compose file (docker-compose) and checks
# the unit (systemd-analyze and libseccomp come with systemd).
DEPS_PKGS += mandoc man-db docker-compose systemd
# A cluster of brokers (secbroker --cluster) talks over NATS: the C
# client, and the server the cluster tests start.
DEPS_PKGS += nats-server libnats-dev

# msgpack-c ships its pkg-config file as `msgpack` (<= 4.x) or `msgpack-c`.
MSGPACK_PC := $(shell pkg-config --exists msgpack-c 2>/dev/null && echo msgpack-c || echo msgpack)
PKGS       = libzmq libczmq libcrypto libmicrohttpd $(MSGPACK_PC) libnats sqlite3

CC        ?= cc
CSTD       = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN       = -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wformat-security \
             -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition \
             -Wpointer-arith -Wcast-align -Wvla -Wwrite-strings -Wundef \
             -Wnull-dereference -Wimplicit-fallthrough -Wdouble-promotion
# CI turns every warning into an error.
ifneq ($(CI),)
WERROR     = -Werror
endif
OPT        = -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2
BUILD      = build

ifeq ($(SANITIZE),1)
OPT        = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=all
LDSAN      = -fsanitize=address,undefined
BUILD      = build-san
endif

INCLUDES   = -Icodec -Icrypto -Ibroker -Iclient -Itests
CFLAGS    += $(CSTD) $(WARN) $(WERROR) $(OPT) $(INCLUDES) -MMD -MP \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    += $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDFLAGS   += $(LDSAN) -Wl,-z,relro,-z,now
EDIT_LIBS  = $(shell pkg-config --libs libedit 2>/dev/null)
CMOCKA     = $(shell pkg-config --cflags --libs cmocka 2>/dev/null)

# Every module file except the two main()s goes into one static library
# that the binaries and the tests link.
LIB_SRC    = $(wildcard codec/*.c crypto/*.c) \
             $(filter-out broker/secbroker.c, $(wildcard broker/*.c)) \
             $(filter-out client/secchat.c, $(wildcard client/*.c))
LIB_OBJ    = $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB        = $(BUILD)/libsecchat.a
# Helpers shared by the test programs (tests/sc_test*.c).
TLIB_SRC   = $(wildcard tests/sc_test*.c)
TLIB_OBJ   = $(TLIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC   = $(wildcard tests/test_*.c)
TESTS      = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BINS       = bin/secbroker bin/secchat
ifeq ($(SANITIZE),1)
BINS       = $(BUILD)/bin/secbroker $(BUILD)/bin/secchat
endif
# The key script with VERSION written into it, beside the binaries.
KEYS_SCRIPT = $(dir $(firstword $(BINS)))secchat-keys

.PHONY: all deps test demo clean build check run-demo layers
# The public targets install the packages first, then run make again so
# that pkg-config sees what was just installed.
all: deps
	@$(MAKE) --no-print-directory build
test: deps
	@$(MAKE) --no-print-directory check
demo: deps
	@$(MAKE) --no-print-directory run-demo

build: $(BINS) $(KEYS_SCRIPT)

# Install what is missing from Debian's packages (as root), or say how.
deps:
	@missing=""; for p in $(DEPS_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make deps: installing$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	      || { echo "make deps: apt-get install failed" >&2; exit 1; }; \
	  else \
	    echo "make deps: missing packages; run as root:" >&2; \
	    echo "  apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

# The two main()s print VERSION; a new one rebuilds them.
VERSION_DEF = -DSC_VERSION='"$(VERSION)"'
$(BUILD)/broker/secbroker.o $(BUILD)/client/secchat.o: CFLAGS += $(VERSION_DEF)
$(BUILD)/broker/secbroker.o $(BUILD)/client/secchat.o: Makefile

$(KEYS_SCRIPT): keys/secchat-keys Makefile
	@mkdir -p $(dir $@)
	sed 's|^SC_VERSION=.*|SC_VERSION=$(VERSION)|' keys/secchat-keys >$@.tmp
	chmod 0755 $@.tmp
	mv -f $@.tmp $@

bin/secbroker $(BUILD)/bin/secbroker: $(BUILD)/broker/secbroker.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

bin/secchat $(BUILD)/bin/secchat: $(BUILD)/client/secchat.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(EDIT_LIBS) $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TLIB_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $^ $(CMOCKA) $(EDIT_LIBS) $(LDLIBS) -o $@

# Run every test program; fail at the end if any failed. The integration
# tests find the binaries through SC_BIN_DIR.
check: layers $(BINS) $(KEYS_SCRIPT) $(TESTS)
	@failed=""; for t in $(TESTS); do \
	  echo "== $$t"; \
	  SC_BIN_DIR=$(dir $(firstword $(BINS))) $$t || failed="$$failed $$(basename $$t)"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; \
	echo "all $(words $(TESTS)) test programs passed"

# The layers read codec <- crypto <- broker, client: no object of a lower
# layer may use a symbol that only a higher one defines, and the codec
# uses no OpenSSL at all (it knows no keys).
layers: $(LIB_OBJ)
	@codec="$(filter $(BUILD)/codec/%,$(LIB_OBJ))"; crypto="$(filter $(BUILD)/crypto/%,$(LIB_OBJ))"; \
	defs () { for d in "$$@"; do eval nm --defined-only -g \$$$$d; done | awk 'NF==3{print $$3}' | sort -u; }; \
	uses () { eval nm -u \$$$$1 | awk 'NF==2{print $$2}' | sort -u; }; \
	bad=$$( { uses codec | grep -E '^(OPENSSL_|EVP_|sc_)'; uses crypto | grep '^sc_'; } \
	        | sort -u | comm -23 - "$$(defs codec crypto > $(BUILD)/.layers; echo $(BUILD)/.layers)"; \
	        uses codec | grep '^sc_' | comm -23 - "$$(defs codec > $(BUILD)/.layers-codec; echo $(BUILD)/.layers-codec)"); \
	if [ -n "$$bad" ]; then echo "layers: a lower layer uses a higher one's symbols:" >&2; echo "$$bad" >&2; exit 1; fi; \
	echo "layers: codec <- crypto <- broker, client"

run-demo: $(BINS)
	@sh deploy/demo.sh

clean:
	rm -rf build build-san bin

# `make install`: the binaries, the keys script, the manual pages, the
# systemd unit (its ExecStart rewritten to BINDIR), and README.md and
# docs/*.md in DOCDIR, under DESTDIR+PREFIX.
# It builds what is missing but installs no packages.
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DOCDIR     ?= $(PREFIX)/share/doc/secchat
DOCS        = README.md $(wildcard docs/*.md)

.PHONY: install uninstall
install: $(BINS) $(KEYS_SCRIPT)
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BINS) $(KEYS_SCRIPT) $(DESTDIR)$(BINDIR)/
	install -m 0644 deploy/secchat.1 $(DESTDIR)$(MANDIR)/man1/secchat.1
	install -m 0644 deploy/secchat-keys.1 $(DESTDIR)$(MANDIR)/man1/secchat-keys.1
	install -m 0644 deploy/secbroker.8 $(DESTDIR)$(MANDIR)/man8/secbroker.8
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	sed 's|/usr/local/bin/|$(BINDIR)/|g' deploy/secbroker.service \
	  >$(DESTDIR)$(UNITDIR)/.secbroker.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/.secbroker.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/.secbroker.service.tmp $(DESTDIR)$(UNITDIR)/secbroker.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/secbroker $(DESTDIR)$(BINDIR)/secchat \
	  $(DESTDIR)$(BINDIR)/secchat-keys $(DESTDIR)$(MANDIR)/man1/secchat.1 \
	  $(DESTDIR)$(MANDIR)/man1/secchat-keys.1 \
	  $(DESTDIR)$(MANDIR)/man8/secbroker.8 $(DESTDIR)$(UNITDIR)/secbroker.service \
	  $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)))
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null

-include $(LIB_OBJ:.o=.d) $(TLIB_OBJ:.o=.d) $(TESTS:=.d) \
         $(BUILD)/broker/secbroker.d $(BUILD)/client/secchat.d

# Keep the test objects: they are inputs of the test programs, not junk.
.SECONDARY:

# ---- Fuzzing, sanitizers, static analysis, valgrind ---------------------
# make fuzz      libFuzzer targets (clang) for the envelope and body
#                decoders and the broker's and client's protocol cores;
#                seeds from real sessions (mkcorpus), then each target for
#                FUZZ_SECONDS; fails when one crashes. Findings stay in
#                build-fuzz/crashes/TARGET/: minimise one with
#                `build-fuzz/fuzz_TARGET -minimize_crash=1 -runs=10000 FILE`
#                and add it to tests/fuzz/regress/TARGET/.
# make fuzz-corpus  refresh the checked-in seeds in tests/fuzz/corpus/.
# make lint      cppcheck and clang-tidy (.clang-tidy, .cppcheck) over the
#                modules; any finding fails.
# make valgrind  the integration tests with the real binaries under
#                valgrind memcheck (SC_VALGRIND=1, tests/sc_testproc.c).
# `make test SANITIZE=1` (above) is the ASan + UBSan build of every test.
DEPS_PKGS += clang libclang-rt-14-dev cppcheck clang-tidy valgrind

.PHONY: fuzz fuzz-build fuzz-run fuzz-corpus fuzz-clean lint lint-run \
        valgrind valgrind-run

FUZZ_TARGETS  = envelope body broker client
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 16384
FUZZ_CC      ?= clang
FUZZ_DIR      = build-fuzz
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS   = $(CSTD) $(WARN) $(WERROR) -O1 -g -fno-omit-frame-pointer \
                $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(INCLUDES) -MMD -MP \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# The modules (as a library: a target links what it uses), the key helper
# (with sc_testproc for its temporary directory)
# and the shared harness code, instrumented.
FUZZ_LIB      = $(FUZZ_DIR)/libsecchat.a
FUZZ_LIB_OBJ  = $(FUZZ_DIR)/tests/sc_testkeys.o $(FUZZ_DIR)/tests/sc_testproc.o $(FUZZ_DIR)/tests/fuzz/sc_fuzz.o $(FUZZ_LIB)
FUZZ_BINS     = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_MK_OBJ   = $(FUZZ_DIR)/tests/fuzz/mkcorpus.o \
                $(FUZZ_DIR)/tests/fuzz/fuzz_broker.nomain.o \
                $(FUZZ_DIR)/tests/fuzz/fuzz_client.nomain.o

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-run
fuzz-build: $(FUZZ_BINS) $(FUZZ_DIR)/mkcorpus

$(FUZZ_DIR)/%.nomain.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DSC_FUZZ_NO_MAIN -c $< -o $@
$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_LIB): $(LIB_SRC:%.c=$(FUZZ_DIR)/%.o)
	$(AR) rcs $@ $^
$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) $^ $(LDLIBS) -o $@
$(FUZZ_DIR)/mkcorpus: $(FUZZ_MK_OBJ) $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer-no-link $(FUZZ_SAN) $^ $(LDLIBS) -o $@

# Fresh seeds from real sessions into build-fuzz/seeds (the checked-in
# ones stay as they are), then each target on its own corpus plus every
# seed and regression input. libFuzzer writes new inputs to the first
# directory only.
fuzz-run: fuzz-build
	@rm -rf $(FUZZ_DIR)/seeds && $(FUZZ_DIR)/mkcorpus $(FUZZ_DIR)/seeds
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/crashes/$$t; \
	  echo "== fuzz_$$t, $(FUZZ_SECONDS) s (log: $(FUZZ_DIR)/fuzz_$$t.log)"; \
	  $(FUZZ_DIR)/fuzz_$$t -max_len=$(FUZZ_MAX_LEN) -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=20 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crashes/$$t/ \
	    $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t tests/fuzz/regress/$$t \
	    $(FUZZ_DIR)/seeds/$$t >$(FUZZ_DIR)/fuzz_$$t.log 2>&1 \
	    || { failed="$$failed $$t"; tail -n 40 $(FUZZ_DIR)/fuzz_$$t.log; }; \
	  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' $(FUZZ_DIR)/fuzz_$$t.log | sed 's/^/   /'; \
	  grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' \
	    $(FUZZ_DIR)/fuzz_$$t.log | sed 's/^/   /'; \
	done; \
	if [ -n "$$failed" ]; then \
	  echo "FUZZ FAILED:$$failed (inputs in $(FUZZ_DIR)/crashes/)"; exit 1; \
	fi; echo "fuzz: no crash in $(words $(FUZZ_TARGETS)) targets"

# Only the seeds that add coverage are kept (libFuzzer's -merge=1).
fuzz-corpus: fuzz-build
	rm -rf $(FUZZ_DIR)/seeds-all $(FUZZ_TARGETS:%=tests/fuzz/corpus/%)
	$(FUZZ_DIR)/mkcorpus $(FUZZ_DIR)/seeds-all
	@for t in $(FUZZ_TARGETS); do mkdir -p tests/fuzz/corpus/$$t; \
	  $(FUZZ_DIR)/fuzz_$$t -merge=1 tests/fuzz/corpus/$$t $(FUZZ_DIR)/seeds-all/$$t \
	    >$(FUZZ_DIR)/merge_$$t.log 2>&1 || { cat $(FUZZ_DIR)/merge_$$t.log; exit 1; }; \
	  echo "tests/fuzz/corpus/$$t: $$(ls tests/fuzz/corpus/$$t | wc -l) seeds"; done

fuzz-clean:
	rm -rf $(FUZZ_DIR)
clean: fuzz-clean

# The regression test links the fuzz targets' entry functions, built
# without libFuzzer (tests/test_fuzz_regress.c).
FUZZ_REG_OBJ  = $(BUILD)/tests/fuzz/sc_fuzz.o $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/fuzz_%.o)
$(BUILD)/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSC_FUZZ_NO_MAIN -c $< -o $@
$(BUILD)/tests/test_fuzz_regress: $(BUILD)/tests/test_fuzz_regress.o $(FUZZ_REG_OBJ) \
                                  $(TLIB_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $^ $(CMOCKA) $(EDIT_LIBS) $(LDLIBS) -o $@

# Static analysis of the modules (not the tests). Both tools must end
# clean; every suppression carries its reason (.cppcheck, .clang-tidy,
# or an inline cppcheck-suppress comment).
LINT_SRC  = $(wildcard codec/*.c crypto/*.c broker/*.c client/*.c)
lint: deps
	@$(MAKE) --no-print-directory lint-run
lint-run:
	@rc=0; echo "== cppcheck"; \
	cppcheck --enable=warning,style,performance,portability --error-exitcode=1 \
	  --inline-suppr --suppressions-list=.cppcheck --std=c11 --quiet \
	  $(VERSION_DEF) $(INCLUDES) $(LINT_SRC) || rc=1; \
	echo "== clang-tidy"; \
	mkdir -p $(BUILD); \
	clang-tidy --quiet $(LINT_SRC) -- $(CSTD) $(VERSION_DEF) $(INCLUDES) \
	  $(shell pkg-config --cflags $(PKGS) 2>/dev/null) >$(BUILD)/clang-tidy.log 2>&1 \
	  || rc=1; grep -v ' warnings\? generated\.$$' $(BUILD)/clang-tidy.log; \
	if [ $$rc = 0 ]; then echo "lint: clean"; else echo "LINT FAILED"; fi; exit $$rc

# valgrind cannot run ASan binaries: this uses the plain build.
valgrind: deps
	@$(MAKE) --no-print-directory valgrind-run SANITIZE=
valgrind-run: bin/secbroker bin/secchat build/tests/test_integration
	SC_VALGRIND=1 SC_BIN_DIR=bin/ build/tests/test_integration

-include $(LIB_SRC:%.c=$(FUZZ_DIR)/%.d) $(patsubst %.o,%.d,$(filter %.o,$(FUZZ_LIB_OBJ))) $(FUZZ_MK_OBJ:.o=.d) $(FUZZ_BINS:$(FUZZ_DIR)/%=$(FUZZ_DIR)/tests/fuzz/%.d) \
         $(FUZZ_REG_OBJ:.o=.d)

# ---- Benchmarks ---------------------------------------------------------
# make bench    relay throughput and latency against a raw ZeroMQ relay,
#               and across two nodes of a cluster (secbroker --cluster
#               over a local nats-server) against one broker,
#               logins against the crypto bound, 10,000 idle sessions
#               against a raw ROUTER's connections, side by side in one
#               run: one `name value` line per figure on stdout
#               (tests/bench/secbench.c, docs/PERFORMANCE.md). Extra
#               options in BENCH_ARGS, e.g. BENCH_ARGS=--quick.
.PHONY: bench bench-build bench-run
BENCH_SRC   = $(wildcard tests/bench/*.c)
BENCH_OBJ   = $(BENCH_SRC:%.c=$(BUILD)/%.o)
BENCH_BIN   = $(BUILD)/bench/secbench
BENCH_ARGS ?=

bench: deps
	@$(MAKE) --no-print-directory bench-run
bench-build: $(BENCH_BIN) $(BINS)
$(BENCH_BIN): $(BENCH_OBJ) $(BUILD)/tests/sc_testproc.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
bench-run: bench-build
	@$(BENCH_BIN) --broker $(firstword $(BINS)) $(BENCH_ARGS)

# make bench-micro  single calls on their own, no sockets (tests/bench/micro/):
#               ns per AEAD seal and open, per body decode, per relayed
#               message in the broker's core; `name value` lines, the
#               minimum of several repetitions. Not tests: nothing is timed
#               against a limit. bench_presence also starts a local
#               nats-server (the cluster's presence and list costs).
.PHONY: bench-micro bench-micro-build bench-micro-run
MICRO_SRC   = $(wildcard tests/bench/micro/*.c)
MICRO_BINS  = $(MICRO_SRC:tests/bench/micro/%.c=$(BUILD)/bench/%)

bench-micro: deps
	@$(MAKE) --no-print-directory bench-micro-run
bench-micro-build: $(MICRO_BINS)
# The tests' helpers, linked as the tests link them (some call cmocka).
$(BUILD)/bench/bench_%: $(BUILD)/tests/bench/micro/bench_%.o $(TLIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(CMOCKA) $(LDLIBS) -o $@
bench-micro-run: bench-micro-build
	@for b in $(MICRO_BINS); do $$b || exit 1; done

-include $(BENCH_OBJ:.o=.d) $(MICRO_SRC:%.c=$(BUILD)/%.d)
