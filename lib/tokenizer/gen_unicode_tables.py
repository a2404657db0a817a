#!/usr/bin/env python3
"""Generates unicode_tables.inc: the Unicode character classes exactly as HF `tokenizers` sees them.

HF's BertNormalizer / BertPreTokenizer classify characters with the `unicode_categories` crate and
decompose with `unicode-normalization-alignments`, both pinned to old Unicode versions, while Rust's
own char methods (to_lowercase, is_whitespace) follow a newer one. utf8proc follows yet another. So
the sets below are measured from the installed `tokenizers` itself, one code point at a time, and
written as range lists; the C++ side takes the mapping *values* (decompositions, combining classes,
lowercase) from utf8proc and only asks these tables *which* characters HF maps at all. Where a value
from utf8proc differs from HF's, it is written as an explicit override, and this script fails if it
meets a case it cannot express.

Run with the hfkit venv's Python:  python lib/tokenizer/gen_unicode_tables.py > lib/tokenizer/unicode_tables.inc
"""
import ctypes
import ctypes.util
import sys

import tokenizers
from tokenizers.normalizers import NFD, BertNormalizer, StripAccents
from tokenizers.pre_tokenizers import BertPreTokenizer

MAX_CP = 0x110000
# Rust char::is_whitespace (Unicode White_Space); checked below against HF.
WHITESPACE = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028,
              0x2029, 0x202F, 0x205F, 0x3000}
# HF's is_chinese_char ranges (normalizers/bert.rs); checked below against HF.
CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
       (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def load_utf8proc():
    lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
    lib.utf8proc_tolower.restype = ctypes.c_int32
    lib.utf8proc_tolower.argtypes = [ctypes.c_int32]
    lib.utf8proc_decompose_char.restype = ctypes.c_ssize_t
    lib.utf8proc_decompose_char.argtypes = [ctypes.c_int32, ctypes.POINTER(ctypes.c_int32), ctypes.c_ssize_t,
                                            ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.utf8proc_get_property.restype = ctypes.POINTER(ctypes.c_int16 * 2)  # category, combining_class
    lib.utf8proc_get_property.argtypes = [ctypes.c_int32]
    lib.utf8proc_version.restype = ctypes.c_char_p
    return lib


def ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] + 1 == c:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def emit_ranges(name, cps, why, struct="CodeRange"):
    """Prints `cps` as a C++ array of inclusive {first, last} ranges of type `struct`."""
    rs = ranges(cps)
    print(f"// {why} ({len(cps)} code points)")
    print(f"inline constexpr {struct} {name}[] = {{")
    line = " "
    for lo, hi in rs:
        item = f" {{0x{lo:X}, 0x{hi:X}}},"
        if len(line) + len(item) > 100:
            print(line)
            line = " "
        line += item
    print(line)
    print("};")


def main():
    u = load_utf8proc()
    buf = (ctypes.c_int32 * 8)()
    last = ctypes.c_int(0)

    def u_decompose(c):
        n = u.utf8proc_decompose_char(c, buf, 8, 1 << 4, ctypes.byref(last))  # UTF8PROC_DECOMPOSE
        assert 0 < n <= 8, hex(c)
        return [buf[i] for i in range(n)]

    clean = BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    cjk = BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    strip = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    nfd = NFD()
    accents = StripAccents()
    pre = BertPreTokenizer()

    drop, punct, mn, decomposes, combining, lower_changes, marks = set(), set(), set(), set(), set(), set(), set()
    lower_overrides = {}
    problems = []
    for c in range(MAX_CP):
        if 0xD800 <= c <= 0xDFFF:
            continue
        s = chr(c)
        # clean_text: dropped, mapped to ' ' (whitespace) or kept.
        r = clean.normalize_str(s)
        if r == "":
            drop.add(c)
        elif r == " " and c != 0x20:
            if c not in WHITESPACE:
                problems.append(f"U+{c:04X}: clean_text maps it to a space but it is not in WHITESPACE")
        elif r != s:
            problems.append(f"U+{c:04X}: clean_text gives {r!r}")
        # Pre-tokenizer: whitespace (removed), punctuation (isolated) or part of a word.
        parts = [p for p, _ in pre.pre_tokenize_str("a" + s + "b")]
        if parts == ["a", "b"]:
            if c not in WHITESPACE:
                problems.append(f"U+{c:04X}: pre-tokenizer whitespace not in WHITESPACE")
        elif parts == ["a", s, "b"]:
            punct.add(c)
        elif parts != ["a" + s + "b"]:
            problems.append(f"U+{c:04X}: pre-tokenizer gives {parts!r}")
        if c in WHITESPACE and parts != ["a", "b"]:
            problems.append(f"U+{c:04X}: in WHITESPACE but the pre-tokenizer keeps it")
        in_cjk = any(lo <= c <= hi for lo, hi in CJK)
        if (cjk.normalize_str(s) == " " + s + " ") != in_cjk:
            problems.append(f"U+{c:04X}: CJK range mismatch")
        # NFD: which characters decompose, and is utf8proc's decomposition the same?
        d = nfd.normalize_str(s)
        if d != s:
            decomposes.add(c)
            if [ord(x) for x in d] != u_decompose(c):
                problems.append(f"U+{c:04X}: HF NFD {d!r} != utf8proc decomposition")
        else:
            # Mn (dropped by strip_accents) is only observable on characters NFD leaves alone; the
            # parts of decomposable characters are themselves probed as single characters.
            if strip.normalize_str(s) == "":
                mn.add(c)
            # Combining class: non-zero iff canonical ordering moves it past U+0345 (ccc 240) or
            # U+0334 (ccc 1).
            if (nfd.normalize_str("a\u0345" + s) == "a" + s + "\u0345"
                    or nfd.normalize_str("a" + s + "\u0334") == "a\u0334" + s):
                combining.add(c)
                if u.utf8proc_get_property(c).contents[1] == 0:
                    problems.append(f"U+{c:04X}: HF combining class non-zero, utf8proc's zero")
        # StripAccents drops combining marks (M, as unicode-normalization-alignments knows them), with
        # no decomposition first.
        if accents.normalize_str(s) == "":
            marks.add(c)
        # Lowercase (Rust char::to_lowercase, possibly several chars).
        lo = lower.normalize_str(s)
        if lo != s:
            lower_changes.add(c)
            if len(lo) != 1 or ord(lo) != u.utf8proc_tolower(c):
                lower_overrides[c] = [ord(x) for x in lo]
                if len(lo) > 3:
                    problems.append(f"U+{c:04X}: lowercase longer than 3 chars")
    if problems:
        sys.stderr.write("\n".join(problems[:50]) + f"\n{len(problems)} problems: the C++ side cannot express these\n")
        sys.exit(1)

    print(f"// Generated by gen_unicode_tables.py from tokenizers {tokenizers.__version__} (probed per code point)")
    print(f"// and utf8proc {u.utf8proc_version().decode()}; do not edit. Sets are inclusive ranges.")
    emit_ranges("kHfDrop", drop, "clean_text drops these (NUL, U+FFFD, controls, format, private use)")
    emit_ranges("kHfPunct", punct, "BertPreTokenizer isolates these as punctuation")
    emit_ranges("kHfNonspacingMark", mn, "strip_accents drops these after NFD (category Mn as HF knows it)")
    emit_ranges("kHfDecomposes", decomposes, "NFD changes these (utf8proc's canonical decomposition matches HF's)")
    emit_ranges("kHfCombining", combining, "non-zero canonical combining class (value from utf8proc)")
    emit_ranges("kHfCombiningMark", marks, "the StripAccents normalizer drops these (combining marks)")
    emit_ranges("kHfLowercaseChanges", lower_changes, "to_lowercase changes these (utf8proc_tolower unless overridden)")
    print(f"// to_lowercase results that differ from utf8proc_tolower ({len(lower_overrides)} code points)")
    print("inline constexpr LowercaseOverride kHfLowercaseOverrides[] = {")
    for c, seq in sorted(lower_overrides.items()):
        chars = ", ".join(f"0x{x:X}" for x in seq)
        print(f"  {{0x{c:X}, {len(seq)}, {{{chars}}}}},")
    print("};")


if __name__ == "__main__":
    main()
