#!/usr/bin/env bash
# run_pytest.sh LIB NEAP PYTHON MODULE_DIR TEST_FILE -- the `neap` Python
# module's tests (test_neap_module.py) under pytest, in a Python on neap.
#
#   env LD_PRELOAD=LIB PYTHONMALLOC=malloc PYTHONPATH=MODULE_DIR
#       PYTHON -m pytest TEST_FILE          (in a scratch directory)
#
# LIB is libneap.so, NEAP the neap command (for the test of `neap run`),
# PYTHON the interpreter the module was built for, MODULE_DIR the directory
# holding neap<EXT_SUFFIX>.  Uses common.sh's setup (the scratch directory,
# a clean environment) and fail.
# Exit status: 0 pass; 1 fail, and also when pytest ran no test (its exit
# status 5); 77 skip when PYTHON has no pytest (Debian: python3-pytest).
. "$(dirname "$0")/../override/common.sh"
setup "$1"
NEAP=$2 PY=$3 MODDIR=$4 TESTFILE=$5
[ -x "$PY" ] || fail "no interpreter at $PY"
[ -d "$MODDIR" ] || fail "no module directory $MODDIR"
if ! "$PY" -c 'import pytest' >/dev/null 2>&1; then
    echo "SKIP: $PY has no pytest (Debian: python3-pytest)"
    exit 77
fi
cd "$WORK" || fail "cd $WORK"
status=0
env LD_PRELOAD="$LIB" PYTHONMALLOC=malloc PYTHONPATH="$MODDIR" PYTHONDONTWRITEBYTECODE=1 \
    NEAP_TEST_LIB="$LIB" NEAP_TEST_CMD="$NEAP" \
    "$PY" -m pytest -v -rxXs -p no:cacheprovider --basetemp="$WORK/tmp" "$TESTFILE" || status=$?
case $status in
    0) echo "PASS" ;;
    5) fail "pytest collected no test from $TESTFILE" ;;
    *) fail "pytest exited with status $status" ;;
esac
