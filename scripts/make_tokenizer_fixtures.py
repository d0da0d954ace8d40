#!/usr/bin/env python3
"""make_tokenizer_fixtures.py — goldens for the C CLIP tokenizer (tests/model/test_tokenizer.c).

    python3 scripts/make_tokenizer_fixtures.py                       # write tests/fixtures/tokenizer/
    python3 scripts/make_tokenizer_fixtures.py --check-c build/laic  # + large parity run of the C tool

Reference: OpenAI CLIP's SimpleTokenizer + clip.tokenize(truncate=True). The `clip` package is
not installable here, so the script loads open_clip's copy (open_clip/tokenizer.py, loaded as a
lone file: open_clip's package __init__ needs torchvision) and restores the two places where
open_clip departs from OpenAI: the special tokens are named <|startoftext|>/<|endoftext|> (open_clip
says <start_of_text>/<end_of_text>) in the vocabulary, the word cache and the pre-token regex.
Needs: pip install ftfy regex; pip install --no-deps open-clip-torch (torch is imported).

Files written (all small; C tests need no Python):
  inputs.txt     one input text per line (UTF-8; no '\\n' inside an input)
  expected.txt   per input: ids SOT..EOT of clip.tokenize(truncate=True, context 77), unpadded
  full_ids.txt   per input: SimpleTokenizer.encode ids (no SOT/EOT, no truncation)
  cleaned.txt    per input: the cleaned text the BPE sees (whitespace_clean(basic_clean(x)).lower())
  rows77.npy     int32 [n, 77] padded rows      rows8.npy  int32 [n, 8] (truncation at context 8)

Inputs whose ftfy result depends on mojibake repair (fix_text differs from
fix_text(fix_encoding=False)) are left out: that step is documented as not reproduced.
"""
import argparse
import gzip
import html
import importlib.util
import os
import random
import site
import subprocess
import sys
import unicodedata

import ftfy
import numpy as np
import regex

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
VOCAB_CANDIDATES = [os.environ.get("LAIC_VOCAB", ""), os.path.join(ROOT, "assets", "bpe_simple_vocab_16e6.txt.gz"),
                    os.path.join(ROOT, "..", "shared", "assets", "bpe_simple_vocab_16e6.txt.gz")]
TEMPLATES = ["itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
             "a {} in a video game.", "art of the {}.", "a photo of the small {}."]


def load_reference(vocab):
    path = None
    for d in site.getsitepackages() + [site.getusersitepackages()]:
        p = os.path.join(d, "open_clip", "tokenizer.py")
        if os.path.exists(p):
            path = p
    if not path:
        sys.exit("open_clip not found: pip install --no-deps open-clip-torch")
    spec = importlib.util.spec_from_file_location("openclip_tokenizer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tok = mod.SimpleTokenizer(bpe_path=vocab)
    # back to OpenAI's simple_tokenizer.py
    for old, new in (("<start_of_text>", "<|startoftext|>"), ("<end_of_text>", "<|endoftext|>")):
        i = tok.encoder.pop(old)
        tok.encoder[new] = i
        tok.decoder[i] = new
    tok.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
    tok.pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                            regex.IGNORECASE)
    assert tok.sot_token_id == 49406 and tok.eot_token_id == 49407
    return mod, tok


def rows(tok, texts, context):
    """clip.tokenize(texts, context_length=context, truncate=True) as int32."""
    out = np.zeros((len(texts), context), dtype=np.int32)
    for i, t in enumerate(texts):
        ids = [tok.sot_token_id] + tok.encode(t) + [tok.eot_token_id]
        if len(ids) > context:
            ids = ids[:context]
            ids[-1] = tok.eot_token_id
        out[i, :len(ids)] = ids
    return out


def wordnet_nouns():
    nouns = []
    with open("/usr/share/wordnet/data.noun", encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):
                continue
            fld = line.split()
            cnt = int(fld[3], 16)
            for k in range(cnt):
                nouns.append(fld[4 + 2 * k].replace("_", " "))
    return nouns


def mojibake_dependent(text):
    return ftfy.fix_text(text) != ftfy.fix_text(text, fix_encoding=False)


def handpicked():
    nfd = unicodedata.normalize("NFD", "café crème brûlée Ångström")
    return [
        "a photo of a cat.", "A Photo Of A CAT!", "", "   ", "hello world", "Hello, world!!! ... ?!",
        "e-mail: someone@example.com #hashtag $100 50% off (maybe) [ok] {x}", "C++ / C# & F#",
        "1234567890", "3.14159 is pi", "1st 2nd 3rd 4th", "Ⅻ ½ ² ³ ٣ ௰ 𝟙", "x² + y² = z²",
        "it's don't we're they've I'm you'll he'd", "IT'S DON'T WE'RE THEY'VE I'M YOU'LL HE'D",
        "'s 's' ''s ..'s 'S x's", "rock 'n' roll", "Kwa'am", "Akwa'ala", "'tis the season",
        "Tom &amp; Jerry &lt;3", "&amp;lt;", "&amp;amp;amp;", "&#39;s &#x27;t &#X41;", "&eacute;t&eacute;",
        "P&EACUTE;REZ BUNDESSTRA&SZLIG;E", "&notit; &not it &amp &copy 2020 &copy;", "&ampfoo; &ltx",
        "<b>bold</b> &amp; co", "a < b &amp; c", "&#59; &#0; &#128; &#x80; &#xD800; &#1114112; &#65533;",
        "&#12abc; &#xZZ; &#; &# &#x;", "&ThickSpace; &NotEqualTilde; &fjlig;", "&FFILIG; &ffilig;",
        "&#x1F600; smile", "&&amp;&&", "&Jscr;ohn &HilbertSpace;ancock", "&nTILDE; &NTILDE;",
        "“quoted” ‘single’ it’s ‛rev‟ ʼokina", "ﬁsh ﬂower ﬀ ﬃ ﬄ ﬅ ﬆ", "Ĳssel ĳs ǅ ǈ ǋ Ǳ ŉ",
        "Ｆｕｌｌ　ｗｉｄｔｈ ＡＢＣ １２３ ！？", "ｶﾞｷﾞ ﾊﾟﾝ ｱｲｳ", "￣ ￠ ￡ ￥ ￦ ￨",
        "café", nfd, "cafe\u0301 Cafe\u0301", "A\u030a Å \u212b", "a\u0323\u0302 \u1e9b\u0323 q\u0307\u0323",
        "\u0301leading combining", "e\u0301\u0301\u0301", "\u1100\u1161\u11a8 \uac00\u11a8 한국어",
        "ΟΔΥΣΣΕΥΣ Σ ΣΑΣ. ὈΔΥΣΣΕΎΣ", "ΣΑΣ'Σ", "Α.Σ", "Привет, мир! ЁЖИК", "日本語のテキスト 中文字符 漢字",
        "مرحبا بالعالم ١٢٣", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Γειά σου Κόσμε",
        "🐱🐶 👍🏽 👨‍👩‍👧 🇫🇷 ❤️", "emoji😀in😀words", "İstanbul İİ ı", "straße STRASSE ß ẞ",
        "\x07bell\x00null\x01", "tab\there", "multi   spaces\t\tand tabs", "\x1b[31mred\x1b[0m text",
        "\x1b[1;32mbold green\x1b[m \x1b[", "vert\x0bfeed\x0cform", "\u200bzero\u200cwidth\u200djoin",
        "\ufeffbom at start", "line\u2028sep\u2029para", "cr\rin line", "crlf\r\n"[:-1] + "x",
        "\x80 \x85 \x9d \x81 c1", "nbsp\u00a0here\u3000ideo", "\u206adeprecated\u206f \ufff9ann\ufffb \ufffc",
        "<|startoftext|>", "<|endoftext|> hi", "<|STARTOFTEXT|>", "x<|endoftext|>", "!<|endoftext|>",
        "'ſtar <|ſtartoftext|>", "\u212aelvin", "the ﬅar ſ",
        "\u03b1\u0345 x\u0345y \u0345 \u24b6\u24d0 \u2160\u2170",
        "word " * 100, "a" * 300 + "bc", "supercalifragilisticexpialidocious " * 10,
        "photo of a " + "very " * 80 + "long cat",
        "ab" * 200, "1234567890" * 10, "!?" * 100,
    ]


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for s in lines:
            assert "\n" not in s
            f.write(s + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "tokenizer"))
    ap.add_argument("--vocab", default=None)
    ap.add_argument("--check-c", metavar="LAIC", help="also compare this laic binary on many prompts")
    ap.add_argument("--n-check", type=int, default=20000, help="WordNet prompts for --check-c")
    ap.add_argument("--n-random", type=int, default=5000, help="random Unicode strings for --check-c")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    vocab = args.vocab or next((p for p in VOCAB_CANDIDATES if p and os.path.exists(p)), None)
    if not vocab:
        sys.exit("vocabulary not found: pass --vocab or run 'make setup'")
    mod, tok = load_reference(vocab)
    assert tok.encode("a photo of a cat.") == [320, 1125, 539, 320, 2368, 269]
    rng = random.Random(args.seed)

    nouns = wordnet_nouns()
    picked = [n for n in nouns if "'" in n][:6] + [n for n in nouns if any(ord(c) > 127 for c in n)][:4]
    picked += rng.sample(nouns, 20)
    texts = handpicked()
    texts += [t.format(n) for t in TEMPLATES for n in picked[:4]]
    texts += [rng.choice(TEMPLATES).format(n) for n in picked[4:]]
    texts += random_unicode(rng, 40)
    kept = [t for t in texts if not mojibake_dependent(t)]
    print("inputs: %d (%d left out: ftfy mojibake repair)" % (len(kept), len(texts) - len(kept)), file=sys.stderr)
    texts = kept

    os.makedirs(args.out, exist_ok=True)
    write_lines(os.path.join(args.out, "inputs.txt"), texts)
    full = [tok.encode(t) for t in texts]
    r77, r8 = rows(tok, texts, 77), rows(tok, texts, 8)
    write_lines(os.path.join(args.out, "full_ids.txt"), [" ".join(map(str, ids)) for ids in full])
    write_lines(os.path.join(args.out, "expected.txt"),
                [" ".join(str(x) for x in r[:min(len(f) + 2, 77)]) for r, f in zip(r77, full)])
    cleaned = [mod.whitespace_clean(mod.basic_clean(t)).lower() for t in texts]
    write_lines(os.path.join(args.out, "cleaned.txt"), cleaned)   # whitespace_clean left no '\n' 
    np.save(os.path.join(args.out, "rows77.npy"), r77)
    np.save(os.path.join(args.out, "rows8.npy"), r8)
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print("wrote %s (%d bytes)" % (args.out, size), file=sys.stderr)

    if args.check_c:
        check_c(args, tok, nouns, rng, vocab)


def random_unicode(rng, n):
    """Strings of code points assigned in Python's Unicode tables, mixed with ASCII and spaces."""
    out = []
    pool = [c for c in range(0x20, 0x30000) if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")
            and c != 0x0A]
    while len(out) < n:
        k = rng.randint(1, 30)
        s = "".join(chr(rng.choice(pool)) if rng.random() < 0.6 else rng.choice("ab &;#'< .1") for _ in range(k))
        out.append(s)
    return out


def check_c(args, tok, nouns, rng, vocab):
    prompts = [rng.choice(TEMPLATES).format(rng.choice(nouns)) for _ in range(args.n_check)]
    rand = [s for s in random_unicode(rng, args.n_random) if "\n" not in s and "\r" not in s]
    n_all = len(rand)
    rand = [s for s in rand if not mojibake_dependent(s)]
    print("random Unicode strings: %d of %d left out (their ftfy result depends on mojibake repair)"
          % (n_all - len(rand), n_all))
    for name, texts in (("WordNet prompts", prompts), ("random Unicode strings", rand)):
        data = "".join(t + "\n" for t in texts).encode("utf-8")
        env = dict(os.environ, LAIC_VOCAB=vocab)
        res = subprocess.run([args.check_c, "tokenize"], input=data, capture_output=True, env=env)
        if res.returncode:
            sys.exit("laic tokenize failed: " + res.stderr.decode())
        got = res.stdout.decode().split("\n")[:-1]
        want = []
        for t in texts:
            ids = [49406] + tok.encode(t) + [49407]
            if len(ids) > 77:
                ids = ids[:77]
                ids[-1] = 49407
            want.append(" ".join(map(str, ids)))
        bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
        print("check %-22s %6d texts, %d mismatches%s" % (name, len(texts), len(bad) + abs(len(got) - len(want)),
              "" if not bad else ": first %r got %s want %s" % (texts[bad[0]], got[bad[0]], want[bad[0]])))


if __name__ == "__main__":
    main()
