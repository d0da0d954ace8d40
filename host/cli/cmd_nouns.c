/*
 * cmd_nouns.c — `laic nouns [--wordnet PATH] --out nouns.tsv`: the WordNet noun bank as a TSV.
 *
 * Output (atomic): header "index\tlemma\tsynset_offset\ttext", then one row per (lemma, synset)
 * in data.noun order; `text` is the prompt form of the lemma (underscores → spaces). A summary
 * line with the row, synset and distinct-lemma counts goes to stdout.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "io/err.h"
#include "data/nouns.h"

int cmd_nouns(int argc, char **argv) {
    CliOpt opts[] = {
        {"--wordnet", "PATH", NOUNS_DEFAULT_PATH, "WordNet 3.0 data.noun (Debian wordnet-base)", NULL, 0},
        {"--out", "TSV", NULL, "output: index, lemma, synset_offset, text (tab-separated)", NULL, 0},
    };
    if (cli_parse(argc, argv, "nouns", "WordNet 3.0 nouns, one row per (lemma, synset) (SPEC §4).",
                  opts, CLI_N(opts), NULL, 0, NULL))
        return cli_exit_code();
    if (cli_require(opts, CLI_N(opts), "--out")) return cli_fail(2);
    Nouns n;
    if (nouns_load(&n, cli_get(opts, CLI_N(opts), "--wordnet"))) return cli_fail(1);
    const char *out = cli_get(opts, CLI_N(opts), "--out");
    int rc = nouns_write_tsv(&n, out);
    if (!rc)
        printf("nouns: %zu rows (%zu synsets, %zu distinct lemmas) -> %s\n", n.n, n.n_synsets,
               n.n_lemmas, out);
    nouns_free(&n);
    return rc ? cli_fail(1) : 0;
}
