#!/usr/bin/env python3
"""gen_unicode_tables.py — writes host/model/unicode_tables.h for the CLIP tokenizer (host/model/tokenizer.c).

    python3 scripts/gen_unicode_tables.py [--ucd /usr/share/unicode] [--out host/model/unicode_tables.h]

Two kinds of table, from two sources:

1. Unicode character properties, from the Unicode Character Database shipped by Debian's
   `unicode-data` package (UnicodeData.txt, DerivedCoreProperties.txt, SpecialCasing.txt,
   DerivedNormalizationProps.txt): letter / number classes (\\p{L}, \\p{N} of the pre-token
   regex), Python's str.isspace set (bidi WS/B/S or category Zs), Cased / Case_Ignorable (final
   sigma), lowercase mappings (simple + unconditional SpecialCasing), canonical combining class,
   canonical decompositions and the NFC composition pairs.
2. ftfy / Python-stdlib data that is *defined* by those libraries rather than by Unicode, taken
   from them so the C code reproduces them exactly: ftfy's HTML entity table (HTML_ENTITIES), its
   full-width map (WIDTH_MAP), its Latin ligature map (LIGATURES), the sloppy-windows-1252 decoding
   of C1 controls, and html.unescape's html5 table, invalid charrefs and invalid code points.

The reference pipeline mixes Unicode versions: Python's unicodedata / str.lower / isspace use
Python's own tables (`unicodedata.unidata_version`), the `regex` module (the pre-token pattern)
has its own, newer tables, and Debian ships yet another version. The script prints how many code
points disagree between the Debian-derived tables and each Python-side reference, and writes the
versions into the header comment. The differences are confined to code points that are
unassigned in the older of the two versions.
"""
import argparse
import html
import html.entities
import os
import re
import sys
import unicodedata

import ftfy.bad_codecs  # noqa: F401  (registers sloppy-windows-1252)
import ftfy.chardata

try:
    import regex
except ImportError:  # the cross-check against the regex module is optional
    regex = None

F_L, F_N, F_SPACE, F_CASED, F_CASEIGN, F_NFC, F_LOWER, F_DECOMP = (1 << i for i in range(8))


def read_ucd_version(ucd):
    with open(os.path.join(ucd, "ReadMe.txt"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"Version (\d+\.\d+\.\d+)", text)
    if m:
        return m.group(1)
    # The ReadMe of recent releases has no number; DerivedAge.txt's newest age is the version.
    ages = set()
    with open(os.path.join(ucd, "DerivedAge.txt"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"[0-9A-F.]+\s*;\s*(\d+\.\d+)", line)
            if m:
                ages.add(tuple(int(x) for x in m.group(1).split(".")))
    return "%d.%d.0" % max(ages)


def parse_unicode_data(ucd):
    """cp -> (gc, ccc, bidi, decomp_str, lower) for every assigned code point (ranges expanded)."""
    recs = {}
    first = None
    with open(os.path.join(ucd, "UnicodeData.txt"), encoding="utf-8") as f:
        for line in f:
            fld = line.rstrip("\n").split(";")
            cp = int(fld[0], 16)
            rec = (fld[2], int(fld[3]), fld[4], fld[5], int(fld[13], 16) if fld[13] else None,
                   fld[6] != "")
            if fld[1].endswith(", First>"):
                first = cp
                continue
            if fld[1].endswith(", Last>"):
                for c in range(first, cp + 1):
                    recs[c] = rec
                continue
            recs[cp] = rec
    return recs


def parse_prop_file(path, wanted):
    """{prop: set(cp)} for `cp..cp ; prop` lines of a UCD property file."""
    out = {w: set() for w in wanted}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(";")]
            key = parts[1] if len(parts) == 2 else parts[1] + "=" + parts[2]
            if key not in out:
                continue
            a, _, b = parts[0].partition("..")
            for c in range(int(a, 16), int(b or a, 16) + 1):
                out[key].add(c)
    return out


def parse_special_lower(ucd):
    """Unconditional multi-code-point lowercase mappings (Python's str.lower uses these)."""
    out = {}
    with open(os.path.join(ucd, "SpecialCasing.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(";")]
            if len(parts) > 4 and parts[4]:
                continue  # conditional (Final_Sigma, locale): Final_Sigma is coded by hand
            lower = [int(x, 16) for x in parts[1].split()]
            if len(lower) > 1:
                out[int(parts[0], 16)] = lower
    return out


def parse_case_variants(ucd):
    """cp -> set of its simple-case-folding equivalents (C and S lines of CaseFolding.txt)."""
    fold = {}
    with open(os.path.join(ucd, "CaseFolding.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(";")]
            if parts[1] in ("C", "S"):
                fold[int(parts[0], 16)] = int(parts[2], 16)
    groups = {}
    for c, f in fold.items():
        groups.setdefault(f, {f}).add(c)
    out = {}
    for g in groups.values():
        for c in g:
            out[c] = g
    return out


def two_stage(values, block=256):
    """Compresses a per-code-point byte array into stage1[cp>>8] -> block, stage2[block*256+lo]."""
    blocks, index, stage1 = [], {}, []
    for hi in range(0x110000 // block):
        blk = tuple(values[hi * block:(hi + 1) * block])
        if blk not in index:
            index[blk] = len(blocks)
            blocks.append(blk)
        stage1.append(index[blk])
    return stage1, blocks


def c_array(ctype, name, vals, per_line=16, fmt="%d"):
    lines = ["static const %s %s[%d] = {" % (ctype, name, len(vals))]
    for i in range(0, len(vals), per_line):
        lines.append("    " + ", ".join(fmt % v for v in vals[i:i + per_line]) + ",")
    lines.append("};")
    return "\n".join(lines)


def c_string(s):
    """A C string literal for an ASCII entity name."""
    assert all(32 <= ord(ch) < 127 for ch in s), s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cps3(s, what):
    cps = [ord(ch) for ch in s]
    assert 1 <= len(cps) <= 3, (what, s)
    return cps + [0] * (3 - len(cps))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ucd", default="/usr/share/unicode")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "host", "model", "unicode_tables.h"))
    args = ap.parse_args()

    ucd_version = read_ucd_version(args.ucd)
    recs = parse_unicode_data(args.ucd)
    core = parse_prop_file(os.path.join(args.ucd, "DerivedCoreProperties.txt"),
                           ["Cased", "Case_Ignorable"])
    norm = parse_prop_file(os.path.join(args.ucd, "DerivedNormalizationProps.txt"),
                           ["Full_Composition_Exclusion", "NFC_QC=N", "NFC_QC=M"])
    special_lower = parse_special_lower(args.ucd)
    variants = parse_case_variants(args.ucd)

    # --- per-code-point properties ------------------------------------------------------------
    lower_pairs, decomp, compose = [], [], []
    prop = [(0, 0, 0)] * 0x110000
    for cp in range(0x110000):
        rec = recs.get(cp)
        flags, ccc, extra = 0, 0, 0
        if rec:
            gc, ccc, bidi, dec, low, decimal = rec
            if decimal:
                extra |= 1  # Python re's \d (str.isdecimal), used by ftfy's ANSI escape pattern
            if gc[0] == "L":
                flags |= F_L
            if gc[0] == "N":
                flags |= F_N
            if bidi in ("WS", "B", "S") or gc == "Zs":
                flags |= F_SPACE  # Python's Py_UNICODE_ISSPACE rule (Tools/unicode/makeunicodedata.py)
            if cp in special_lower:
                flags |= F_LOWER
            elif low is not None and low != cp:
                flags |= F_LOWER
                lower_pairs.append((cp, low))
            if dec and not dec.startswith("<"):
                d = [int(x, 16) for x in dec.split()]
                assert 1 <= len(d) <= 2
                decomp.append((cp, d[0], d[1] if len(d) > 1 else 0))
                flags |= F_DECOMP
                if len(d) == 2 and cp not in norm["Full_Composition_Exclusion"]:
                    compose.append((d[0], d[1], cp))
        if cp in core["Cased"]:
            flags |= F_CASED
        if cp in core["Case_Ignorable"]:
            flags |= F_CASEIGN
        # The pre-token class [^\s\p{L}\p{N}] has several members, so under IGNORECASE the regex
        # module tests every case variant of the character against it (single-member classes
        # like [\p{L}] test the character alone): U+0345, whose variant is iota, matches no
        # alternative at all and is skipped like a space.
        if rec and not (flags & (F_L | F_N | F_SPACE)):
            for v in variants.get(cp, ()):
                r2 = recs.get(v)
                if r2 and (r2[0][0] in "LN" or r2[2] in ("WS", "B", "S") or r2[0] == "Zs"):
                    extra |= 2
        if ccc or cp in norm["NFC_QC=N"] or cp in norm["NFC_QC=M"]:
            flags |= F_NFC  # may change under NFC: the C code skips NFC for strings without these
        prop[cp] = (flags, ccc, extra)
    # Hangul syllables decompose algorithmically; their flag only matters for the NFC quick check,
    # which is already driven by the jamo (NFC_QC=M), so nothing is added for them here.
    combos = sorted(set(prop))
    assert len(combos) <= 256, len(combos)
    combo_index = {c: i for i, c in enumerate(combos)}
    stage1, blocks = two_stage([combo_index[p] for p in prop])
    assert len(blocks) <= 65535

    # --- cross-checks against the Python-side references ---------------------------------------
    py_version = unicodedata.unidata_version
    def py_assigned(c):
        return unicodedata.category(chr(c)) != "Cn"
    mism = {"isspace": [], "lower": [], "nfc": [], "regex L/N": []}
    regex_assigned_here = []  # disagreements on code points the Debian UCD does assign
    pat = regex.compile(r"[\p{L}]|[\p{N}]|\s", regex.IGNORECASE) if regex else None
    other = regex.compile(r"[^\s\p{L}\p{N}]", regex.IGNORECASE) if regex else None
    other_mism = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        flags = prop[cp][0]
        both = py_assigned(cp) and cp in recs
        if both and bool(flags & F_SPACE) != ch.isspace():
            mism["isspace"].append(cp)
        if both and cp != 0x3A3:
            mine = [special_lower[cp]] if cp in special_lower else None
            lo = dict(lower_pairs).get(cp) if flags & F_LOWER and not mine else None
            want = [ord(x) for x in ch.lower()]
            got = mine[0] if mine else ([lo] if lo is not None else [cp])
            if got != want:
                mism["lower"].append(cp)
        if regex:
            m = pat.fullmatch(ch)
            kind = 0 if not m else (F_L if regex.fullmatch(r"[\p{L}]", ch, regex.I) else
                                    F_N if regex.fullmatch(r"[\p{N}]", ch, regex.I) else -1)
            mine_kind = flags & (F_L | F_N)
            if cp in recs and not ch.isspace():   # whitespace never reaches the pre-tokenizer
                mine_other = not (flags & (F_L | F_N | F_SPACE)) and not (prop[cp][2] & 2)
                if mine_other != bool(other.fullmatch(ch)):
                    other_mism.append(cp)
            if kind != -1 and kind != mine_kind:
                mism["regex L/N"].append(cp)
                if cp in recs:
                    regex_assigned_here.append(cp)
    dmap = {c: (a, b) for c, a, b in decomp}
    for cp, _, _ in decomp:
        if not py_assigned(cp):
            continue
        def full(c):
            if c not in dmap:
                return [c]
            a, b = dmap[c]
            return full(a) + (full(b) if b else [])
        if [ord(x) for x in unicodedata.normalize("NFD", chr(cp))] != full(cp):
            mism["nfc"].append(cp)
    regex_version = getattr(regex, "__version__", "absent") if regex else "absent"
    print("regex [^\\s\\p{L}\\p{N}] (IGNORECASE) disagreements on code points assigned in the Debian "
          "UCD: %d %s" % (len(other_mism), " ".join("U+%04X" % c for c in other_mism[:20])), file=sys.stderr)
    print("regex L/N disagreements on code points assigned in the Debian UCD: %d %s" %
          (len(regex_assigned_here), " ".join("U+%04X" % c for c in regex_assigned_here[:20])),
          file=sys.stderr)
    for k, v in mism.items():
        print("%-10s %d code points differ from Python (%s)%s" %
              (k, len(v), "regex " + regex_version if k.startswith("regex") else
               "unicodedata " + py_version,
               (": " + " ".join("U+%04X" % c for c in v[:12]) + (" ..." if len(v) > 12 else ""))
               if v else ""), file=sys.stderr)
    new_since_py = [c for c in range(0x110000) if c in recs and not (0xD800 <= c <= 0xDFFF)
                    and not py_assigned(c)]

    # --- ftfy / stdlib tables ------------------------------------------------------------------
    width = sorted((k, *cps3(v, "width")[:2]) for k, v in ftfy.chardata.WIDTH_MAP.items())
    liga = sorted(ftfy.chardata.LIGATURES.items())
    assert all(len(v) <= 3 for _, v in liga)
    liga_rows = [(k, *([ord(x) for x in v] + [0] * (3 - len(v)))) for k, v in liga]
    c1 = [ord(bytes([b]).decode("sloppy-windows-1252")) for b in range(0x80, 0xA0)]
    ftfy_ents = sorted(ftfy.chardata.HTML_ENTITIES.items())
    html5 = sorted(html.entities.html5.items())
    inv_ref = sorted(html._invalid_charrefs.items())
    inv_cp = sorted(html._invalid_codepoints)

    # --- write ---------------------------------------------------------------------------------
    out = []
    out.append("""/*
 * unicode_tables.h - GENERATED by scripts/gen_unicode_tables.py; do not edit.
 *
 * Included by host/model/tokenizer.c only. Unicode properties come from the Debian unicode-data UCD,
 * version %s (Python's unicodedata here: %s; the `regex` module used by the reference
 * tokenizer: %s, with its own newer tables). %d code points are assigned in UCD %s but not
 * in Python's %s; those and the code points new in the regex module's tables are the only ones
 * where this table can disagree with the Python reference (counts printed by the generator).
 * ftfy / html tables are dumped from ftfy %s and Python %d.%d's html module.
 *
 * Property lookup: uprop_combo[uprop_stage2[uprop_stage1[cp >> 8] * 256 + (cp & 255)]]
 * gives {flags, ccc, extra}; flags are the UF_* bits below, extra the UX_* bits.
 */
#ifndef LAIC_UNICODE_TABLES_H
#define LAIC_UNICODE_TABLES_H

#include <stdint.h>

#define UNICODE_TABLES_UCD_VERSION "%s"
#define UF_L 0x01       /* general category L* (regex \\p{L}) */
#define UF_N 0x02       /* general category N* (regex \\p{N}) */
#define UF_SPACE 0x04   /* Python str.isspace(): bidi WS/B/S or Zs */
#define UF_CASED 0x08   /* DerivedCoreProperties Cased */
#define UF_CASEIGN 0x10 /* DerivedCoreProperties Case_Ignorable */
#define UF_NFC 0x20     /* ccc != 0 or NFC_QC in {N, M}: NFC may change a string holding it */
#define UF_LOWER 0x40   /* has a lowercase mapping (ulower_map, or ulower_special) */
#define UF_DECOMP 0x80  /* has a canonical decomposition (udecomp) */
""" % (ucd_version, py_version, regex_version, len(new_since_py), ucd_version, py_version,
       ftfy.__version__, sys.version_info[0], sys.version_info[1], ucd_version))
    out.append("#define UX_DECIMAL 0x01 /* UProp.extra: decimal digit (Python re \\\\d, str.isdecimal) */")
    out.append("#define UX_NOT_OTHER 0x02 /* UProp.extra: not L/N/space, yet a case variant is, so the "
               "case-insensitive [^\\\\s\\\\p{L}\\\\p{N}] rejects it (U+0345) */")
    out.append("typedef struct { uint8_t flags, ccc, extra; } UProp;")
    out.append("static const UProp uprop_combo[%d] = {" % len(combos))
    for i in range(0, len(combos), 8):
        out.append("    " + " ".join("{%d, %d, %d}," % c for c in combos[i:i + 8]))
    out.append("};")
    out.append(c_array("uint16_t", "uprop_stage1", stage1, 16))
    flat = [v for b in blocks for v in b]
    out.append(c_array("uint8_t", "uprop_stage2", flat, 32))
    out.append("/* Simple lowercase mappings (cp, lower), sorted by cp. */")
    out.append("static const uint32_t ulower_map[%d][2] = {" % len(lower_pairs))
    for i in range(0, len(lower_pairs), 6):
        out.append("    " + " ".join("{0x%04X, 0x%04X}," % p for p in lower_pairs[i:i + 6]))
    out.append("};")
    sl = sorted(special_lower.items())
    assert all(len(v) <= 3 for _, v in sl)
    out.append("/* Unconditional multi-code-point lowercase mappings (SpecialCasing.txt). */")
    out.append("static const uint32_t ulower_special[%d][4] = {" % len(sl))
    for k, v in sl:
        out.append("    {0x%04X, %s}," % (k, ", ".join("0x%04X" % x for x in v + [0] * (3 - len(v)))))
    out.append("};")
    out.append("/* Canonical decompositions (cp, first, second or 0), sorted by cp; apply recursively. */")
    out.append("static const uint32_t udecomp[%d][3] = {" % len(decomp))
    for i in range(0, len(decomp), 4):
        out.append("    " + " ".join("{0x%04X, 0x%04X, 0x%04X}," % d for d in decomp[i:i + 4]))
    out.append("};")
    compose.sort()
    out.append("/* Primary composites (first, second, composite), sorted by (first, second). */")
    out.append("static const uint32_t ucompose[%d][3] = {" % len(compose))
    for i in range(0, len(compose), 4):
        out.append("    " + " ".join("{0x%04X, 0x%04X, 0x%04X}," % d for d in compose[i:i + 4]))
    out.append("};")
    out.append("/* ftfy WIDTH_MAP (cp -> 1..2 code points), sorted. */")
    out.append("static const uint32_t ftfy_width[%d][3] = {" % len(width))
    for i in range(0, len(width), 4):
        out.append("    " + " ".join("{0x%04X, 0x%04X, 0x%04X}," % d for d in width[i:i + 4]))
    out.append("};")
    out.append("/* ftfy LIGATURES (cp -> 1..3 code points), sorted. */")
    out.append("static const uint32_t ftfy_ligatures[%d][4] = {" % len(liga_rows))
    for d in liga_rows:
        out.append("    {0x%04X, 0x%04X, 0x%04X, 0x%04X}," % d)
    out.append("};")
    out.append("/* sloppy-windows-1252 decoding of U+0080..U+009F (ftfy fix_c1_controls). */")
    out.append(c_array("uint32_t", "ftfy_c1", c1, 8, "0x%04X"))
    out.append("/* ftfy HTML_ENTITIES: \"&name;\" -> 1..3 code points (0-padded), sorted by strcmp. */")
    out.append("typedef struct { const char *name; uint32_t cp[3]; } HtmlEnt;")
    out.append("static const HtmlEnt ftfy_entities[%d] = {" % len(ftfy_ents))
    for k, v in ftfy_ents:
        out.append("    {%s, {0x%04X, 0x%04X, 0x%04X}}," % (c_string(k), *cps3(v, k)))
    out.append("};")
    out.append("/* html.entities.html5: \"name\" or \"name;\" -> 1..3 code points (0-padded), sorted by strcmp. */")
    out.append("static const HtmlEnt html5_entities[%d] = {" % len(html5))
    for k, v in html5:
        out.append("    {%s, {0x%04X, 0x%04X, 0x%04X}}," % (c_string(k), *cps3(v, k)))
    out.append("};")
    out.append("/* html._invalid_charrefs (number -> replacement), sorted. */")
    out.append("static const uint32_t html_invalid_charrefs[%d][2] = {" % len(inv_ref))
    for k, v in inv_ref:
        out.append("    {0x%04X, 0x%04X}," % (k, ord(v)))
    out.append("};")
    out.append("/* html._invalid_codepoints (numeric references that decode to nothing), sorted. */")
    out.append(c_array("uint32_t", "html_invalid_codepoints", inv_cp, 8, "0x%04X"))
    out.append("\n#endif")
    # strcmp order must match Python's sort for the binary searches: ASCII names, so it does.
    with open(args.out + ".tmp", "w", encoding="ascii") as f:
        f.write("\n".join(out) + "\n")
    os.replace(args.out + ".tmp", args.out)
    print("wrote %s (%d property blocks, %d lower, %d decomp, %d compose, %d+%d entities)" %
          (args.out, len(blocks), len(lower_pairs), len(decomp), len(compose), len(ftfy_ents),
           len(html5)), file=sys.stderr)


if __name__ == "__main__":
    main()
