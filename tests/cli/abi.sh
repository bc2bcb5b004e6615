#!/bin/sh
# tests/cli/abi.sh -- the shared library's interface: the soname, the
# exports (exactly the functions marginflow.h declares: tests/abi_exports.py
# compares the header, as the preprocessor sees it, with nm -D), mf_sizeof
# of every struct the header defines (a C program generated from the
# header's list, so a struct added later is checked too), and that the
# comparison catches both kinds of difference (a planted undeclared export
# and a planted declaration that is not exported).
. "$(dirname "$0")/lib.sh"
cli_test_init abi
ROOT=$(pwd)
SO="$BUILD/libmarginflow.so.0"
CC=${CC:-cc}

if [ -f "$SO" ]; then ok; else bad "$SO not built (make shared)"; cli_test_done; exit 1; fi
soname=$(readelf -d "$SO" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" = "libmarginflow.so.0" ]; then ok; else bad "soname '$soname'"; fi

# --- exports == declarations
python3 tests/abi_exports.py include/marginflow.h "$SO" "$CC" >"$T/abi" 2>&1; rc=$?
expect_rc 0 $rc "exports vs header"
if [ $rc -ne 0 ]; then grep -v '^struct ' "$T/abi" >&2; fi
expect_msg "$T/abi" '^abi_exports: [0-9]+ declared, [0-9]+ exported, 0 differences' "abi summary"
n=$(sed -n 's/^abi_exports: \([0-9]*\) declared.*/\1/p' "$T/abi")
if [ "${n:-0}" -ge 80 ]; then ok; else bad "only ${n:-0} functions found in the header"; fi

# --- mf_sizeof knows every struct of the header, with its sizeof
{
    echo '#include "marginflow.h"'
    echo '#include <stdio.h>'
    echo 'int main(void) { int bad = 0;'
    sed -n 's/^struct \(mf_[a-z0-9_]*\)$/\1/p' "$T/abi" | while read -r s; do
        echo "  if (mf_sizeof(\"$s\") != sizeof($s)) { printf(\"mf_sizeof(%s) = %zu, sizeof %zu\\\\n\", \"$s\", mf_sizeof(\"$s\"), sizeof($s)); bad = 1; }"
    done
    echo '  return bad; }'
} >"$T/sizes.c"
nstruct=$(grep -c 'mf_sizeof("' "$T/sizes.c")
if [ "$nstruct" -ge 20 ]; then ok; else bad "only $nstruct structs found in the header"; fi
if $CC -std=c11 $EXTRA_CFLAGS -Iinclude -o "$T/sizes" "$T/sizes.c" -L"$BUILD" -lmarginflow \
    -Wl,-rpath,"$ROOT/$BUILD" -Wl,-rpath,"$BUILD" $EXTRA_LDLIBS 2>"$T/cc.err"; then
    "$T/sizes" >"$T/sizes.out" 2>&1; rc=$?
    expect_rc 0 $rc "mf_sizeof of every struct: $(cat "$T/sizes.out")"
else
    bad "compiling the mf_sizeof check: $(cat "$T/cc.err")"
fi

# --- the comparison fails on a planted difference of each kind
sed '$i MF_API int mf_planted_missing(void);' include/marginflow.h >"$T/marginflow.h"
python3 tests/abi_exports.py "$T/marginflow.h" "$SO" "$CC" >"$T/p1" 2>&1; rc=$?
expect_rc 1 $rc "a declaration without a definition"
expect_msg "$T/p1" '^not exported: mf_planted_missing' "planted declaration"
expect_msg "$T/p1" ' 1 differences$' "only the planted declaration differs"
printf '__attribute__((visibility("default"))) int mf_planted_extra(void) { return 1; }\nint mf__hidden(void);\n' \
    >"$T/extra.c"
if $CC -shared -fPIC -o "$T/libextra.so" "$T/extra.c" 2>"$T/cc.err"; then
    printf 'int mf_x(void);\n' >"$T/x.h"
    python3 tests/abi_exports.py "$T/x.h" "$T/libextra.so" "$CC" >"$T/p2" 2>&1; rc=$?
    expect_rc 1 $rc "an export that is not declared"
    expect_msg "$T/p2" '^exported but not in .*: mf_planted_extra' "planted export"
    expect_msg "$T/p2" '^not exported: mf_x' "declared, not in the planted library"
else
    bad "compiling the planted library: $(cat "$T/cc.err")"
fi

cli_test_done
