/*
 * tokenizer.c — OpenAI CLIP's byte-level BPE tokenizer in C (see tokenizer.h).
 *
 * Reproduces, for well-formed UTF-8 input, the ids of OpenAI CLIP's simple_tokenizer and
 * clip.tokenize(truncate=True):
 *   text -> ftfy.fix_text (ftfy 6.x defaults) -> html.unescape twice -> strip
 *        -> collapse whitespace runs (str.isspace) to one space -> str.lower()
 *        -> pre-token regex  <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 *           (case-insensitive, as the `regex` module matches it: 'ſ' (U+017F) matches 's', and
 *           the multi-member class [^\s\p{L}\p{N}] rejects U+0345, which is then skipped)
 *        -> UTF-8 bytes -> GPT-2 byte-to-unicode symbols, last one + "</w>" -> BPE by lowest merge rank.
 *
 * ftfy.fix_text is reproduced step by step, per line segment and iterated to a fixed point as
 * ftfy does: unescape_html (ftfy's own entity table, skipped from the first segment holding a
 * '<' on, ftfy's "auto" rule), fix_c1_controls (sloppy windows-1252), fix_latin_ligatures,
 * fix_character_width, uncurl_quotes, fix_line_breaks, remove_terminal_escapes,
 * remove_control_chars, NFC. fix_surrogates cannot apply (strict UTF-8 holds no surrogates).
 *
 * NOT reproduced (documented difference): ftfy's mojibake repair, `fix_encoding` with its
 * sub-steps restore_byte_a0, replace_lossy_sequences and decode_inconsistent_utf8. ftfy only
 * acts there when its "badness" heuristic flags the text (e.g. "cafÃ©" -> "café", "â€™" -> "'");
 * plain ASCII text and ordinary non-Latin text are not flagged, so results agree on them; on
 * real mojibake we keep the characters as they are and ftfy would repair them.
 *
 * Unicode data: host/model/unicode_tables.h, generated from Debian's unicode-data UCD by
 * scripts/gen_unicode_tables.py (UCD version in UNICODE_TABLES_UCD_VERSION). Python's own
 * tables (unicodedata 14.0 here) and the `regex` module's (newer) can differ only on code
 * points that one of the versions leaves unassigned.
 *
 * BPE: a heap of (rank, position) over a linked list of symbols, O(n log n) per word, and a
 * per-tokenizer cache of the ids of every word seen. Merging the lowest-rank pair first,
 * leftmost first, equals the reference's "merge every occurrence of the best pair, left to
 * right, then look again" because every pair that contains a freshly merged symbol has a
 * higher rank than the merge that made it; tokenizer_load checks that property of the
 * merges file (each merge uses only symbols made by earlier merges, no duplicates).
 */
#include "model/tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io/err.h"
#include "io/gz.h"
#include "model/unicode_tables.h"

#define VOCAB_NAME "bpe_simple_vocab_16e6.txt.gz"
#define N_MERGES (49152 - 256 - 2)   // the reference reads lines 1..48894 after the header
#define MAX_SEGMENT 1000000           // ftfy's max_decode_length
#define CACHE_MAX_ENTRIES (1u << 21)  // word cache is cleared when it grows past this

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

// --- growable buffers --------------------------------------------------------------------------
typedef struct {
    uint32_t *p;   // (n,) code points
    size_t n, cap;
} UBuf;

static void ub_reserve(UBuf *b, size_t cap) {
    // a reserved buffer is never NULL, even for 0 code points: memcpy(NULL, .., 0) is undefined
    // (UBSan: a line holding one control character cleans to nothing)
    if (cap <= b->cap && b->p) return;
    size_t nc = b->cap ? b->cap : 64;
    while (nc < cap) nc *= 2;
    uint32_t *p = realloc(b->p, nc * sizeof *p);
    if (!p) {
        fprintf(stderr, "laic: fatal: out of memory at %s:%d\n", __FILE__, __LINE__);
        exit(1);
    }
    b->p = p;
    b->cap = nc;
}
static inline void ub_push(UBuf *b, uint32_t c) {
    if (b->n == b->cap) ub_reserve(b, b->n + 1);
    b->p[b->n++] = c;
}
static void ub_swap(UBuf *a, UBuf *b) {
    UBuf t = *a;
    *a = *b;
    *b = t;
}

typedef struct {
    int32_t *p;   // (n,) ids
    size_t n, cap;
} IVec;

static void iv_push(IVec *v, int32_t x) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? 2 * v->cap : 64;
        int32_t *p = realloc(v->p, nc * sizeof *p);
        if (!p) {
            fprintf(stderr, "laic: fatal: out of memory at %s:%d\n", __FILE__, __LINE__);
            exit(1);
        }
        v->p = p;
        v->cap = nc;
    }
    v->p[v->n++] = x;
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "laic: fatal: out of memory at %s:%d\n", __FILE__, __LINE__);
        exit(1);
    }
    return q;
}

// --- Unicode property lookups ------------------------------------------------------------------
static inline const UProp *uprop(uint32_t cp) {
    if (cp > 0x10FFFF) return &uprop_combo[0];   // combo 0 is {0,0,0}: unassigned
    return &uprop_combo[uprop_stage2[(size_t)uprop_stage1[cp >> 8] * 256 + (cp & 255)]];
}
static inline uint8_t uflags(uint32_t cp) { return uprop(cp)->flags; }
static inline uint8_t uccc(uint32_t cp) { return uprop(cp)->ccc; }

/* Binary search in a table of rows of `stride` uint32 sorted by the first `nkey` columns. */
static const uint32_t *row_find(const uint32_t *tab, size_t nrows, size_t stride, const uint32_t *key,
                                size_t nkey) {
    size_t lo = 0, hi = nrows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint32_t *r = tab + mid * stride;
        int c = 0;
        for (size_t k = 0; k < nkey && !c; k++) c = r[k] < key[k] ? -1 : r[k] > key[k] ? 1 : 0;
        if (!c) return r;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Entity tables are sorted by strcmp of ASCII names; `name` is (len,) code points. */
static const HtmlEnt *ent_find(const HtmlEnt *tab, size_t n, const uint32_t *name, size_t len) {
    char buf[40];
    if (len >= sizeof buf) return NULL;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == 0 || name[i] > 127) return NULL;   // every entity name is ASCII
        buf[i] = (char)name[i];
    }
    buf[len] = 0;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(tab[mid].name, buf);
        if (!c) return &tab[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static void push_ent(UBuf *o, const HtmlEnt *e) {
    for (int k = 0; k < 3 && e->cp[k]; k++) ub_push(o, e->cp[k]);
}

// --- UTF-8 -------------------------------------------------------------------------------------
/* Strict decoding (as Python's bytes.decode('utf-8')): no overlongs, surrogates or > U+10FFFF.
 * Returns 0, or -1 with *bad = offset of the first byte of the bad sequence. */
static int utf8_decode(const uint8_t *s, size_t len, UBuf *out, size_t *bad) {
    out->n = 0;
    ub_reserve(out, len + 1);
    size_t i = 0;
    while (i < len) {
        uint32_t c = s[i];
        if (c < 0x80) {
            out->p[out->n++] = c;
            i++;
            continue;
        }
        size_t need;
        uint32_t min;
        if (c >= 0xC2 && c <= 0xDF) { need = 1; c &= 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; c &= 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; c &= 0x07; min = 0x10000; }
        else { *bad = i; return -1; }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80) { *bad = i; return -1; }
            c = (c << 6) | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) { *bad = i; return -1; }
        out->p[out->n++] = c;
        i += need + 1;
    }
    return 0;
}

/* Appends the UTF-8 of one code point; returns the number of bytes (buffer needs 4). */
static size_t utf8_put(uint8_t *o, uint32_t c) {
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = (uint8_t)(0xC0 | (c >> 6)); o[1] = (uint8_t)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (c >> 12));
        o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18));
    o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

// --- HTML character references -----------------------------------------------------------------
static inline int is_ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static inline int is_ascii_hex(uint32_t c) {
    return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static inline int is_ascii_alnum(uint32_t c) {
    return is_ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Numeric reference value as Python's int(), saturated above U+10FFFF (only "too big" matters). */
static uint32_t parse_num(const uint32_t *p, size_t n, int base) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = p[i];
        uint32_t d = is_ascii_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
        v = v * (uint64_t)base + d;
        if (v > 0x110000) v = 0x110000;
    }
    return (uint32_t)v;
}

/* html._replace_charref for a number: appends 0 or 1 code point. */
static void push_charref(UBuf *o, uint32_t num) {
    const uint32_t key[1] = {num};
    const uint32_t *r = row_find(&html_invalid_charrefs[0][0], N_ELEMS(html_invalid_charrefs), 2, key, 1);
    if (r) { ub_push(o, r[1]); return; }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) { ub_push(o, 0xFFFD); return; }
    if (row_find(html_invalid_codepoints, N_ELEMS(html_invalid_codepoints), 1, key, 1)) return;
    ub_push(o, num);
}

/* Python's html.unescape. */
static void html_unescape(const UBuf *in, UBuf *o) {
    o->n = 0;
    ub_reserve(o, in->n);
    const uint32_t *p = in->p;
    size_t n = in->n, i = 0;
    while (i < n) {
        if (p[i] != '&') { ub_push(o, p[i++]); continue; }
        size_t j = i + 1;
        if (j < n && p[j] == '#') {
            // '#[0-9]+;?' then '#[xX][0-9a-fA-F]+;?'; the named form cannot start with '#'
            size_t k = j + 1, d = 0;
            while (k + d < n && is_ascii_digit(p[k + d])) d++;
            if (d) {
                uint32_t num = parse_num(p + k, d, 10);
                size_t end = k + d + (k + d < n && p[k + d] == ';');
                push_charref(o, num);
                i = end;
                continue;
            }
            if (k < n && (p[k] == 'x' || p[k] == 'X')) {
                size_t h = 0;
                while (k + 1 + h < n && is_ascii_hex(p[k + 1 + h])) h++;
                if (h) {
                    uint32_t num = parse_num(p + k + 1, h, 16);
                    size_t end = k + 1 + h + (k + 1 + h < n && p[k + 1 + h] == ';');
                    push_charref(o, num);
                    i = end;
                    continue;
                }
            }
            ub_push(o, '&');
            i++;
            continue;
        }
        // named: '[^\t\n\f <&#;]{1,32};?'
        size_t L = 0;
        while (j + L < n && L < 32) {
            uint32_t c = p[j + L];
            if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' ||
                c == ';')
                break;
            L++;
        }
        if (!L) { ub_push(o, '&'); i++; continue; }
        size_t slen = L + (j + L < n && p[j + L] == ';');
        const HtmlEnt *e = ent_find(html5_entities, N_ELEMS(html5_entities), p + j, slen);
        if (e) {
            push_ent(o, e);
        } else {
            // the longest prefix (of at least 2 characters) that is an entity name
            size_t x = slen - 1;
            for (; x >= 2; x--)
                if ((e = ent_find(html5_entities, N_ELEMS(html5_entities), p + j, x))) break;
            if (e && x >= 2) {
                push_ent(o, e);
                for (size_t k = x; k < slen; k++) ub_push(o, p[j + k]);
            } else {
                ub_push(o, '&');
                for (size_t k = 0; k < slen; k++) ub_push(o, p[j + k]);
            }
        }
        i = j + slen;
    }
}

/* ftfy.fixes.unescape_html: only '&#?[0-9A-Za-z]{1,24};', named ones from ftfy's table,
 * numeric ones through html.unescape unless that leaves a ';'. */
static void ftfy_unescape_html(const UBuf *in, UBuf *o) {
    o->n = 0;
    ub_reserve(o, in->n);
    const uint32_t *p = in->p;
    size_t n = in->n, i = 0;
    while (i < n) {
        if (p[i] != '&') { ub_push(o, p[i++]); continue; }
        int hash = i + 1 < n && p[i + 1] == '#';
        size_t k = i + 1 + hash, m = 0;
        while (k + m < n && m < 25 && is_ascii_alnum(p[k + m])) m++;
        if (m < 1 || m > 24 || k + m >= n || p[k + m] != ';') { ub_push(o, p[i++]); continue; }
        size_t end = k + m + 1;   // one past ';'
        if (!hash) {
            const HtmlEnt *e = ent_find(ftfy_entities, N_ELEMS(ftfy_entities), p + i, end - i);
            if (e) push_ent(o, e);
            else
                for (size_t q = i; q < end; q++) ub_push(o, p[q]);
        } else {
            // html.unescape of "&#<alnum>;" consumes everything only for '[0-9]+' or
            // '[xX][0-9a-fA-F]+'; otherwise a ';' survives and ftfy keeps the original.
            int ok = 1, base = 10;
            const uint32_t *dig = p + k;
            size_t nd = m;
            if (p[k] == 'x' || p[k] == 'X') {
                for (size_t q = 1; q < m; q++) ok &= is_ascii_hex(p[k + q]);
                ok &= m >= 2;
                base = 16;
                dig++;
                nd--;
            } else {
                for (size_t q = 0; q < m; q++) ok &= is_ascii_digit(p[k + q]);
            }
            size_t before = o->n;
            if (ok) push_charref(o, parse_num(dig, nd, base));
            if (!ok || (o->n == before + 1 && o->p[before] == ';')) {
                o->n = before;
                for (size_t q = i; q < end; q++) ub_push(o, p[q]);
            }
        }
        i = end;
    }
}

// --- ftfy fixers ---------------------------------------------------------------------------------
static void fix_c1_controls(UBuf *b) {
    for (size_t i = 0; i < b->n; i++)
        if (b->p[i] >= 0x80 && b->p[i] <= 0x9F) b->p[i] = ftfy_c1[b->p[i] - 0x80];
}

static void fix_latin_ligatures(const UBuf *in, UBuf *o) {
    o->n = 0;
    ub_reserve(o, in->n);
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->p[i];
        const uint32_t *r = NULL;
        if (c >= ftfy_ligatures[0][0] && c <= ftfy_ligatures[N_ELEMS(ftfy_ligatures) - 1][0])
            r = row_find(&ftfy_ligatures[0][0], N_ELEMS(ftfy_ligatures), 4, &c, 1);
        if (!r) { ub_push(o, c); continue; }
        for (int k = 1; k < 4 && r[k]; k++) ub_push(o, r[k]);
    }
}

static void fix_character_width(const UBuf *in, UBuf *o) {
    o->n = 0;
    ub_reserve(o, in->n);
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->p[i];
        const uint32_t *r = NULL;
        if (c == 0x3000 || (c >= 0xFF01 && c <= 0xFFEF))
            r = row_find(&ftfy_width[0][0], N_ELEMS(ftfy_width), 3, &c, 1);
        if (!r) { ub_push(o, c); continue; }
        ub_push(o, r[1]);
        if (r[2]) ub_push(o, r[2]);
    }
}

static void uncurl_quotes(UBuf *b) {
    for (size_t i = 0; i < b->n; i++) {
        uint32_t c = b->p[i];
        if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) b->p[i] = '\'';
        else if (c >= 0x201C && c <= 0x201F) b->p[i] = '"';
    }
}

static void fix_line_breaks(const UBuf *in, UBuf *o) {
    o->n = 0;
    ub_reserve(o, in->n);
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->p[i];
        if (c == '\r') {
            if (i + 1 < in->n && in->p[i + 1] == '\n') i++;   // "\r\n" first, as ftfy replaces it first
            c = '\n';
        } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
            c = '\n';
        }
        ub_push(o, c);
    }
}

/* ANSI escapes "\033[" (\d|;)* [a-zA-Z], where \d is Python re's Unicode decimal digit. */
static void remove_terminal_escapes(const UBuf *in, UBuf *o) {
    o->n = 0;
    ub_reserve(o, in->n);
    size_t i = 0;
    while (i < in->n) {
        if (in->p[i] == 0x1B && i + 1 < in->n && in->p[i + 1] == '[') {
            size_t k = i + 2;
            while (k < in->n && (in->p[k] == ';' || (uprop(in->p[k])->extra & UX_DECIMAL))) k++;
            uint32_t c = k < in->n ? in->p[k] : 0;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
                i = k + 1;
                continue;
            }
        }
        ub_push(o, in->p[i++]);
    }
}

static void remove_control_chars(const UBuf *in, UBuf *o) {
    o->n = 0;
    ub_reserve(o, in->n);
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->p[i];
        if (c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
            (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC))
            continue;
        ub_push(o, c);
    }
}

// --- NFC -----------------------------------------------------------------------------------------
enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7, LCOUNT = 19, VCOUNT = 21,
       TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT };

static void decompose_push(UBuf *o, uint32_t c) {
    if (c >= SBASE && c < SBASE + SCOUNT) {
        uint32_t s = c - SBASE;
        ub_push(o, LBASE + s / NCOUNT);
        ub_push(o, VBASE + (s % NCOUNT) / TCOUNT);
        if (s % TCOUNT) ub_push(o, TBASE + s % TCOUNT);
        return;
    }
    if (uflags(c) & UF_DECOMP) {
        const uint32_t *r = row_find(&udecomp[0][0], N_ELEMS(udecomp), 3, &c, 1);
        if (r) {
            decompose_push(o, r[1]);
            if (r[2]) decompose_push(o, r[2]);
            return;
        }
    }
    ub_push(o, c);
}

/* The primary composite of (a, b), or 0. */
static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    const uint32_t key[2] = {a, b};
    const uint32_t *r = row_find(&ucompose[0][0], N_ELEMS(ucompose), 3, key, 2);
    return r ? r[2] : 0;
}

/* Unicode NFC (as unicodedata.normalize('NFC')); returns 0 when `in` is already NFC by the
 * quick check (o untouched), 1 when o holds the result. */
static int nfc(const UBuf *in, UBuf *o) {
    size_t i = 0;
    while (i < in->n && !(uflags(in->p[i]) & UF_NFC)) i++;
    if (i == in->n) return 0;
    o->n = 0;
    ub_reserve(o, in->n + 8);
    for (i = 0; i < in->n; i++) decompose_push(o, in->p[i]);
    uint32_t *p = o->p;
    size_t n = o->n;
    for (i = 1; i < n; i++) {   // canonical ordering: stable insertion sort of non-starters
        uint8_t cc = uccc(p[i]);
        if (!cc) continue;
        uint32_t c = p[i];
        size_t j = i;
        while (j > 0 && uccc(p[j - 1]) > cc) {
            p[j] = p[j - 1];
            j--;
        }
        p[j] = c;
    }
    if (!n) return 1;
    size_t starter = 0, w = 1;
    int last = uccc(p[0]) ? 256 : 0;   // a leading non-starter blocks everything after it
    for (i = 1; i < n; i++) {
        uint32_t c = p[i];
        int cc = uccc(c);
        uint32_t comp = compose_pair(p[starter], c);
        if (comp && (last < cc || last == 0)) {
            p[starter] = comp;
            continue;
        }
        if (cc == 0) starter = w;
        last = cc;
        p[w++] = c;
    }
    o->n = w;
    return 1;
}

// --- lowercase -----------------------------------------------------------------------------------
/* str.lower(): full mappings plus Python's Final_Sigma rule (handle_capital_sigma). */
static void py_lower(const UBuf *in, UBuf *o) {
    o->n = 0;
    ub_reserve(o, in->n);
    const uint32_t *p = in->p;
    size_t n = in->n;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = p[i];
        if (c < 0x80) { ub_push(o, (c >= 'A' && c <= 'Z') ? c + 32 : c); continue; }
        if (c == 0x3A3) {
            size_t j = i;
            uint32_t pc = 0;
            int found = 0;
            while (j > 0) {
                pc = p[--j];
                if (!(uflags(pc) & UF_CASEIGN)) { found = 1; break; }
            }
            int final = found && (uflags(pc) & UF_CASED);
            if (final && i + 1 < n) {
                size_t k = i + 1;
                uint32_t nc = 0;
                for (; k < n; k++) {
                    nc = p[k];
                    if (!(uflags(nc) & UF_CASEIGN)) break;
                }
                final = k == n || !(uflags(nc) & UF_CASED);
            }
            ub_push(o, final ? 0x3C2 : 0x3C3);
            continue;
        }
        if (!(uflags(c) & UF_LOWER)) { ub_push(o, c); continue; }
        const uint32_t *r = row_find(&ulower_special[0][0], N_ELEMS(ulower_special), 4, &c, 1);
        if (r) {
            for (int k = 1; k < 4 && r[k]; k++) ub_push(o, r[k]);
            continue;
        }
        r = row_find(&ulower_map[0][0], N_ELEMS(ulower_map), 2, &c, 1);
        ub_push(o, r ? r[1] : c);
    }
}

// --- the tokenizer -------------------------------------------------------------------------------
typedef struct {
    uint64_t h;      // 0 = empty slot
    size_t koff;     // key bytes in cache_keys
    size_t voff;     // ids in cache_vals
    uint32_t klen, vlen;
} CacheEnt;

typedef struct {
    int32_t rank, pos;
} HeapEnt;

struct Tokenizer {
    int32_t byte_id[256];   // id of byte b as a symbol; + 256 for the word-final form
    uint64_t *mkeys;        // (mcap,) merge pair (a << 32 | b), UINT64_MAX = empty
    int32_t *mrank;         // (mcap,) merge rank; the merged symbol's id is 512 + rank
    size_t mcap;
    char **id_str;          // (TOKENIZER_VOCAB_SIZE,) vocabulary strings, into str_pool
    char *str_pool;
    CacheEnt *cache;        // (ccap,) open addressing
    size_t ccap, ccount;
    uint8_t *cache_keys;
    size_t ck_n, ck_cap;
    int32_t *cache_vals;
    size_t cv_n, cv_cap;
    // scratch, reused between calls
    UBuf u[5];   // u[0] the text, u[1..3] ftfy segment work, u[4] the fixed text
    IVec ids;
    uint8_t *tok;
    size_t tok_cap;
    int32_t *sym, *prv, *nxt;
    HeapEnt *heap;
    size_t bpe_cap;
};

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}
static uint64_t hash_bytes(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    h = mix64(h);
    return h ? h : 1;
}

static int32_t merge_rank(const Tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t mask = t->mcap - 1, i = mix64(key) & mask;
    while (t->mkeys[i] != UINT64_MAX) {
        if (t->mkeys[i] == key) return t->mrank[i];
        i = (i + 1) & mask;
    }
    return -1;
}

/* Loading-time string -> id map (open addressing on strings). */
typedef struct {
    const char **key;
    int32_t *val;
    size_t cap;
} StrMap;

static int32_t *strmap_slot(StrMap *m, const char *s, int *found) {   // finds or inserts
    size_t mask = m->cap - 1, i = hash_bytes(s, strlen(s)) & mask;
    while (m->key[i]) {
        if (!strcmp(m->key[i], s)) { *found = 1; return &m->val[i]; }
        i = (i + 1) & mask;
    }
    *found = 0;
    m->key[i] = s;
    return &m->val[i];
}

static const int32_t *strmap_get(const StrMap *m, const char *s) {
    size_t mask = m->cap - 1, i = hash_bytes(s, strlen(s)) & mask;
    for (; m->key[i]; i = (i + 1) & mask)
        if (!strcmp(m->key[i], s)) return &m->val[i];
    return NULL;
}

// The CLIP merges list is 1.36 MB; anything past this bound is not a vocabulary (or is a gzip
// bomb) and fails before it is decompressed any further.
#define VOCAB_MAX_BYTES ((size_t)16 << 20)

static int read_gz(const char *path, char **out, size_t *out_n) {
    struct stat st;
    if (stat(path, &st))
        return laic_error("%s: cannot open vocabulary (%s) ---> HINT: run 'make setup' or pass --vocab",
                          path, strerror(errno));
    uint8_t *buf;
    if (gz_read_all(path, VOCAB_MAX_BYTES, &buf, out_n)) {
        const char *m = laic_last_error();
        size_t pl = strlen(path);
        if (!strncmp(m, path, pl) && !strncmp(m + pl, ": ", 2)) m += pl + 2;
        return laic_error("%s: corrupt vocabulary (%s)", path, m);
    }
    *out = (char *)buf;
    return 0;
}

Tokenizer *tokenizer_load(const char *path) {
    char *text = NULL;
    size_t n = 0;
    if (!path) {
        laic_error("tokenizer: no vocabulary path");
        return NULL;
    }
    if (read_gz(path, &text, &n)) return NULL;
    if (memchr(text, 0, n)) {
        laic_error("%s: corrupt vocabulary (NUL byte; not the CLIP merges list)", path);
        free(text);
        return NULL;
    }

    Tokenizer *t = callocCheck(1, sizeof *t);
    t->id_str = callocCheck(TOKENIZER_VOCAB_SIZE, sizeof *t->id_str);
    t->str_pool = mallocCheck(n + 256 * 3 + 256 * 7 + 64);
    t->mcap = 1 << 17;
    t->mkeys = mallocCheck(t->mcap * sizeof *t->mkeys);
    t->mrank = mallocCheck(t->mcap * sizeof *t->mrank);
    memset(t->mkeys, 0xFF, t->mcap * sizeof *t->mkeys);
    StrMap sm = {callocCheck(1 << 17, sizeof(char *)), mallocCheck((1 << 17) * sizeof(int32_t)), 1 << 17};
    char *pool = t->str_pool;
    int found;

    // GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to 256+k.
    int32_t next_extra = 0, id = 0;
    uint32_t byte_cp[256];
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
            if (printable != (pass == 0)) continue;
            byte_cp[id] = printable ? (uint32_t)b : 256 + (uint32_t)next_extra++;
            t->byte_id[b] = id++;
        }
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < 256; k++) {
            char *s = pool;
            pool += utf8_put((uint8_t *)pool, byte_cp[k]);
            if (w) pool = stpcpy(pool, "</w>");
            *pool++ = 0;
            t->id_str[w * 256 + k] = s;
            *strmap_slot(&sm, s, &found) = w * 256 + k;
        }

    // lines 1..N_MERGES: "A B" -> rank line-1; the merged symbol "AB" gets id 512 + rank
    char *line = strchr(text, '\n');
    int err = 0;
    for (int r = 0; r < N_MERGES && !err; r++) {
        if (!line) {
            laic_error("%s: corrupt vocabulary (%d merge lines, expected %d) ---> HINT: run 'make setup'",
                       path, r, N_MERGES);
            err = 1;
            break;
        }
        char *s = line + 1;
        line = strchr(s, '\n');
        if (line) *line = 0;
        char *part[3] = {0};
        int np = 0;
        for (char *q = s; *q && np < 3;) {
            while (*q == ' ' || *q == '\t' || *q == '\r') *q++ = 0;
            if (!*q) break;
            part[np++] = q;
            while (*q && *q != ' ' && *q != '\t' && *q != '\r') q++;
        }
        if (np != 2) {
            laic_error("%s: corrupt vocabulary (line %d: expected two symbols)", path, r + 2);
            err = 1;
            break;
        }
        // fields may be followed by trailing blanks; terminate them
        for (int k = 0; k < 2; k++) part[k][strcspn(part[k], " \t\r")] = 0;
        // both symbols must exist already: the check that makes heap-order BPE exact
        const int32_t *pa = strmap_get(&sm, part[0]), *pb = strmap_get(&sm, part[1]);
        if (!pa || !pb) {
            laic_error("%s: corrupt vocabulary (line %d: symbol '%s' not made by an earlier merge)", path,
                       r + 2, pa ? part[1] : part[0]);
            err = 1;
            break;
        }
        int32_t ida = *pa, idb = *pb;
        char *cat = pool;
        pool = stpcpy(stpcpy(pool, part[0]), part[1]) + 1;
        int32_t *pc = strmap_slot(&sm, cat, &found);
        if (found) {
            laic_error("%s: corrupt vocabulary (line %d: duplicate merge result '%s')", path, r + 2, cat);
            err = 1;
            break;
        }
        *pc = 512 + r;
        t->id_str[512 + r] = cat;
        uint64_t key = (uint64_t)(uint32_t)ida << 32 | (uint32_t)idb;
        size_t mask = t->mcap - 1, i = mix64(key) & mask;
        while (t->mkeys[i] != UINT64_MAX) i = (i + 1) & mask;   // pairs are unique: results are
        t->mkeys[i] = key;
        t->mrank[i] = r;
    }
    free(sm.key);
    free(sm.val);
    if (err) {
        free(text);
        tokenizer_free(t);
        return NULL;
    }
    t->id_str[TOKENIZER_SOT] = pool;
    pool = stpcpy(pool, "<|startoftext|>") + 1;
    t->id_str[TOKENIZER_EOT] = pool;
    stpcpy(pool, "<|endoftext|>");
    free(text);
    return t;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->mkeys);
    free(t->mrank);
    free(t->id_str);
    free(t->str_pool);
    free(t->cache);
    free(t->cache_keys);
    free(t->cache_vals);
    for (int k = 0; k < 5; k++) free(t->u[k].p);
    free(t->ids.p);
    free(t->tok);
    free(t->sym);
    free(t->prv);
    free(t->nxt);
    free(t->heap);
    free(t);
}

const char *tokenizer_id_to_str(const Tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= TOKENIZER_VOCAB_SIZE) return NULL;
    return t->id_str[id];
}

const char *tokenizer_default_vocab_path(void) {
    static char buf[4096 + 64];
    const char *env = getenv("LAIC_VOCAB");
    if (env && *env) {
        snprintf(buf, sizeof buf, "%s", env);
        return buf;
    }
    snprintf(buf, sizeof buf, "assets/" VOCAB_NAME);
    if (access(buf, R_OK) == 0) return buf;
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, sizeof buf, "%s/../assets/" VOCAB_NAME, exe);
            if (access(buf, R_OK) == 0) return buf;
        }
    }
    snprintf(buf, sizeof buf, "../shared/assets/" VOCAB_NAME);
    if (access(buf, R_OK) == 0) return buf;
    laic_error("tokenizer: vocabulary " VOCAB_NAME " not found ($LAIC_VOCAB, ./assets, <laic dir>/../assets, "
               "../shared/assets) ---> HINT: run 'make setup' or pass --vocab PATH");
    return NULL;
}

// --- BPE -----------------------------------------------------------------------------------------
static inline int heap_less(HeapEnt a, HeapEnt b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(HeapEnt *h, size_t *n, HeapEnt e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(e, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static HeapEnt heap_pop(HeapEnt *h, size_t *n) {
    HeapEnt top = h[0], e = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(h[c + 1], h[c])) c++;
        if (!heap_less(h[c], e)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = e;
    return top;
}

/* BPE of one pre-token (UTF-8 bytes); appends its ids to t->ids. */
static void bpe_word(Tokenizer *t, const uint8_t *b, size_t n) {
    if (n == 1) { iv_push(&t->ids, t->byte_id[b[0]] + 256); return; }
    if (n > t->bpe_cap) {
        t->bpe_cap = n;
        t->sym = xrealloc(t->sym, n * sizeof *t->sym);
        t->prv = xrealloc(t->prv, n * sizeof *t->prv);
        t->nxt = xrealloc(t->nxt, n * sizeof *t->nxt);
        t->heap = xrealloc(t->heap, 2 * n * sizeof *t->heap);   // bound: see the loop below
    }
    int32_t *sym = t->sym, *prv = t->prv, *nxt = t->nxt;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i] = t->byte_id[b[i]] + (i == n - 1 ? 256 : 0);
        prv[i] = (int32_t)i - 1;
        nxt[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r = merge_rank(t, sym[i], sym[i + 1]);
        if (r >= 0) heap_push(t->heap, &hn, (HeapEnt){r, (int32_t)i});
    }
    // Each merge removes one symbol and pushes at most 2 entries while popping 1: the heap never
    // holds more than (n - 1) + (n - 1) entries, within the 2n allocated.
    while (hn) {
        HeapEnt e = heap_pop(t->heap, &hn);
        int32_t p = e.pos, q = nxt[p];
        if (sym[p] < 0 || q < 0 || merge_rank(t, sym[p], sym[q]) != e.rank) continue;   // stale
        sym[p] = 512 + e.rank;
        sym[q] = -1;
        nxt[p] = nxt[q];
        if (nxt[q] >= 0) prv[nxt[q]] = p;
        if (prv[p] >= 0) {
            int32_t r = merge_rank(t, sym[prv[p]], sym[p]);
            if (r >= 0) heap_push(t->heap, &hn, (HeapEnt){r, prv[p]});
        }
        if (nxt[p] >= 0) {
            int32_t r = merge_rank(t, sym[p], sym[nxt[p]]);
            if (r >= 0) heap_push(t->heap, &hn, (HeapEnt){r, p});
        }
    }
    for (int32_t i = 0; i >= 0; i = nxt[i]) iv_push(&t->ids, sym[i]);
}

static void cache_insert(Tokenizer *t, uint64_t h, const uint8_t *key, size_t klen, const int32_t *v,
                         size_t vlen);

static void cache_rehash(Tokenizer *t, size_t cap) {
    CacheEnt *old = t->cache;
    size_t oc = t->ccap;
    t->cache = callocCheck(cap, sizeof *t->cache);
    t->ccap = cap;
    for (size_t i = 0; i < oc; i++) {
        if (!old[i].h) continue;
        size_t j = old[i].h & (cap - 1);
        while (t->cache[j].h) j = (j + 1) & (cap - 1);
        t->cache[j] = old[i];
    }
    free(old);
}

static void cache_insert(Tokenizer *t, uint64_t h, const uint8_t *key, size_t klen, const int32_t *v,
                         size_t vlen) {
    if (t->ccount >= CACHE_MAX_ENTRIES) {   // bound the memory of a long run: start afresh
        memset(t->cache, 0, t->ccap * sizeof *t->cache);
        t->ccount = t->ck_n = t->cv_n = 0;
    }
    if (2 * (t->ccount + 1) > t->ccap) cache_rehash(t, t->ccap ? 2 * t->ccap : 4096);
    if (t->ck_n + klen > t->ck_cap) {
        while (t->ck_n + klen > t->ck_cap) t->ck_cap = t->ck_cap ? 2 * t->ck_cap : 1 << 16;
        t->cache_keys = xrealloc(t->cache_keys, t->ck_cap);
    }
    if (t->cv_n + vlen > t->cv_cap) {
        while (t->cv_n + vlen > t->cv_cap) t->cv_cap = t->cv_cap ? 2 * t->cv_cap : 1 << 14;
        t->cache_vals = xrealloc(t->cache_vals, t->cv_cap * sizeof *t->cache_vals);
    }
    size_t j = h & (t->ccap - 1);
    while (t->cache[j].h) j = (j + 1) & (t->ccap - 1);
    memcpy(t->cache_keys + t->ck_n, key, klen);
    memcpy(t->cache_vals + t->cv_n, v, vlen * sizeof *v);
    t->cache[j] = (CacheEnt){h, t->ck_n, t->cv_n, (uint32_t)klen, (uint32_t)vlen};
    t->ck_n += klen;
    t->cv_n += vlen;
    t->ccount++;
}

/* Ids of one pre-token, through the cache; appended to t->ids. */
static void encode_word(Tokenizer *t, const uint8_t *b, size_t n) {
    // the reference's cache starts with the two special tokens, matched exactly
    if (n == 15 && !memcmp(b, "<|startoftext|>", 15)) { iv_push(&t->ids, TOKENIZER_SOT); return; }
    if (n == 13 && !memcmp(b, "<|endoftext|>", 13)) { iv_push(&t->ids, TOKENIZER_EOT); return; }
    if (n > UINT32_MAX / 2) {   // absurdly long word: do not cache
        bpe_word(t, b, n);
        return;
    }
    uint64_t h = hash_bytes(b, n);
    if (t->ccap) {
        for (size_t j = h & (t->ccap - 1); t->cache[j].h; j = (j + 1) & (t->ccap - 1)) {
            CacheEnt *e = &t->cache[j];
            if (e->h == h && e->klen == n && !memcmp(t->cache_keys + e->koff, b, n)) {
                for (uint32_t k = 0; k < e->vlen; k++) iv_push(&t->ids, t->cache_vals[e->voff + k]);
                return;
            }
        }
    }
    size_t start = t->ids.n;
    bpe_word(t, b, n);
    cache_insert(t, h, b, n, t->ids.p + start, t->ids.n - start);
}

// --- cleaning and pre-tokenizing -----------------------------------------------------------------
/* One ftfy segment (fix_and_explain), iterated to a fixed point; result appended to out. */
static void ftfy_segment(Tokenizer *t, const uint32_t *s, size_t n, int html, UBuf *out) {
    UBuf *cur = &t->u[1], *tmp = &t->u[2], *orig = &t->u[3];
    cur->n = 0;
    ub_reserve(cur, n);
    memcpy(cur->p, s, n * sizeof *s);
    cur->n = n;
    for (int iter = 0; iter < 1000; iter++) {   // converges in a few rounds; bound is a safety net
        orig->n = 0;
        ub_reserve(orig, cur->n);
        memcpy(orig->p, cur->p, cur->n * sizeof *cur->p);
        orig->n = cur->n;
        if (html) { ftfy_unescape_html(cur, tmp); ub_swap(cur, tmp); }
        fix_c1_controls(cur);
        fix_latin_ligatures(cur, tmp); ub_swap(cur, tmp);
        fix_character_width(cur, tmp); ub_swap(cur, tmp);
        uncurl_quotes(cur);
        fix_line_breaks(cur, tmp); ub_swap(cur, tmp);
        remove_terminal_escapes(cur, tmp); ub_swap(cur, tmp);
        remove_control_chars(cur, tmp); ub_swap(cur, tmp);
        if (nfc(cur, tmp)) ub_swap(cur, tmp);
        if (cur->n == orig->n && !memcmp(cur->p, orig->p, cur->n * sizeof *cur->p)) break;
    }
    ub_reserve(out, out->n + cur->n);
    memcpy(out->p + out->n, cur->p, cur->n * sizeof *cur->p);
    out->n += cur->n;
}

/* UTF-8 text -> cleaned code points in t->u[0]. */
static int clean(Tokenizer *t, const char *text, size_t len) {
    UBuf *a = &t->u[0], *b = &t->u[3];
    size_t bad = 0;
    if (utf8_decode((const uint8_t *)text, len, a, &bad))
        return laic_error("invalid UTF-8 at byte %zu (0x%02x)", bad + 1, (unsigned)(uint8_t)text[bad]);
    // ftfy.fix_text: segments end after '\n' (or every MAX_SEGMENT code points); HTML unescaping is
    // off from the first segment holding '<' on ("auto", which ftfy never turns back on).
    UBuf *fixed = &t->u[4];
    fixed->n = 0;
    int html = 1;
    for (size_t pos = 0; pos < a->n;) {
        size_t end = pos;
        while (end < a->n && a->p[end] != '\n' && end - pos < MAX_SEGMENT) end++;
        if (end < a->n && a->p[end] == '\n' && end - pos < MAX_SEGMENT) end++;
        for (size_t i = pos; i < end && html; i++)
            if (a->p[i] == '<') html = 0;
        ftfy_segment(t, a->p + pos, end - pos, html, fixed);
        pos = end;
    }
    ub_swap(a, fixed);
    html_unescape(a, b); ub_swap(a, b);
    html_unescape(a, b); ub_swap(a, b);
    // strip + collapse whitespace runs to one space
    size_t w = 0;
    int pending = 0;
    for (size_t i = 0; i < a->n; i++) {
        uint32_t c = a->p[i];
        if (uflags(c) & UF_SPACE) { pending = w > 0; continue; }
        if (pending) { a->p[w++] = ' '; pending = 0; }
        a->p[w++] = c;
    }
    a->n = w;
    py_lower(a, b); ub_swap(a, b);
    return 0;
}

/* Case-insensitive match of an ASCII literal as the `regex` module does it (simple case folding:
 * only U+017F folds onto an ASCII letter that these literals use, and U+212A onto 'k'). */
static inline uint32_t fold(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c == 0x17F) return 's';
    if (c == 0x212A) return 'k';
    return c;
}
static int match_lit(const uint32_t *p, size_t n, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++)
        if (k >= n || fold(p[k]) != (uint32_t)lit[k]) return 0;
    return (int)k;
}

static int encode_clean(Tokenizer *t) {
    const UBuf *a = &t->u[0];
    const uint32_t *p = a->p;
    size_t n = a->n, i = 0;
    static const char *const specials[] = {"<|startoftext|>", "<|endoftext|>"};
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    t->ids.n = 0;
    while (i < n) {
        uint32_t c = p[i];
        uint8_t f = uflags(c);
        size_t len = 0;
        if (c == '<')
            for (size_t k = 0; k < N_ELEMS(specials) && !len; k++) len = (size_t)match_lit(p + i, n - i, specials[k]);
        if (!len && c == '\'')
            for (size_t k = 0; k < N_ELEMS(contractions) && !len; k++)
                len = (size_t)match_lit(p + i, n - i, contractions[k]);
        if (!len) {
            if (f & UF_L) {
                while (i + len < n && (uflags(p[i + len]) & UF_L)) len++;
            } else if (f & UF_N) {
                len = 1;
            } else if (!(f & UF_SPACE) && !(uprop(c)->extra & UX_NOT_OTHER)) {
                while (i + len < n && !(uflags(p[i + len]) & (UF_L | UF_N | UF_SPACE)) &&
                       !(uprop(p[i + len])->extra & UX_NOT_OTHER))
                    len++;
            } else {   // no alternative matches here (a space, or U+0345): findall skips it
                i++;
                continue;
            }
        }
        if (4 * len > t->tok_cap) {
            t->tok_cap = 4 * len;
            t->tok = xrealloc(t->tok, t->tok_cap);
        }
        size_t nb = 0;
        for (size_t k = 0; k < len; k++) nb += utf8_put(t->tok + nb, p[i + k]);
        encode_word(t, t->tok, nb);
        i += len;
    }
    return 0;
}

// --- public API ----------------------------------------------------------------------------------
int tokenizer_encode(Tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (clean(t, text, len) || encode_clean(t)) return -1;
    if (t->ids.n) {
        *ids = mallocCheck(t->ids.n * sizeof **ids);
        memcpy(*ids, t->ids.p, t->ids.n * sizeof **ids);
    }
    *n = t->ids.n;
    return 0;
}

int tokenizer_tokenize(Tokenizer *t, const char *text, size_t len, int context, int32_t *row) {
    if (context < 1) return laic_error("tokenizer: context must be >= 1 (got %d)", context);
    if (clean(t, text, len) || encode_clean(t)) return -1;
    size_t total = t->ids.n + 2, k = 0;
    row[k++] = TOKENIZER_SOT;
    for (size_t i = 0; i < t->ids.n && k < (size_t)context; i++) row[k++] = t->ids.p[i];
    if (k < (size_t)context) row[k++] = TOKENIZER_EOT;
    else row[context - 1] = TOKENIZER_EOT;   // truncate=True: the last kept token becomes EOT
    for (size_t i = k; i < (size_t)context; i++) row[i] = 0;
    return (int)(total < (size_t)context ? total : (size_t)context);
}

char *tokenizer_clean(Tokenizer *t, const char *text, size_t len, size_t *out_len) {
    if (clean(t, text, len)) return NULL;
    const UBuf *a = &t->u[0];
    char *s = mallocCheck(4 * a->n + 1);
    size_t nb = 0;
    for (size_t i = 0; i < a->n; i++) nb += utf8_put((uint8_t *)s + nb, a->p[i]);
    s[nb] = 0;
    if (out_len) *out_len = nb;
    return s;
}
