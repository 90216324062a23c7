#!/usr/bin/env bash
# python.sh LIB [pymalloc|malloc] -- CPython on neap: a dict of 10^6 strings,
# churned, and a checksum.  With "malloc", PYTHONMALLOC=malloc routes every
# Python object through malloc (so through neap).  Under the preload the
# script also looks up neap_owns with ctypes and asks it about a big string
# object (allocated with malloc in both modes).
. "$(dirname "$0")/common.sh"
setup "$@"
MODE=${2:-pymalloc}
need python3
# the interpreter itself, not a wrapper script (pyenv shims are shell scripts)
PY=$(python3 -c 'import sys; print(sys.executable)') || fail "python3 does not run"
[ -x "$PY" ] || fail "no interpreter at $PY"
if [ "$MODE" = malloc ]; then
    export PYTHONMALLOC=malloc
fi
export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1

cat >"$DATA/dict.py" <<'PYEOF'
import os, sys, zlib

if os.environ.get("NEAP_EXPECT"):
    import ctypes
    lib = ctypes.CDLL(None)
    try:
        owns = lib.neap_owns
    except AttributeError:
        sys.exit("neap_owns is not in the process: the preload did not take effect")
    owns.argtypes = [ctypes.c_void_p]
    owns.restype = ctypes.c_int
    big = "x" * 100000 + str(len(sys.argv))
    if owns(id(big)) != 1:
        sys.exit("neap_owns(id(a 100 kB str)) = 0: Python's malloc is not neap's")
    print("neap_owns(id(big str)) = 1", file=sys.stderr)

n = 10 ** 6
d = {}
for i in range(n):
    d["key%d" % i] = ("v%x" % (i * 2654435761 % 4294967296)) * (1 + i % 7)
for i in range(0, n, 3):
    del d["key%d" % i]
for i in range(0, n, 6):
    d["new%d" % i] = str(i) * (i % 5)
crc = 0
for k, v in d.items():
    crc = zlib.crc32(k.encode(), crc)
    crc = zlib.crc32(v.encode(), crc)
print("dict", len(d), crc)

# big and medium objects: lists, bytes, a sorted copy
l = [bytes(range(256)) * (i % 40) for i in range(20000)]
print("bytes", sum(map(len, l)), zlib.crc32(b"".join(l[::97])))
keys = sorted(d, key=lambda k: (len(d[k]), k))
print("sorted", keys[:3], keys[-3:])
del d, l, keys
t = [tuple(range(i % 50)) for i in range(200000)]
print("tuples", sum(len(x) for x in t))
PYEOF

scenario() {
    "${RUN[@]}" "$PY" "$DATA/dict.py"
}
compare_runs
