# marginflow -- top-level build.
#   make            libraries (build/libmarginflow.a, build/libmarginflow.so.0) and
#                   CLI (build/marginflow)
#   make shared     the shared library build/libmarginflow.so.0 (+ .so link)
#   make install    header, libraries, CLI and marginflow.pc under DESTDIR/PREFIX
#                   (PREFIX default /usr/local; LIBDIR, INCLUDEDIR, BINDIR)
#   make uninstall  remove what make install put there
#   make test       build and run the whole test suite
#   make asan       the test suite under AddressSanitizer + UBSan (build-asan/)
#   make demo       install dependencies (Debian, as root), build, run the demo
#   make bench      bench/train-small
#   make fuzz       libFuzzer harnesses tests/fuzz/fuzz_*.c (clang, ASan+UBSan) in build-fuzz/
#   make fuzz-smoke each harness for FUZZ_SECONDS (default 20) from tests/fuzz/corpus/
#   make valgrind   the unit test programs under valgrind memcheck (tests/valgrind)
#   make mpi        build/marginflow-mpi: the CLI with the Open MPI sweep backend (mpicc)
# Variables: CC, OPT (default -O2), BLAS (default -lopenblas), BUILD.

CC      ?= gcc
OPT     ?= -O2
BUILD   ?= build
BLAS    ?= -lopenblas
WARN    := -Wall -Wextra -pedantic -Werror
CFLAGS  ?= $(OPT) -g
ALLCFLAGS := -std=c11 $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -D_POSIX_C_SOURCE=200809L \
             -Iinclude -Isrc -I/usr/include/x86_64-linux-gnu -MMD -MP
LDLIBS  := -lipopt -lnlopt -lglpk -larpack $(BLAS) -llapacke -lcjson -lz -lm $(EXTRA_LDLIBS)

LIB_SRC := $(wildcard src/*.c src/model/*.c)
CLI_SRC := $(filter-out cli/jobs_mpi.c,$(wildcard cli/*.c))
TEST_SRC := $(wildcard tests/test_*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

# The library's objects serve both libraries: position-independent, and
# every symbol hidden but the functions marginflow.h marks MF_API (what the
# shared library exports; tests/cli/abi.sh compares the two lists).
# -fno-semantic-interposition lets calls between public functions stay
# direct, as in the static library.
LIB_CFLAGS := -fPIC -fvisibility=hidden -fno-semantic-interposition
$(LIB_OBJ): EXTRA_LIB_CFLAGS := $(LIB_CFLAGS)

# version and soname: MF_VERSION of the header; the soname's number is the
# major version (0 while marginflow is 0.x)
VERSION := $(shell sed -n 's/^\#define MF_VERSION "\(.*\)"/\1/p' include/marginflow.h)
SOVERSION := $(firstword $(subst ., ,$(VERSION)))
SO_REAL := libmarginflow.so.$(VERSION)
SO_NAME := libmarginflow.so.$(SOVERSION)

# Objects are rebuilt when the flags change (another OPT, EXTRA_CFLAGS, or
# an older build made without LIB_CFLAGS, whose objects cannot go into a
# shared library): $(BUILD)/.flags holds the flags they were built with.
FLAGS_STAMP := $(BUILD)/.flags
FLAGS_NOW := $(CC) $(ALLCFLAGS) $(LIB_CFLAGS)
$(shell mkdir -p $(BUILD) && (printf '%s\n' '$(FLAGS_NOW)' | cmp -s - $(FLAGS_STAMP) || \
        printf '%s\n' '$(FLAGS_NOW)' >$(FLAGS_STAMP)))

.PHONY: all shared test asan demo bench clean deps fuzz fuzz-smoke valgrind mpi install uninstall
all: $(BUILD)/libmarginflow.a shared $(BUILD)/marginflow $(TEST_BIN)

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $(EXTRA_LIB_CFLAGS) -c $< -o $@

$(BUILD)/libmarginflow.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

shared: $(BUILD)/$(SO_NAME) $(BUILD)/libmarginflow.so

$(BUILD)/$(SO_REAL): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SO_NAME) -Wl,-z,defs $(CFLAGS) -o $@ $^ \
	  $(LDLIBS)

$(BUILD)/$(SO_NAME): $(BUILD)/$(SO_REAL)
	ln -sf $(SO_REAL) $@

$(BUILD)/libmarginflow.so: $(BUILD)/$(SO_NAME)
	ln -sf $(SO_NAME) $@

$(BUILD)/marginflow: $(CLI_OBJ) $(BUILD)/libmarginflow.a
	$(CC) $(ALLCFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libmarginflow.a $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libmarginflow.a
	$(CC) $(ALLCFLAGS) -o $@ $< $(BUILD)/libmarginflow.a $(LDLIBS)

# the process pool is CLI code: its test links cli/jobs.c
$(BUILD)/tests/test_jobs: $(BUILD)/tests/test_jobs.o $(BUILD)/cli/jobs.o $(BUILD)/libmarginflow.a
	$(CC) $(ALLCFLAGS) -o $@ $< $(BUILD)/cli/jobs.o $(BUILD)/libmarginflow.a $(LDLIBS)

# build/marginflow-mpi: every CLI file compiled with mpicc -DMF_MPI (the sweep
# then uses cli/jobs_mpi.c), linked with the same library. `make test` builds it
# whenever mpicc is there (scripts/install-deps installs Open MPI).
MPICC ?= mpicc
HAVE_MPI := $(shell command -v $(MPICC) 2>/dev/null)
MPI_OBJ := $(CLI_SRC:%.c=$(BUILD)/mpi/%.o) $(BUILD)/mpi/cli/jobs_mpi.o

mpi: $(BUILD)/marginflow-mpi

$(BUILD)/mpi/%.o: %.c
	@mkdir -p $(dir $@)
	$(MPICC) $(ALLCFLAGS) -DMF_MPI -c $< -o $@

$(BUILD)/marginflow-mpi: $(MPI_OBJ) $(BUILD)/libmarginflow.a
	$(MPICC) $(ALLCFLAGS) -o $@ $(MPI_OBJ) $(BUILD)/libmarginflow.a $(LDLIBS)

test: all $(if $(HAVE_MPI),mpi)
	BUILD=$(BUILD) tests/run-tests

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  EXTRA_LDLIBS="-fsanitize=address,undefined" test

# libFuzzer: the library is rebuilt with clang, ASan, UBSan and coverage
# instrumentation (-fsanitize=fuzzer-no-link); each harness links libFuzzer.
FUZZ_CC ?= clang
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 20
FUZZ_CFLAGS := -std=c11 $(WARN) -O1 -g -fno-omit-frame-pointer -D_POSIX_C_SOURCE=200809L \
               -Iinclude -Isrc -I/usr/include/x86_64-linux-gnu \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/%.o)

fuzz: $(FUZZ_BIN)

$(FUZZ_DIR)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_DIR)/libmarginflow.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_DIR)/libmarginflow.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libmarginflow.a $(LDLIBS)

# the experiment-file parser lives in the CLI: compiled into its harness with
# what it uses (typed JSON getters, the check table, the common helpers, and
# what the robust check calls: cli/robust.c, its figures (cli/gp.c) and the run directory)
FUZZ_EXP_CLI := cli/experiment.c cli/json.c cli/checks.c cli/checks_relu2.c cli/common.c cli/robust.c cli/gp.c cli/rundir.c
$(FUZZ_DIR)/fuzz_experiment: tests/fuzz/fuzz_experiment.c tests/fuzz/fuzz.h $(FUZZ_EXP_CLI) \
                             $(wildcard cli/*.h) $(FUZZ_DIR)/libmarginflow.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Icli -fsanitize=fuzzer -o $@ $< $(FUZZ_EXP_CLI) \
	  $(FUZZ_DIR)/libmarginflow.a $(LDLIBS)

# the grid parser: the claim parser it reuses for the base run, and the run
# settings' JSON of cli/rundir.c (the harness defines cli_argc / cli_argv)
FUZZ_GRID_CLI := cli/grid.c $(FUZZ_EXP_CLI)
$(FUZZ_DIR)/fuzz_grid: tests/fuzz/fuzz_grid.c tests/fuzz/fuzz.h $(FUZZ_GRID_CLI) \
                       $(wildcard cli/*.h) $(FUZZ_DIR)/libmarginflow.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Icli -fsanitize=fuzzer -o $@ $< $(FUZZ_GRID_CLI) \
	  $(FUZZ_DIR)/libmarginflow.a $(LDLIBS)

fuzz-smoke: fuzz
	tests/fuzz/smoke $(FUZZ_DIR) $(FUZZ_SECONDS)

# test_science and test_verdicts train to deep losses (flow runs of 10^5
# steps): seconds natively, far beyond CI's budget under valgrind's ~50x
# slowdown; their code paths are memchecked by the other programs and they
# run under ASan.
valgrind: all
	VALGRIND_SKIP="$(VALGRIND_SKIP) test_science test_verdicts" BUILD=$(BUILD) tests/valgrind

# make install [PREFIX=/usr/local] [DESTDIR=] [LIBDIR=] [INCLUDEDIR=] [BINDIR=]
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

$(BUILD)/marginflow.pc: marginflow.pc.in include/marginflow.h Makefile
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	  -e 's|@VERSION@|$(VERSION)|g' -e 's|@LIBS_PRIVATE@|$(strip $(filter-out -lcjson,$(LDLIBS)))|g' $< >$@

install: $(BUILD)/libmarginflow.a shared $(BUILD)/marginflow $(BUILD)/marginflow.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(BUILD)/marginflow $(DESTDIR)$(BINDIR)/marginflow
	install -m 644 include/marginflow.h $(DESTDIR)$(INCLUDEDIR)/marginflow.h
	install -m 644 $(BUILD)/libmarginflow.a $(DESTDIR)$(LIBDIR)/libmarginflow.a
	install -m 755 $(BUILD)/$(SO_REAL) $(DESTDIR)$(LIBDIR)/$(SO_REAL)
	ln -sf $(SO_REAL) $(DESTDIR)$(LIBDIR)/$(SO_NAME)
	ln -sf $(SO_NAME) $(DESTDIR)$(LIBDIR)/libmarginflow.so
	install -m 644 $(BUILD)/marginflow.pc $(DESTDIR)$(PKGCONFIGDIR)/marginflow.pc

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/marginflow $(DESTDIR)$(INCLUDEDIR)/marginflow.h \
	  $(DESTDIR)$(LIBDIR)/libmarginflow.a $(DESTDIR)$(LIBDIR)/$(SO_REAL) \
	  $(DESTDIR)$(LIBDIR)/$(SO_NAME) $(DESTDIR)$(LIBDIR)/libmarginflow.so \
	  $(DESTDIR)$(PKGCONFIGDIR)/marginflow.pc

deps:
	scripts/install-deps

demo: deps
	$(MAKE) all
	scripts/demo

bench: all
	bench/train-small

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d) $(FUZZ_OBJ:.o=.d) $(MPI_OBJ:.o=.d)
