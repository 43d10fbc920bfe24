# secchat: end-to-end encrypted one-to-one chat over a ZeroMQ broker.
# Plain GNU make. `make` builds bin/, `make test` runs every test,
# `make demo` shows three users chatting through a local broker.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

# Debian packages the build, the tests and the demo need.
DEPS_PKGS = libzmq3-dev libczmq-dev libssl-dev libmsgpack-dev libcmocka-dev \
            libedit-dev pkg-config openssl gcc make
# The deployment test (tests/test_deploy.c) lints the manual pages
# (mandoc, man), validates the compose file (docker-compose) and checks
# the unit (systemd-analyze and libseccomp come with systemd).
DEPS_PKGS += mandoc man-db docker-compose systemd

# msgpack-c ships its pkg-config file as `msgpack` (<= 4.x) or `msgpack-c`.
MSGPACK_PC := $(shell pkg-config --exists msgpack-c 2>/dev/null && echo msgpack-c || echo msgpack)
PKGS       = libzmq libczmq libcrypto $(MSGPACK_PC)

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

.PHONY: all deps test demo clean build check run-demo
# The public targets install the packages first, then run make again so
# that pkg-config sees what was just installed.
all: deps
	@$(MAKE) --no-print-directory build
test: deps
	@$(MAKE) --no-print-directory check
demo: deps
	@$(MAKE) --no-print-directory run-demo

build: $(BINS)

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
check: $(BINS) $(TESTS)
	@failed=""; for t in $(TESTS); do \
	  echo "== $$t"; \
	  SC_BIN_DIR=$(dir $(firstword $(BINS))) $$t || failed="$$failed $$(basename $$t)"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; \
	echo "all $(words $(TESTS)) test programs passed"

run-demo: $(BINS)
	@sh deploy/demo.sh

clean:
	rm -rf build build-san bin

# `make install`: the binaries, the keys script, the manual pages and the
# systemd unit (its ExecStart rewritten to BINDIR) under DESTDIR+PREFIX.
# It builds what is missing but installs no packages.
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system

.PHONY: install uninstall
install: $(BINS)
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BINS) keys/secchat-keys $(DESTDIR)$(BINDIR)/
	install -m 0644 deploy/secchat.1 $(DESTDIR)$(MANDIR)/man1/secchat.1
	install -m 0644 deploy/secbroker.8 $(DESTDIR)$(MANDIR)/man8/secbroker.8
	sed 's|/usr/local/bin/|$(BINDIR)/|g' deploy/secbroker.service \
	  >$(DESTDIR)$(UNITDIR)/.secbroker.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/.secbroker.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/.secbroker.service.tmp $(DESTDIR)$(UNITDIR)/secbroker.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/secbroker $(DESTDIR)$(BINDIR)/secchat \
	  $(DESTDIR)$(BINDIR)/secchat-keys $(DESTDIR)$(MANDIR)/man1/secchat.1 \
	  $(DESTDIR)$(MANDIR)/man8/secbroker.8 $(DESTDIR)$(UNITDIR)/secbroker.service

-include $(LIB_OBJ:.o=.d) $(TLIB_OBJ:.o=.d) $(TESTS:=.d) \
         $(BUILD)/broker/secbroker.d $(BUILD)/client/secchat.d

# Keep the test objects: they are inputs of the test programs, not junk.
.SECONDARY:
