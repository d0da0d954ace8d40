/*
 * cmd_doctor.c — `laic doctor [--config CONFIG] [section.key=value ...]`: one screen on what this
 * machine has for laic: the build (commit, compiler, CUDA, MPI/NCCL), CPU and BLAS threads, CUDA
 * devices and the driver, the weights (and whether they are OpenAI's official ViT-B/32), the CLIP
 * vocabulary, WordNet, the dataset, free disk and memory, and the optional tools (chromium for the
 * report test, python3 + matplotlib for sweep --plot). Each missing piece is printed with the
 * command that fixes it.
 *
 * The checks follow the job's config (default configs/demo.ini, the README's main command): a
 * piece that job needs and that is missing is marked "✗" and makes the exit status 1; optional
 * pieces are "–" and leave it 0. Config errors exit 2.
 */
#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cli/cli.h"
#include "comm.h"
#include "data/data.h"
#include "io/err.h"
#include "io/sha256.h"
#include "model/clip.h"
#include "model/tokenizer.h"
#include "run/config.h"
#include "run/pipeline.h"

#define DEMO_CONFIG "configs/demo.ini"
#define DEFAULT_WEIGHTS "weights/ViT-B-32.safetensors"
#define VOCAB_SHA256 "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"

typedef enum { OK, INFO, MISSING_OPTIONAL, MISSING_NEEDED } Mark;

static int g_needed_missing, g_optional_missing;

/* One line: mark, name, what was found; then "fix: …" when given. */
static void item(Mark m, const char *name, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void item(Mark m, const char *name, const char *fix, const char *fmt, ...) {
    static const char *marks[] = {"✓", "·", "–", "✗"};
    char what[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    printf("  %s %-16s %s\n", marks[m], name, what);
    if (fix && fix[0]) printf("    %-16s fix: %s\n", "", fix);
    g_needed_missing += m == MISSING_NEEDED;
    g_optional_missing += m == MISSING_OPTIONAL;
}

static int in_path(const char *prog, char *out, size_t n) {
    const char *path = getenv("PATH");
    if (!path) return 0;
    char *dup = strdup(path), *save = NULL;
    int found = 0;
    for (char *d = strtok_r(dup, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, n, "%s/%s", d[0] ? d : ".", prog);
        found = access(out, X_OK) == 0;
    }
    free(dup);
    return found;
}

static void read_first_line(const char *path, char *out, size_t n) {
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (fgets(out, (int)n, f)) out[strcspn(out, "\n")] = 0;
    fclose(f);
}

static double meminfo_gib(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtod(line + kl + 1, NULL) / (1024.0 * 1024.0);   // kB → GiB
            break;
        }
    fclose(f);
    return v;
}

static void cpu_model(char *out, size_t n) {
    snprintf(out, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + (c[1] == ' ');
                c[strcspn(c, "\n")] = 0;
                snprintf(out, n, "%s", c);
            }
            break;
        }
    fclose(f);
}

/* The repository's configs/demo.ini: ./configs/demo.ini, else next to the binary's repository. */
static int find_demo_config(char *out, size_t n) {
    struct stat st;
    snprintf(out, n, DEMO_CONFIG);
    if (!stat(out, &st)) return 0;
    char exe[2048];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, n, "%s/../" DEMO_CONFIG, exe);
            if (!stat(out, &st)) return 0;
        }
    }
    return -1;
}

static void check_build(void) {
    printf("build\n");
    char cc[160];
#ifdef __VERSION__
    snprintf(cc, sizeof cc, "gcc %s", __VERSION__);
#else
    snprintf(cc, sizeof cc, "unknown compiler");
#endif
    const char *opt =
#ifdef __OPTIMIZE__
        "optimised";
#else
        "not optimised (-O0)";
#endif
    const char *san =
#ifdef __SANITIZE_ADDRESS__
        ", AddressSanitizer";
#else
        "";
#endif
    const char *ompv = _OPENMP >= 202011 ? "5.1" : _OPENMP >= 201811 ? "5.0" : _OPENMP >= 201511 ? "4.5" : "< 4.5";
    item(OK, "laic", NULL, "commit %s, %s, C11, %s, OpenMP %s%s", run_git_commit(), cc, opt, ompv, san);
    char nvcc[4096];
    const int have_nvcc = in_path("nvcc", nvcc, sizeof nvcc);
#ifdef LAIC_CUDA
    item(OK, "CUDA kernels", NULL, "built (kernels/*.cu, cuBLAS/cuSOLVER/cuRAND linked)%s",
         have_nvcc ? "" : "; nvcc is not on PATH now");
#else
    item(INFO, "CUDA kernels", have_nvcc ? "make clean && make CUDA=1" : NULL,
         "not built (%s): the CPU backend runs everything", have_nvcc ? "nvcc is on PATH: rebuild to use it" : "no nvcc on PATH");
#endif
#ifdef LAIC_MPI
    char mpirun[4096];
    const int have_mpirun = in_path("mpirun", mpirun, sizeof mpirun);
    const char *lib = comm_library();
    item(have_mpirun ? OK : MISSING_OPTIONAL, "MPI / NCCL", have_mpirun ? NULL : "apt-get install openmpi-bin",
         "MPI built%s%s%s, NCCL %s; %s", strcmp(lib, "none") ? " (" : "", strcmp(lib, "none") ? lib : "",
         strcmp(lib, "none") ? ")" : "",
#ifdef LAIC_NCCL
         "built",
#else
         "not built",
#endif
         have_mpirun ? "several ranks: mpirun -np N ./build/laic run CONFIG" : "no mpirun on PATH");
#else
    item(INFO, "MPI / NCCL", NULL, "not built (install libopenmpi-dev and rebuild for mpirun runs)");
#endif
    const char *cfg = openblas_get_config();
    const int par = openblas_get_parallel();
    item(OK, "BLAS", par == 2 ? NULL : "apt-get install libopenblas-openmp-dev && make clean && make",
         "%s (%s build)", cfg ? cfg : "OpenBLAS", par == 2 ? "OpenMP" : par == 1 ? "pthreads" : "serial");
}

static void check_cpu(void) {
    printf("CPU\n");
    char model[256];
    cpu_model(model, sizeof model);
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    item(OK, "cores", NULL, "%ld online: %s", online, model);
    const char *omp = getenv("OMP_NUM_THREADS"), *ob = getenv("OPENBLAS_NUM_THREADS");
    item(OK, "threads", NULL, "OpenMP %d, BLAS %d (OMP_NUM_THREADS=%s, OPENBLAS_NUM_THREADS=%s; "
                              "run.threads overrides)",
         omp_get_max_threads(), openblas_get_num_threads(), omp ? omp : "unset", ob ? ob : "unset");
}

static void check_gpu(void) {
    printf("GPU\n");
    char drv[512];
    read_first_line("/proc/driver/nvidia/version", drv, sizeof drv);
    char *v = strstr(drv, "Kernel Module");
    char driver[128] = "";
    if (v) {
        v += 13;
        while (*v == ' ') v++;
        snprintf(driver, sizeof driver, "%.*s", (int)strcspn(v, " "), v);
    }
#ifdef LAIC_CUDA
    const int n = ops_cuda_device_count();
    if (n > 0) {
        char buf[4096];
        ops_cuda_describe(buf, sizeof buf);
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
            item(OK, "CUDA device", NULL, "%s", line);
        item(OK, "driver", NULL, "%s", driver[0] ? driver : "(version not readable)");
    } else {
        item(INFO, "CUDA device", NULL, "none answers%s%s: runs use the CPU", driver[0] ? "; driver " : "",
             driver);
    }
#else
    if (driver[0])
        item(INFO, "CUDA device", "make clean && make CUDA=1   (needs nvcc, the CUDA toolkit)",
             "NVIDIA driver %s is loaded, but this laic was built without CUDA", driver);
    else
        item(INFO, "CUDA device", NULL, "none (no NVIDIA driver loaded): runs use the CPU");
#endif
}

static void check_inputs(const Config *c, const char *cfg_path) {
    printf("data and models (for %s)\n", cfg_path);
    char fix[1024];
    // weights
    const char *wp = config_str(c, "model", "weights");
    const int need_text = !config_str(c, "nouns", "features")[0];
    const int need_images = !config_str(c, "data", "image_features")[0];
    struct stat st;
    const char *use = wp[0] ? wp : !stat(DEFAULT_WEIGHTS, &st) ? DEFAULT_WEIGHTS : NULL;
    snprintf(fix, sizeof fix, "python3 scripts/convert_weights.py --from openai ViT-B-32.pt %s",
             wp[0] ? wp : DEFAULT_WEIGHTS);
    if (use) {
        ClipWeights w;
        if (clip_weights_load(&w, use)) {
            item(MISSING_NEEDED, "weights", fix, "%s", laic_last_error());
        } else {
            item(OK, "weights", NULL, "%s: %zu M parameters, %s, sha256 %.16s…, %s", use, w.n_params / 1000000,
                 w.storage_dtype, w.sha256,
                 w.official_vit_b_32 ? "OpenAI's official ViT-B/32 (converted)" : "not OpenAI's official ViT-B/32 file");
            clip_weights_free(&w);
        }
    } else {
        item(MISSING_OPTIONAL, "weights", fix,
             "%s not found: runs fall back to RANDOM '%s' weights and their numbers are meaningless",
             DEFAULT_WEIGHTS, config_str(c, "model", "arch"));
    }
    // vocabulary (tokenizer: noun prompts, zero-shot, training)
    const char *vp = tokenizer_default_vocab_path();
    if (!vp) {
        item(need_text ? MISSING_NEEDED : MISSING_OPTIONAL, "vocabulary", "bash scripts/setup.sh   (fetches it from the open-clip-torch wheel)",
             "bpe_simple_vocab_16e6.txt.gz not found (./assets, <laic>/../assets, ../shared/assets, $LAIC_VOCAB)");
    } else {
        char hex[65] = "";
        if (sha256_file_hex(vp, hex)) snprintf(hex, sizeof hex, "unreadable");
        if (!strcmp(hex, VOCAB_SHA256)) item(OK, "vocabulary", NULL, "%s (sha256 ok)", vp);
        else
            item(need_text ? MISSING_NEEDED : MISSING_OPTIONAL, "vocabulary",
                 "rm -f assets/bpe_simple_vocab_16e6.txt.gz && bash scripts/setup.sh",
                 "%s: sha256 %.16s… is not the CLIP vocabulary's", vp, hex);
    }
    // WordNet
    const char *wn = config_str(c, "nouns", "wordnet");
    if (!need_text) {
        item(INFO, "WordNet", NULL, "not needed: nouns.features = %s", config_str(c, "nouns", "features"));
    } else if (stat(wn, &st) || !S_ISREG(st.st_mode) || access(wn, R_OK)) {
        item(MISSING_NEEDED, "WordNet", !strcmp(wn, "/usr/share/wordnet/data.noun") ? "apt-get install wordnet-base" : "set nouns.wordnet to WordNet 3.0's data.noun",
             "%s: not a readable file", wn);
    } else {
        item(OK, "WordNet", NULL, "%s (%.1f MB)", wn, (double)st.st_size / 1e6);
    }
    // dataset
    if (!need_images) {
        const char *xp = config_str(c, "data", "image_features");
        if (stat(xp, &st)) item(MISSING_NEEDED, "dataset", "set data.image_features to an existing .npy", "%s: %s", xp, strerror(errno));
        else item(OK, "dataset", NULL, "precomputed features %s", xp);
    } else {
        const char *path = config_str(c, "data", "path"), *kind = config_str(c, "data", "kind");
        const int demo = strstr(path, "/usr/share/datasets/fashion-mnist") != NULL;
        Dataset d;
        if (!path[0]) {
            item(MISSING_NEEDED, "dataset", "set data.path in the config or as data.path=DIR", "data.path is empty");
        } else if (dataset_open(&d, kind, path, config_str(c, "data", "fit_split"))) {
            item(MISSING_NEEDED, "dataset", demo ? "apt-get install dataset-fashion-mnist" : "set data.path to the dataset (laic dataset-info --data PATH checks it)",
                 "%s", laic_last_error());
        } else {
            item(OK, "dataset", NULL, "%s %s: %zu %s images, %d classes", dataset_kind_name(d.kind), d.root, d.n,
                 d.split, d.n_classes);
            dataset_free(&d);
        }
    }
}

static void check_tools(void) {
    printf("optional tools\n");
    char p[4096];
    const char *browsers[] = {"chromium", "chromium-browser", "google-chrome"};
    int found = 0;
    for (int i = 0; i < 3 && !found; i++) found = in_path(browsers[i], p, sizeof p);
    if (found) item(OK, "chromium", NULL, "%s (the report test renders report.html with it)", p);
    else item(MISSING_OPTIONAL, "chromium", "apt-get install chromium", "not found: the report browser test is skipped");
    if (!in_path("python3", p, sizeof p))
        item(MISSING_OPTIONAL, "python3", "apt-get install python3", "not found: scripts/ and sweep --plot need it");
    else if (system("python3 -c 'import matplotlib' >/dev/null 2>&1") != 0)
        item(MISSING_OPTIONAL, "matplotlib", "pip install matplotlib", "not importable: laic sweep --plot needs it (sweep.html does not)");
    else
        item(OK, "matplotlib", NULL, "python3 + matplotlib (laic sweep --plot)");
}

static void check_machine(const Config *c) {
    printf("machine\n");
    const char *cache = config_str(c, "run", "cache_dir");
    struct statvfs vs;
    const char *where = !statvfs(cache, &vs) ? cache : !statvfs(".", &vs) ? "." : NULL;
    if (!where) {
        item(MISSING_NEEDED, "disk", NULL, "cannot stat %s or .: %s", cache, strerror(errno));
    } else {
        const double gib = (double)vs.f_bavail * (double)vs.f_frsize / (1024.0 * 1024 * 1024);
        // the demo's noun feature cache is ~300 MB with ViT-B/32 (146,347 x 512 floats)
        item(gib < 0.5 ? MISSING_NEEDED : gib < 2 ? MISSING_OPTIONAL : OK, "disk",
             gib < 2 ? "free some space, or set run.cache_dir / run.dir on a larger disk" : NULL,
             "%.1f GiB free in %s (run.cache_dir feature caches, run directories)", gib,
             !strcmp(where, ".") ? "the current directory" : where);
    }
    const double avail = meminfo_gib("MemAvailable"), total = meminfo_gib("MemTotal");
    if (avail < 0) item(INFO, "memory", NULL, "/proc/meminfo not readable");
    else
        item(avail < 2 ? MISSING_OPTIONAL : OK, "memory", avail < 2 ? "close other programs, or set nouns.subset and data.subsample" : NULL,
             "%.1f GiB available of %.1f GiB", avail, total);
}

int cmd_doctor(int argc, char **argv) {
    CliOpt opts[] = {
        {"--config", "CONFIG", NULL, "the job to check for (default: configs/demo.ini, the README's main command)", NULL, 0},
    };
    const char *pos[256];
    int npos = 0;
    if (cli_parse(argc, argv, "doctor",
                  "Check this machine for what laic needs: laic doctor [--config CONFIG] [section.key=value ...]\n"
                  "Prints one screen; each missing piece comes with the command that fixes it.\n"
                  "Exit status 1 when something the job needs is missing (✗), 0 otherwise.",
                  opts, CLI_N(opts), pos, 256, &npos))
        return cli_exit_code();
    char cfg_path[4200];
    const char *given = cli_get(opts, CLI_N(opts), "--config");
    int have_cfg = 1;
    if (given) snprintf(cfg_path, sizeof cfg_path, "%s", given);
    else have_cfg = find_demo_config(cfg_path, sizeof cfg_path) == 0;
    Config c;
    config_init(&c, laic_config_keys, laic_config_nkeys);
    if (have_cfg && config_load_ini(&c, cfg_path)) {
        config_free(&c);
        return cli_fail(2);
    }
    for (int i = 0; i < npos; i++)
        if (config_override(&c, pos[i])) {
            config_free(&c);
            return cli_fail(2);
        }
    g_needed_missing = g_optional_missing = 0;
    printf("laic doctor — what this machine has for laic\n");
    check_build();
    check_cpu();
    check_gpu();
    if (!have_cfg) {
        printf("data and models\n");
        item(MISSING_NEEDED, "config", "run laic doctor from the repository root, or pass --config CONFIG",
             "%s not found", DEMO_CONFIG);
    } else {
        check_inputs(&c, cfg_path);
    }
    check_tools();
    check_machine(&c);
    config_free(&c);
    const char *job = given ? cfg_path : DEMO_CONFIG;
    if (g_needed_missing)
        printf("NOT READY: %d piece%s that `laic run %s` needs %s missing (✗ above, with the fix).\n",
               g_needed_missing, g_needed_missing == 1 ? "" : "s", job, g_needed_missing == 1 ? "is" : "are");
    else
        printf("ready: `laic run %s` has what it needs%s.\n", job,
               g_optional_missing ? " (– marks optional pieces that are missing)" : "");
    return g_needed_missing ? 1 : 0;
}
