#!/usr/bin/env python3
"""Adversarial texts for the tokenizer golden test, generated deterministically (fixed seed).

`adversarial()` returns a list of strings covering what breaks tokenizers: accents and combining
marks (canonical reordering included), CJK (every range edge HF lists, and the ones it does not),
emoji and ZWJ sequences, control / format / zero-width / private-use / unassigned characters, NUL,
fullwidth forms, words of 99/100/101 characters (ASCII and multi-byte, before and after
normalization), every Unicode whitespace, punctuation old and new, literal special tokens, case
mappings that change length (Turkish dotted I, German sharp s, Greek sigma, ligatures) and long
inputs. `sweep(group)` covers every code point, `group` to a text, each between 'a' and 'b' so that
its class (dropped, whitespace, punctuation, letter) shows in the tokens.

Run as a script to write them as JSON Lines: tokenizer_corpus.py OUT.jsonl [--sweep]
"""
import json
import random
import sys

SEED = 20240611
WHITESPACE = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
              0x202F, 0x205F, 0x3000]
# Look like whitespace to someone (Python str.isspace, old Unicode) but are not Rust whitespace.
NEAR_WHITESPACE = [0x1C, 0x1D, 0x1E, 0x1F, 0x180E, 0x200B, 0x2060, 0xFEFF, 0x00AD]
# Combining marks of many canonical combining classes (1, 7, 9, 202, 214, 216, 220, 230, 232, 233, 234, 240, ...).
MARKS = [0x0334, 0x093C, 0x094D, 0x0327, 0x0328, 0x031B, 0x0316, 0x0301, 0x0300, 0x0308, 0x0315, 0x035C, 0x035D,
         0x0345, 0x05B0, 0x05BC, 0x064B, 0x0670, 0x0E38, 0x0F71, 0x0F72, 0x1DCE, 0x20D0, 0x302A, 0x302E, 0x3099,
         0x1D165, 0x1D167, 0x1D16D, 0x1D16E, 0x0F39, 0x1AB0, 0x1DF6, 0x10EFD, 0x11F41, 0xFE20]
CJK_EDGES = [0x4DFF, 0x4E00, 0x9FFF, 0xA000, 0x33FF, 0x3400, 0x4DBF, 0x1FFFF, 0x20000, 0x2A6DF, 0x2A6E0, 0x2A6FF,
             0x2A700, 0x2B73F, 0x2B740, 0x2B81F, 0x2B820, 0x2B91F, 0x2B920, 0x2CEAF, 0x2CEB0, 0x2EBE0, 0xF8FF,
             0xF900, 0xFAFF, 0xFB00, 0x2F7FF, 0x2F800, 0x2FA1F, 0x2FA20, 0x30000, 0x31350, 0x3007, 0x3005, 0x2E80,
             0x2F00, 0x3041, 0x30A2, 0xAC00, 0xD7A3, 0x1100, 0x3131]


def cp(c):
    return chr(c)


def fixed_texts():
    t = [
        "", " ", "   \t  ", "!!!", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "[PAD]", "[cls]", "[ CLS ]", "[CLS][SEP]",
        "[[CLS]]", "[CLS", "CLS]", "x[MASK]y", "[MASK] at the start", "at the end [MASK]", "[UNK]x [UNK] y[UNK]",
        "Hello [CLS] world [SEP] again [PAD][PAD]", "[MASK]" * 20, "a [SEP]\u0301 b", "[CLS]\u0301",
        # accents, precomposed and decomposed
        "café naïve Ångström São Paulo crème brûlée ÉCOLE Ærøskøbing œuvre",
        "cafe\u0301 nai\u0308ve A\u030angstro\u0308m", "Tiếng Việt có dấu: Nguyễn Thị Minh Khai",
        "a\u0301\u0316\u0300 a\u0316\u0301 a\u0300\u0301", "\u0301 leading mark", "mark after space \u0301x",
        "中\u0301文", "!\u0301?", "a\u200b\u0301", "a\u0301\u200b\u0316", "e\u0301\u0301\u0301\u0301",
        "\u1e09 \u1e08 \u01d5 \u1f83 \u1fb7 \u0344 \u0958 \u2126 \u212a \u212b",
        # Hangul syllables decompose under NFD
        "한국어 텍스트 안녕하세요 \u1100\u1161\u11a8",
        # scripts with nonspacing marks
        "\u0627\u0644\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u0651\u064e\u0629 \u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd",
        "\u0928\u092e\u0938\u094d\u0924\u0947 \u0939\u093f\u0928\u094d\u0926\u0940 \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
        "\u0f40\u0f71\u0f72 \u0f66\u0f90\u0fb1", "\U0001D165\U0001D16E \U0001D15F\U0001D16D a\U0001D16D\U0001D165b a\U0001D16D\u0301\U0001D165\U0001D167b",
        # CJK and neighbours
        "中文字符 日本語のテキスト 漢字かなカナ 中文text混合English", "\U00020000\U0002A6D6\U0002B740\U0002B820\U0002B920\U0002CEA1",
        "\uf900\ufa6a \U0002F800 \U00030000\U00031350", "ｶﾀｶﾅ ﾊﾟﾋﾟﾌﾟ",
        # emoji
        "👍 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇺🇸🇫🇷 1️⃣ #️⃣ ❤️ ☺︎ 🧑🏿‍💻 🫠 🥰", "emoji👍inside👍words", "😀" * 101,
        # control, format, zero-width, private use, unassigned, noncharacters
        "a\x00b c\x01d e\x07f g\x0bh i\x0cj k\x1bl m\x7fn o\x85p", "\x00", "\x00\x00\x00",
        "zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffjoiner", "soft\u00adhyphen", "bidi\u200e\u200f\u202a\u202e\u2066x",
        "arabic\u061cmark \u0600\u0601 \u06dd \u070f \u180e", "pri\ue000vate \U000F0000 \U0010FFFD",
        "unassigned \u0378\u0379 \u0890\u0891 \u08e2 \U000110CD \U00013430\U0001343F", "non\ufffechar\uffff \ufffd replacement",
        "tags \U000E0001\U000E0041\U000E007F vs \ufe0f\ufe0e", "interlinear \ufff9\ufffa\ufffb",
        # fullwidth and compatibility forms
        "ＡＢＣ　ＤＥＦ１２３！？（）［ＣＬＳ］", "ｈｅｌｌｏ，ｗｏｒｌｄ．", "\u2460\u2461 \u00bd \u2153 \u00b2 \u2122 \u3392",
        # case mappings that change length or are special
        "İstanbul ıi İI DİYARBAKIR i̇", "İ" * 60, "STRASSE Straße ẞ ß", "ΟΔΥΣΣΕΥΣ Σίσυφος ς σ Σ",
        "ﬁ ﬂ ﬀ ﬃ ﬄ ﬅ ﬆ Ǆ ǅ ǆ ŉ ǰ ΐ", "Ω Ω K K Å Å", "Ꭰ Ᏽ ꭰ \u1c90\u1cbf \u10a0 \u2c00 \U00010400 \U0001E900",
        "\u1c89\u1c8a \ua7cb \ua7cc \ua7da \ua7dc \U00010D50 \U00016EA0", "\u0130\u0307 \u03a3\u0301",
        # punctuation
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "¿¡«»„“”‘’…—–·•※§¶†‡′″‹›", "$100.00 e-mail U.S.A. hello!!!??? @user #tag",
        "https://example.com/a/b?c=d&e=f#g", "a/b\\c|d", "\u2e52\u2e53\u2e5d \u166d \u061d \u09fd \u0a76 \u0c77 \u0c84 \u1b7d",
        "\u2e43\u2e44\u2e4f \u2e42 \u2e3a \u2e3b \u2010\u2011\u2012", "\u00a7\u00b6\u00b7 \u037e \u0387 \u055a\u055f \u0589 \u05be",
        "\u3001\u3002\u300c\u300d\uff01\uff1f \u30fb \uff65", "\U000100FA \U0001E95E \U00016FE2",
        # numbers and mixed
        "3.14159 1,000,000 1e-10 0x1F 2024-06-11 12:30 +49 (0)30 123-456",
        "Mixed CASE with UPPER and lower AND Numbers123 and under_scores",
        # added tokens of the golden test's "added tokens" fixture, matched before / after normalization
        "Yesterday YESTERDAY yesterday Yesterdays", "naïve café NAÏVE CAFÉ nai\u0308ve cafe\u0301", "中文 中 文",
        "[NEW] [NEW]er [NEW]e [new] [NEW][NEW]er", "abab cab ab", "ab[CLS]ab",
    ]
    # every Unicode whitespace, and things that only look like it
    for c in WHITESPACE + NEAR_WHITESPACE:
        t.append(f"a{cp(c)}b x {cp(c)} y{cp(c)}{cp(c)}z")
    t.append("".join(cp(c) for c in WHITESPACE) + "end")
    # CJK range edges, alone and inside words
    for c in CJK_EDGES:
        t.append(f"x{cp(c)}y {cp(c)}{cp(c)} {cp(c)}\u0301")
    # words of exactly 99/100/101 characters, before and after normalization
    for n in (99, 100, 101):
        t.append("a" * n)
        t.append("x " + "b" * n + " y")
        t.append("é" * n)
        t.append("É" * n)
        t.append("e\u0301" * n)
        t.append("中" * n)
        t.append("ß" * n)
        t.append("😀" * n)
        t.append("\U00020000" * n)
        t.append("a\u200b" * n)
        t.append("ab" * (n // 2) + "a" * (n % 2))
        t.append("İ" * (n // 2 + 1))
        t.append("q" * (n - 1) + "\u0301")
        t.append("Q" * (n - 1) + "\u00c9")
    for n in (50, 51):  # 2 chars each after NFD/lowercase in some configurations
        t.append("\u01c4" * n)
        t.append("e\u0301" * n)
    return t


def random_texts(rng):
    pools = {
        "latin": [chr(c) for c in range(0x20, 0x250)],
        "greek_cyrillic": [chr(c) for c in range(0x370, 0x530)],
        "marks": [chr(c) for c in MARKS],
        "cjk": [chr(c) for c in CJK_EDGES] + [chr(rng.randrange(0x4E00, 0xA000)) for _ in range(50)],
        "emoji": [chr(c) for c in range(0x1F300, 0x1FAFF)] + ["\u200d", "\ufe0f"] + [chr(c) for c in range(0x1F3FB, 0x1F400)],
        "controls": [chr(c) for c in list(range(0, 0x20)) + list(range(0x7F, 0xA0))] + ["\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad", "\ufffd"],
        "space": [chr(c) for c in WHITESPACE + NEAR_WHITESPACE],
        "punct": list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¿¡«»„“”…—–·") + [chr(c) for c in range(0x2E00, 0x2E60)],
        "special": ["[CLS]", "[SEP]", "[UNK]", "[MASK]", "[PAD]", "[", "]", "CLS", "##", "#"],
    }
    names = sorted(pools)
    out = []
    for _ in range(600):
        k = rng.sample(names, rng.randint(1, 4))
        length = rng.choice([1, 2, 5, 20, 80, 300])
        out.append("".join(rng.choice(pools[rng.choice(k)]) for _ in range(length)))
    # random code points anywhere, as words
    for _ in range(300):
        words = []
        for _ in range(rng.randint(1, 12)):
            chars = []
            for _ in range(rng.randint(1, 8)):
                c = rng.randrange(0, 0x110000)
                while 0xD800 <= c <= 0xDFFF:
                    c = rng.randrange(0, 0x110000)
                chars.append(chr(c))
            words.append("".join(chars))
        out.append(" ".join(words))
    # zalgo: many stacked marks of mixed classes
    for _ in range(100):
        out.append("".join(rng.choice("aeiouCJK中!") + "".join(rng.choice(pools["marks"]) for _ in range(rng.randint(0, 12)))
                           for _ in range(rng.randint(1, 20))))
    return out


def long_texts(rng, base):
    out = []
    if base:
        for n in (50, 200, 1000):
            out.append(" ".join(rng.choice(base) for _ in range(n)))
    words = ["the", "Straße", "naïve", "中文", "[MASK]", "😀", "e-mail", "İ", "\u0301", "x" * 101]
    out.append(" ".join(rng.choice(words) for _ in range(20000)))
    return out


def adversarial(base_texts=()):
    """The adversarial texts; `base_texts` (real sentences) seed the long inputs."""
    rng = random.Random(SEED)
    return fixed_texts() + random_texts(rng) + long_texts(rng, list(base_texts))


def sweep(group=32):
    """Every code point except surrogates, `group` to a text, each as 'a' + c + 'b'."""
    texts, cur = [], []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        cur.append("a" + chr(c) + "b")
        if len(cur) == group:
            texts.append(" ".join(cur))
            cur = []
    if cur:
        texts.append(" ".join(cur))
    return texts


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: tokenizer_corpus.py OUT.jsonl [--sweep]")
    texts = sweep() if "--sweep" in sys.argv[2:] else adversarial()
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"idx": i, "text": t}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
