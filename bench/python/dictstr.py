"""dictstr.py: a dict- and str-heavy CPython program.

With N = 700000 * scale, the phases are
  build      a dict of N keys "k0000042" -> formatted value strings
  transform  every value split, reassembled by concatenation and formatting
  delete     every third key deleted
  rebuild    the deleted keys added again with new, longer values
  wordcount  N/5 lines of 10 generated words joined into one text, split
             into lines and words and counted in a dict
  free       everything deleted, gc.collect()
Measures the allocator under CPython's objects (pymalloc, or malloc when the
runner sets PYTHONMALLOC=malloc): many small strings of varied sizes, dict
tables growing and shrinking, and a text of tens of megabytes.  "after_free"
is the RSS once everything is gone.

Self-check: all content is derived from the index by integer hashing (no
random module, no hash-order iteration), so "check" holds CRC-32s of the
dict's items in insertion order and of the sorted word counts, the same
under every allocator; the word counts must add up to the number of words.
"""
import gc
import sys
import zlib

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
from _common import Workload     # noqa: E402

MASK = 0xFFFFFFFF


def h(i):
    """Knuth's multiplicative hash: a fixed pseudo-random 32-bit value."""
    return ((i + 1) * 2654435761) & MASK


def make_vocabulary(size):
    words = []
    for i in range(size):
        x = h(i * 7 + 3)
        length = 2 + x % 9
        words.append("".join(chr(97 + (h(x + j) >> 7) % 26) for j in range(length)))
    return words


def crc_items(d):
    crc = 0
    batch = []
    for k, v in d.items():
        batch.append(f"{k}={v}")
        if len(batch) == 4096:
            crc = zlib.crc32("\n".join(batch).encode(), crc)
            batch = []
    return zlib.crc32("\n".join(batch).encode(), crc)


def main():
    w = Workload("dictstr", "dict- and str-heavy CPython program")
    n = w.scaled(700_000, 1000)
    words = make_vocabulary(5000)
    nwords = len(words)
    ops = 0

    with w.phase("build"):
        d = {}
        for i in range(n):
            x = ((i + 1) * 2654435761) & MASK
            d[f"k{i:07d}"] = f"v{i}-{x % 9973}-{words[x % nwords]}"
            if i & 0xFFFF == 0:
                w.sample()
        ops += n

    with w.phase("transform"):
        for i, key in enumerate(list(d)):
            ident, num, word = d[key].split("-")
            d[key] = word.upper() + "|" + ident[1:] + "|" + format(int(num) * 3, "x")
            if i & 0xFFFF == 0:
                w.sample()
        ops += n

    with w.phase("delete"):
        for i in range(0, n, 3):
            del d[f"k{i:07d}"]

    with w.phase("rebuild"):
        for i in range(0, n, 3):
            x = ((i + n + 1) * 2654435761) & MASK
            d[f"k{i:07d}"] = (words[x % nwords] + "/" + words[(x >> 8) % nwords] + "/"
                              + words[(x >> 16) % nwords])
            if i & 0xFFFF == 0:
                w.sample()
        ops += (n + 2) // 3

    with w.phase("wordcount"):
        lines = []
        for li in range(n // 5):
            x = ((li + 2 * n + 1) * 2654435761) & MASK
            lines.append(" ".join([words[(x + j * 7919) % nwords] for j in range(10)]))
            if li & 0xFFFF == 0:
                w.sample()
        text = "\n".join(lines)
        del lines
        w.sample()
        counts = {}
        total = 0
        for line in text.split("\n"):
            for word in line.split():
                counts[word] = counts.get(word, 0) + 1
                total += 1
        ops += n // 5

    if total != (n // 5) * 10 or sum(counts.values()) != total:
        w.check_failed(f"counted {sum(counts.values())} words of {total}, expected {(n // 5) * 10}")
    if len(d) != n:
        w.check_failed(f"dict holds {len(d)} keys, expected {n}")
    crc_dict = crc_items(d)
    crc_words = zlib.crc32("\n".join(f"{k} {c}" for k, c in sorted(counts.items())).encode())
    textlen = len(text)

    with w.phase("free"):
        del d, text, counts
        gc.collect()
    w.after_free()

    w.ops = ops
    w.report(f"dict={crc_dict:08x} words={crc_words:08x} n={n} text={textlen}")


if __name__ == "__main__":
    main()
