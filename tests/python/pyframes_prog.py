"""pyframes_prog.py K -- a Python program whose allocations come from known
lines, for tests/python/pyframes.sh: K bytes objects of 10,000 bytes at the
line marked SITE_MAIN, K of 3,000 in a thread at SITE_THREAD, 100,000 of 100
at SITE_SMALL of which one in 50 survives, held past the interpreter's
teardown (so that they are live at exit and pin pages there), and a mark
named "survivors" in the trace once they are alone.

bytes(n) is one calloc of 33 + n bytes (the object's header and its data):
the traced bytes of each site are known exactly."""
import ctypes
import sys
import threading

K = int(sys.argv[1])


def site_main():
    out = [None] * K
    for i in range(K):
        out[i] = bytes(10000)  # SITE_MAIN
    return out


def site_thread(res):
    out = [None] * K
    for i in range(K):
        out[i] = bytes(3000)  # SITE_THREAD
    res.append(out)


a = site_main()
res = []
t = threading.Thread(target=site_thread, args=(res,))
t.start()
t.join()
small = [bytes(100) for _ in range(100000)]  # SITE_SMALL
keep = small[::50]
del small
# the moment the survivors are alone, named in the trace
ctypes.CDLL(None).neap_trace_mark(b"survivors")
# one reference more than the program holds: the teardown leaves them live
ctypes.pythonapi.Py_IncRef(ctypes.py_object(keep))
print("done", len(a), len(res[0]), len(keep))
