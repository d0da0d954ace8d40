/*
 * main.c — the laic command line: `laic <subcommand> [options]`.
 * Each subcommand is one function in host/cmd_*.c; this file only dispatches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "comm.h"
#include "io/err.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} Command;

static const Command k_commands[] = {
    {"run", cmd_run, "the no-train pipeline from an INI config (run directory, report.json)"},
    {"sweep", cmd_sweep, "ablation sweeps: the pipeline over a grid of config values, sweep.csv, plots"},
    {"report", cmd_report, "rebuild report.html (run directory) or sweep.html (sweep directory)"},
    {"doctor", cmd_doctor, "check this machine for what laic needs; each missing piece with its fix"},
    {"info", cmd_info, "describe a weights file (architecture, parameters, dtype) and the devices"},
    {"init-weights", cmd_init_weights, "write CLIP-style random-init weights (demos, benchmarks)"},
    {"tokenize", cmd_tokenize, "CLIP BPE tokenizer: UTF-8 lines -> token ids"},
    {"preprocess", cmd_preprocess, "decode, resize, crop and normalise images -> [N,3,H,W] .npy"},
    {"encode-images", cmd_encode_images, "CLIP image features of images or pixel tensors"},
    {"encode-text", cmd_encode_text, "CLIP text features of texts or token ids"},
    {"text-backward", cmd_text_backward, "gradient of text features w.r.t. input embeddings"},
    {"image-backward", cmd_image_backward, "gradient of image features w.r.t. every visual parameter and the pixels"},
    {"train-centers", cmd_train_centers, "semantic centres by prompt learning on pseudo-labels (SPEC 7)"},
    {"ridge", cmd_ridge, "cross-modal matrix C = X T^T (T T^T + lambda I)^-1 by Cholesky"},
    {"kmeans", cmd_kmeans, "k-means (Lloyd, k-means++, restarts, spherical) on .npy rows"},
    {"knn", cmd_knn, "cosine top-k neighbours (self excluded), tiled"},
    {"knn-filter", cmd_knn_filter, "neighbour-consistency scores and high-quality mask"},
    {"metrics", cmd_metrics, "NMI / ACC (Hungarian) / ARI of predictions against labels"},
    {"nouns", cmd_nouns, "WordNet 3.0 noun bank -> TSV (index, lemma, synset, prompt text)"},
    {"bench", cmd_bench, "encoder throughput: img/s, prompts/s, TFLOP/s, % of peak (JSON lines)"},
    {"dataset-info", cmd_dataset_info, "open a dataset (ImageFolder, CIFAR, STL-10, IDX, CSV): counts per class"},
};

static void usage(FILE *f) {
    fprintf(f, "laic — language-assisted image clustering engine (CLIP ViT-B/32, CUDA C)\n\n"
               "usage: laic <command> [options]     (laic <command> --help for its options)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(f, "  %-16s %s\n", k_commands[i].name, k_commands[i].summary);
}

// Commands that run as one job over the ranks of an mpirun / srun launch (host/comm.h); the
// others are one-process tools and refuse to start as several ranks.
static int distributed(const char *name) { return !strcmp(name, "run") || !strcmp(name, "sweep"); }

static int dispatch(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++) {
        if (strcmp(argv[1], k_commands[i].name)) continue;
        if (comm_world_size() > 1 && !distributed(argv[1])) {
            if (comm_world_rank() == 0)
                fprintf(stderr, "laic: %s runs as one process, not as %d ranks ---> HINT: only "
                                "'laic run' and 'laic sweep' spread over mpirun/srun ranks\n",
                        argv[1], comm_world_size());
            return 2;
        }
        return k_commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "laic: unknown command '%s' ---> HINT: run 'laic --help' for the list\n", argv[1]);
    return 2;
}

int main(int argc, char **argv) {
    if (comm_init(&argc, &argv)) {
        fprintf(stderr, "laic: %s\n", laic_last_error());
        return 2;
    }
    // one voice: progress bars and stage logs come from rank 0; errors from every rank
    if (comm_world_rank() > 0) setenv("LAIC_QUIET", "1", 1);
    int rc = dispatch(argc, argv);
    // A rank that failed takes the whole job down (MPI_Abort) rather than leaving the others
    // waiting in a collective; its error line is already on stderr.
    if (rc && comm_world_size() > 1) comm_abort(rc);
    comm_finalize();
    return rc;
}
