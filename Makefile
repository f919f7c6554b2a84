# pycell: build, test, install, demo. The only entry point a user needs.
# `make demo` installs what is missing, builds everything and runs a demo job;
# `make test` runs the whole suite.

PREFIX  ?= /usr/local
DESTDIR ?=
PROFILE ?= minimal
PYTHON  ?= /usr/bin/python3
BUILD   := build
BIN     := $(BUILD)/bin
OBJ     := $(BUILD)/obj
ASANDIR := $(BUILD)/asan

CC      ?= cc
PKGS    := libseccomp libcap libmnl json-c
# libmicrohttpd: the header only; `pycell serve` dlopens it (runtime/serve_http.c says why)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) libmicrohttpd 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation
HARDEN  := -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection -fPIE
CFLAGS  ?= -O2 -g
ALL_CFLAGS := $(WARN) $(CFLAGS) $(HARDEN) $(PKG_CFLAGS) -iquote runtime -MMD -MP
LDFLAGS_ALL := -pie -Wl,-z,relro,-z,now $(LDFLAGS)
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# Host-side runtime: every runtime/*.c except the entry point is a library object.
RT_SRC  := $(filter-out runtime/main.c,$(wildcard runtime/*.c))
RT_OBJ  := $(RT_SRC:runtime/%.c=$(OBJ)/%.o)
ASAN_OBJ := $(RT_SRC:runtime/%.c=$(ASANDIR)/obj/%.o)
INIT_SRC := $(wildcard runtime/init/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BIN)/unit/%)
PROBE_SRC := $(wildcard tests/probe/*.c)

.PHONY: all deps rootfs rootfs-test demo test test-unit test-integration asan test-asan \
        install clean format check-format analyze
all: $(BIN)/pycell $(BIN)/pycell-init $(if $(PROBE_SRC),$(BIN)/pycell-probe) $(BIN)/bench-floor-chain $(BUILD)/.shim-pyc

# The shim is mounted read-only and jobs run without writing bytecode, so
# compile it here (same 3.11 magic as the rootfs): ~8 ms less per job.
$(BUILD)/.shim-pyc: $(wildcard runtime/shim/*.py)
	@mkdir -p $(@D)
	$(PYTHON) -m compileall -q runtime/shim
	@touch $@

$(OBJ)/%.o: runtime/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# pycell links libseccomp, libcap and json-c statically (Debian ships their
# .a): ld.so maps and relocates two objects (libc, libmnl) instead of five at
# every `pycell run` and `pycell run --server`: ~0.2 ms per exec
# (docs/benchmarks.md). libmnl ships no .a and stays shared, like libc.
# The ASan build and the unit tests link everything shared.
STATIC_PKGS := libseccomp libcap json-c
PYCELL_LIBS := -Wl,-Bstatic $(shell pkg-config --libs --static $(STATIC_PKGS) 2>/dev/null) -Wl,-Bdynamic \
	$(filter-out $(shell pkg-config --libs $(STATIC_PKGS) 2>/dev/null),$(PKG_LIBS))
$(BIN)/pycell: $(OBJ)/main.o $(RT_OBJ)
	@mkdir -p $(@D)
	$(CC) $^ -o $@ $(LDFLAGS_ALL) $(PYCELL_LIBS)

# pycell-init runs inside the rootfs, so it never carries sanitizer runtimes.
# It embeds the host's python3-dev release, which must be the rootfs's too
# (README, "Another Python"); the supervisor checks the rootfs for it.
# PYCELL_INIT_LINK=static (default): Debian's libpython3.X.a, what /usr/bin/python3.X
# itself is linked from (non-PIC, so non-PIE like that binary; -E exports the C API to
# lib-dynload and numpy's extension modules): start-up and pure-Python speed match
# /usr/bin/python3. PYCELL_INIT_LINK=shared: PIE, loads the rootfs's libpython3.X.so.1.0;
# measured ~15% slower start-up and 15-30% slower pure-Python code (README).
# Switching needs `make -B build/bin/pycell-init PYCELL_INIT_LINK=...`.
# zlib and expat are linked in too (their .a): two fewer libraries for ld.so
# to search for in the rootfs, which has no ld.so.cache, each probe through
# seccomp and Landlock: ~0.1 ms per job. libm.a cannot join a shared libc.
PY_EMBED_VERSION := $(shell pkg-config --modversion python3-embed 2>/dev/null)
PYCELL_INIT_LINK ?= static
ifeq ($(PYCELL_INIT_LINK),static)
INIT_PY_CFLAGS = $(shell pkg-config --cflags python3-embed) -fno-PIE
INIT_PY_LDFLAGS = -no-pie -Wl,-z,relro,-z,now -Wl,-E $(LDFLAGS) \
	$(shell pkg-config --variable=libdir python3-embed)/libpython$(PY_EMBED_VERSION).a -lm \
	-Wl,-Bstatic -lz -lexpat -Wl,-Bdynamic
else
INIT_PY_CFLAGS = $(shell pkg-config --cflags python3-embed)
INIT_PY_LDFLAGS = $(LDFLAGS_ALL) $(shell pkg-config --libs python3-embed)
endif
$(BIN)/pycell-init: $(INIT_SRC) $(wildcard runtime/init/*.h) runtime/sync.h runtime/landlock.c runtime/error.c runtime/util.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(HARDEN) $(INIT_PY_CFLAGS) -iquote runtime $(INIT_SRC) -o $@ $(INIT_PY_LDFLAGS)
EMBED_DEFS := -DPC_PYTHON_VERSION='"$(PY_EMBED_VERSION)"' -DPC_MULTIARCH='"$(shell $(CC) -print-multiarch)"'
$(OBJ)/exec_filter.o: ALL_CFLAGS += $(EMBED_DEFS)
# The audit evidence job is .incbin'd into this object.
$(OBJ)/audit_evidence.o $(ASANDIR)/obj/audit_evidence.o: runtime/audit/evidence.py
$(ASANDIR)/obj/exec_filter.o: PKG_CFLAGS += $(EMBED_DEFS)

# tools/bench-floor's timing half: the setup steps' kernel cost, nothing else.
$(BIN)/bench-floor-chain: tools/floor/floor.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(HARDEN) $< -o $@ $(LDFLAGS_ALL)

# The probe is static so it runs in any rootfs (tests' ablation mode).
$(BIN)/pycell-probe: $(PROBE_SRC)
	@mkdir -p $(@D)
	$(CC) $(WARN) -O2 -g -static $(PROBE_SRC) -o $@

$(ASANDIR)/obj/%.o: runtime/%.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(ASAN_FLAGS) $(PKG_CFLAGS) -iquote runtime -MMD -MP -c $< -o $@

$(ASANDIR)/pycell: $(ASANDIR)/obj/main.o $(ASAN_OBJ)
	$(CC) $(ASAN_FLAGS) $^ -o $@ $(PKG_LIBS)

asan: $(ASANDIR)/pycell $(BIN)/pycell-init

$(BIN)/unit/%: tests/unit/%.c $(RT_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDFLAGS_ALL) $(PKG_LIBS) $$(pkg-config --libs cmocka)

deps:
	@tools/install-deps

# IMAGE=erofs|squashfs also packs build/rootfs/$(PROFILE).$(IMAGE).
rootfs:
	@rootfs/pycell-rootfs build --profile $(PROFILE) --out $(BUILD)/rootfs/$(PROFILE) $(if $(IMAGE),--image $(IMAGE))

# The tests also run numpy jobs, so they need the datasci profile too.
rootfs-test: rootfs
	@rootfs/pycell-rootfs build --quiet --profile datasci --out $(BUILD)/rootfs/datasci

demo: deps all rootfs
	@tools/demo

# Interleaved benchmark against bare python3, bubblewrap and crun (needs root;
# BENCH_ARGS="--runs 50" for more rounds). Rewrites the results section of
# docs/benchmarks.md and build/bench/results.json.
.PHONY: bench bench-warm
bench: all rootfs-test
	@$(PYTHON) tools/bench $(BENCH_ARGS) --json $(BUILD)/bench/results.json --md docs/benchmarks.md

# Warm mode (pycell serve) against cold pycell run and bare python3, one
# interleaved run; docs/warm.md has the numbers.
bench-warm: all rootfs
	@$(PYTHON) tools/bench-warm $(BENCH_WARM_ARGS) --json $(BUILD)/bench/warm.json

# prefault.c is pycell-init's and needs no Python: its test links it alone.
$(BIN)/unit/test_prefault: tests/unit/test_prefault.c runtime/init/prefault.c runtime/init/prefault.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(filter %.c,$^) -o $@ $(LDFLAGS_ALL) $$(pkg-config --libs cmocka)

test-unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# PYCELL_BIN selects the binary under test (make test-asan sets the ASan one).
# Tests of pure cgroup v2 paths run where / is a v2 hierarchy; on a v1 or
# hybrid host they are not collected (no skips): make test-cgroup2 runs them.
V2_ONLY_TESTS := tests/integration/test_warm_cgroup2.py
HOST_V2 := $(shell test -f /sys/fs/cgroup/cgroup.controllers && echo yes)
NOT_HERE := $(if $(HOST_V2),,$(V2_ONLY_TESTS:%=--ignore=%))
test-integration: all rootfs-test
	$(PYTHON) -m pytest -q tests $(NOT_HERE)
	@# the tree checks again on the datasci tree (its double build is profile-independent)
	PYCELL_ROOTFS=$(CURDIR)/$(BUILD)/rootfs/datasci $(PYTHON) -m pytest -q tests/rootfs/test_rootfs.py

test: test-unit test-integration

# Resource tests on a pure cgroup v2 hierarchy: a stock Debian kernel under
# qemu (TCG), the host's / shared read-only over 9p (tools/cgroup2-vm/README.md).
.PHONY: test-cgroup2
test-cgroup2: all rootfs-test
	tools/cgroup2-vm/run-tests

# Deselected here, run by `make test`: valgrind cannot run an ASan binary, and
# ASan's allocator keeps freed memory in quarantine, so the check that a
# parsed job's heap goes back to the kernel (glibc's malloc_trim) cannot hold.
test-asan: asan rootfs-test
	PYCELL_BIN=$(CURDIR)/$(ASANDIR)/pycell $(PYTHON) -m pytest -q tests/integration $(NOT_HERE) \
	    --deselect tests/integration/test_faults.py::test_valgrind_check \
	    --deselect tests/integration/test_resources.py::test_supervisor_gives_back_a_large_inputs_parse_tree

# libFuzzer targets (tests/fuzz/README.md): the runtime's library objects
# rebuilt with clang and -fsanitize=fuzzer-no-link,address,undefined.
# `make fuzz` runs each target for FUZZ_SECONDS over a scratch copy of its seed
# corpus (tests/fuzz/corpus/<target>/, never modified); crashes land in
# build/fuzz/crashes/. `make fuzz-smoke` is the CI lane: FUZZ_SECONDS=20.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZDIR      := $(BUILD)/fuzz
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FLAGS   := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_OBJ     := $(RT_SRC:runtime/%.c=$(FUZZDIR)/obj/%.o)
$(FUZZDIR)/obj/%.o: runtime/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=gnu11 $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -iquote runtime -MMD -MP -c $< -o $@
$(FUZZDIR)/obj/exec_filter.o: PKG_CFLAGS += $(EMBED_DEFS)
$(FUZZDIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	$(FUZZ_CC) -std=gnu11 $(FUZZ_FLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -iquote runtime $^ -o $@ $(PKG_LIBS)
.PHONY: fuzz fuzz-build fuzz-smoke
.SECONDARY: $(FUZZ_OBJ)
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZDIR)/fuzz_%)
fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run $(FUZZ_TARGETS)
fuzz-smoke: fuzz-build
	@FUZZ_SECONDS=20 tests/fuzz/run $(FUZZ_TARGETS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/libexec/pycell \
	        $(DESTDIR)$(PREFIX)/share/pycell/policy/seccomp $(DESTDIR)$(PREFIX)/share/pycell/shim
	install -m 0755 $(BIN)/pycell $(DESTDIR)$(PREFIX)/bin/pycell
	install -m 0755 $(BIN)/pycell-init $(DESTDIR)$(PREFIX)/libexec/pycell/pycell-init
	install -m 0644 policy/*.json $(DESTDIR)$(PREFIX)/share/pycell/policy/
	install -m 0644 policy/seccomp/*.json $(DESTDIR)$(PREFIX)/share/pycell/policy/seccomp/
	install -p -m 0644 runtime/shim/*.py $(DESTDIR)$(PREFIX)/share/pycell/shim/
	install -d $(DESTDIR)$(PREFIX)/share/pycell/shim/__pycache__
	install -p -m 0644 runtime/shim/__pycache__/*.cpython-311.pyc $(DESTDIR)$(PREFIX)/share/pycell/shim/__pycache__/
	@if [ -d $(BUILD)/rootfs/minimal ]; then \
	  mkdir -p $(DESTDIR)$(PREFIX)/share/pycell/rootfs && \
	  cp -a $(BUILD)/rootfs/minimal $(DESTDIR)$(PREFIX)/share/pycell/rootfs/; fi

format:
	clang-format -i runtime/*.[ch] runtime/init/*.[ch] tests/unit/*.c tools/floor/*.c

check-format:
	clang-format --dry-run --Werror runtime/*.[ch] runtime/init/*.[ch] tests/unit/*.c tools/floor/*.c

analyze:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability -Iruntime runtime

clean:
	rm -rf $(OBJ) $(BIN) $(ASANDIR) $(BUILD)/.shim-pyc runtime/shim/__pycache__ $(FUZZDIR)

-include $(RT_OBJ:.o=.d) $(OBJ)/main.d $(ASAN_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)
