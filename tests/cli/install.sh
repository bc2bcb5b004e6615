#!/bin/sh
# tests/cli/install.sh -- `make install` into a DESTDIR and the files it
# installs in use: a C program built with `pkg-config --cflags --libs
# marginflow` (the .pc found through PKG_CONFIG_PATH, paths under the
# DESTDIR through PKG_CONFIG_SYSROOT_DIR) runs against the installed shared
# library, the same program links the static library with Libs.private,
# the installed CLI runs, and `make uninstall` removes every file.
# make runs with this build's folder; under `make test` / `make asan` the
# flags are the build's, so nothing is recompiled (checked first: a make
# that would recompile, e.g. this script run by hand with other variables,
# is a failure rather than a rebuilt build folder).
. "$(dirname "$0")/lib.sh"
cli_test_init install
CC=${CC:-cc}
DEST="$T/root"
PREFIX=/opt/marginflow
MAKE_ARGS="--no-print-directory BUILD=$BUILD DESTDIR=$DEST PREFIX=$PREFIX"

if make -n $MAKE_ARGS install 2>&1 | grep -q -- ' -c '; then
    bad "make install would recompile $BUILD (run this test through make test / make asan)"
    cli_test_done
    exit 1
fi
make -s $MAKE_ARGS install >"$T/make.out" 2>&1; rc=$?
expect_rc 0 $rc "make install: $(tail -n 5 "$T/make.out")"
for f in bin/marginflow include/marginflow.h lib/libmarginflow.a lib/libmarginflow.so.0 \
         lib/libmarginflow.so lib/pkgconfig/marginflow.pc; do
    if [ -e "$DEST$PREFIX/$f" ]; then ok; else bad "not installed: $PREFIX/$f"; fi
done
if [ "$(readlink "$DEST$PREFIX/lib/libmarginflow.so.0")" = "libmarginflow.so.0.1.0" ]; then ok
else bad "libmarginflow.so.0 -> $(readlink "$DEST$PREFIX/lib/libmarginflow.so.0")"; fi

cat >"$T/prog.c" <<'C'
/* solves the hard-margin SVM of the sym4 set of docs/theory.md s.4: gamma_svm = sqrt(5)/2 */
#include <marginflow.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    mf_data *d = NULL;
    mf_svm_result *r = NULL;
    mf_err e;
    if (mf_data_from_spec("builtin:sym4", NULL, &d, &e) || mf_svm_solve(d, MF_SVM_L2, NULL, &r, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    printf("version %s header %s abi %d gamma %.12g\n", mf_version(), MF_VERSION, mf_abi_version(),
           r->gamma);
    mf_svm_result_free(r);
    mf_data_free(d);
    return strcmp(mf_version(), MF_VERSION) != 0;
}
C
export PKG_CONFIG_PATH="$DEST$PREFIX/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$DEST"
flags=$(pkg-config --cflags --libs marginflow 2>"$T/pc.err"); rc=$?
expect_rc 0 $rc "pkg-config --cflags --libs marginflow: $(cat "$T/pc.err")"
case "$flags" in *"-I$DEST$PREFIX/include"*"-L$DEST$PREFIX/lib"*"-lmarginflow"*) ok ;;
    *) bad "pkg-config flags: $flags" ;; esac
if [ "$(pkg-config --modversion marginflow)" = "0.1.0" ]; then ok; else bad "modversion"; fi
want="version 0.1.0 header 0.1.0 abi 3 gamma 1.11803398875$"
if $CC -std=c11 $EXTRA_CFLAGS -o "$T/prog" "$T/prog.c" $flags $EXTRA_LDLIBS 2>"$T/cc.err"; then
    LD_LIBRARY_PATH="$DEST$PREFIX/lib" "$T/prog" >"$T/out" 2>&1; rc=$?
    expect_rc 0 $rc "the program against the shared library: $(cat "$T/out")"
    expect_msg "$T/out" "^$want" "its output"
    lib=$(LD_LIBRARY_PATH="$DEST$PREFIX/lib" ldd "$T/prog" | awk '/libmarginflow/ { print $3 }')
    if [ "$lib" = "$DEST$PREFIX/lib/libmarginflow.so.0" ]; then ok; else bad "ldd: libmarginflow from '$lib'"; fi
else
    bad "building with pkg-config's flags ($flags): $(cat "$T/cc.err")"
fi
# static: the archive and Libs.private
priv=$(pkg-config --static --libs marginflow | sed 's/ -lmarginflow / /')
if $CC -std=c11 $EXTRA_CFLAGS -o "$T/prog-static" "$T/prog.c" $(pkg-config --cflags marginflow) \
    "$DEST$PREFIX/lib/libmarginflow.a" $priv $EXTRA_LDLIBS 2>"$T/cc.err"; then
    "$T/prog-static" >"$T/out" 2>&1; rc=$?
    expect_rc 0 $rc "the program against the static library: $(cat "$T/out")"
    expect_msg "$T/out" "^$want" "its output (static)"
    if ldd "$T/prog-static" | grep -q libmarginflow; then bad "the static program loads libmarginflow.so"; else ok; fi
else
    bad "building against libmarginflow.a with Libs.private ($priv): $(cat "$T/cc.err")"
fi
"$DEST$PREFIX/bin/marginflow" --version >"$T/out" 2>&1; rc=$?
expect_rc 0 $rc "installed CLI"
expect_msg "$T/out" '^marginflow 0\.1\.0$' "installed CLI --version"

make -s $MAKE_ARGS uninstall >"$T/make.out" 2>&1; rc=$?
expect_rc 0 $rc "make uninstall"
left=$(find "$DEST" ! -type d | wc -l)
if [ "$left" -eq 0 ]; then ok; else bad "left after uninstall: $(find "$DEST" ! -type d)"; fi

cli_test_done
