/*
 * cmd_sweep.c — `laic sweep CONFIG [SWEEP.ini] [sweep.section.key=values ...] [section.key=value ...]`:
 * runs the no-train pipeline over a grid or list of config values (sweep.h) and writes
 * sweep.csv / sweep_summary.csv / sweep.json and sweep.html (metrics vs swept value drawn as SVG
 * by laic, every point linked to its report.html); --plot then draws PNGs with scripts/plot.py
 * and embeds them in sweep.html.
 * Everything is validated before anything runs: a bad key or value is one error line naming
 * SWEEP.ini:line (or the argument), exit 2, and no sweep directory.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "comm.h"
#include "io/err.h"
#include "run/report_html.h"
#include "run/sweep.h"

/* scripts/plot.py: $LAIC_PLOT_SCRIPT, else ./scripts/plot.py, else next to the binary's repo. */
static int find_plot_script(char *out, size_t n) {
    const char *env = getenv("LAIC_PLOT_SCRIPT");
    struct stat st;
    if (env && env[0]) {
        snprintf(out, n, "%s", env);
        return stat(out, &st) ? laic_error("%s: plot script not found (LAIC_PLOT_SCRIPT)", out) : 0;
    }
    snprintf(out, n, "scripts/plot.py");
    if (!stat(out, &st)) return 0;
    char exe[2048];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *d = dirname(exe);   // <repo>/build-x/laic → <repo>/scripts/plot.py
        snprintf(out, n, "%s/../scripts/plot.py", d);
        if (!stat(out, &st)) return 0;
    }
    return laic_error("scripts/plot.py: not found ---> HINT: run from the repository root or set "
                      "LAIC_PLOT_SCRIPT");
}

static int check_python(void) {
    if (system("python3 -c 'import matplotlib' >/dev/null 2>&1") != 0)
        return laic_error("--plot: python3 with matplotlib is needed ---> HINT: pip install "
                          "matplotlib, or run without --plot and plot sweep.csv later");
    return 0;
}

int cmd_sweep(int argc, char **argv) {
    CliOpt opts[] = {
        {"--dir", "DIR", NULL, "sweep directory (default runs/<name>-sweep-<UTC time>)", NULL, 0},
        {"--jobs", "N", "1", "points run as N parallel `laic run` processes (CPU; the first runs alone)", NULL, 0},
        {"--plot", NULL, NULL, "draw PNGs with scripts/plot.py (python3 + matplotlib) at the end", NULL, 0},
        {"--dry-run", NULL, NULL, "validate and list the points, run nothing", NULL, 0},
    };
    const char *pos[512];
    int npos = 0;
    if (cli_parse(argc, argv, "sweep",
                  "Run the pipeline over a grid of config values:\n"
                  "  laic sweep CONFIG.ini [SWEEP.ini] [sweep.section.key=v1,v2 ...] [section.key=value ...]\n"
                  "SWEEP.ini: [sweep] holds axes (ridge.lambda = 0.1,1,5 | train.loss = gce|gce,mse | "
                  "run.seed = 1..5),\n  mode = grid|zip and name; other sections override every point. "
                  "Writes sweep.csv, sweep_summary.csv\n  (mean ± std over run.seed), sweep.json, sweep.html "
                  "and one run directory per point; stage caches are shared.",
                  opts, CLI_N(opts), pos, 512, &npos))
        return cli_exit_code();
    if (npos < 1) {
        laic_error("sweep: missing CONFIG ---> HINT: laic sweep configs/demo.ini configs/sweeps/lambda-cifar10.ini");
        return cli_fail(2);
    }
    SweepSpec s;
    sweep_spec_init(&s);
    SweepOpts o = {0};
    o.config = pos[0];
    char **over = calloc((size_t)npos, sizeof *over);
    int rc = 0;
    for (int i = 1; i < npos && !rc; i++) {
        const char *a = pos[i];
        if (!strncmp(a, "sweep.", 6)) rc = sweep_spec_arg(&s, a);
        else if (strchr(a, '=')) over[o.nover++] = (char *)a;
        else if (i == 1) rc = sweep_spec_load(&s, a);
        else rc = laic_error("sweep: '%s' is not a sweep.section.key=values axis or a section.key=value override", a);
    }
    o.over = over;
    long jobs = 1;
    if (!rc) rc = cli_get_long(opts, CLI_N(opts), "--jobs", &jobs);
    if (!rc && (jobs < 1 || jobs > 256)) rc = laic_error("--jobs: %ld is out of range [1, 256]", jobs);
    o.jobs = (int)jobs;
    o.dir = cli_get(opts, CLI_N(opts), "--dir");
    const int plot = cli_flag(opts, CLI_N(opts), "--plot");
    char script[2300] = "";
    if (!rc) rc = sweep_validate(&s, &o);
    if (!rc && plot) rc = find_plot_script(script, sizeof script) || check_python();
    if (rc) {
        free(over);
        sweep_spec_free(&s);
        return cli_fail(2);
    }
    if (cli_flag(opts, CLI_N(opts), "--dry-run") && comm_world_rank() > 0) {   // one plan, from rank 0
        free(over);
        sweep_spec_free(&s);
        return 0;
    }
    if (cli_flag(opts, CLI_N(opts), "--dry-run")) {
        size_t np = sweep_npoints(&s);
        int idx[256];
        printf("; %zu points (%s)\n", np, s.zip ? "zip" : "grid");
        for (size_t p = 0; p < np && s.naxes <= 256; p++) {
            sweep_point(&s, p, idx);
            printf("%zu", p);
            for (int i = 0; i < s.naxes; i++)
                printf(" %s.%s=%s", s.axes[i].section, s.axes[i].key, s.axes[i].values[idx[i]]);
            printf("\n");
        }
        free(over);
        sweep_spec_free(&s);
        return 0;
    }
    char dir[2048] = "";
    rc = sweep_run(&s, &o, dir, sizeof dir);
    free(over);
    sweep_spec_free(&s);
    if (rc < 0) return cli_fail(1);
    if (plot && comm_world_rank() == 0) {   // rank 0 wrote the tables; the others are done
        char cmd[4800];
        snprintf(cmd, sizeof cmd, "python3 '%s' '%s'", script, dir);
        fprintf(stderr, "laic: %s\n", cmd);
        if (system(cmd) != 0) {
            laic_error("%s: plotting failed (sweep results are in place) ---> HINT: run the command above", dir);
            return cli_fail(1);
        }
        // sweep.html again, now with the PNGs embedded
        if (report_sweep_html_write(dir, NULL, NULL))
            fprintf(stderr, "laic: warning: sweep.html not rewritten: %s\n", laic_last_error());
    }
    if (rc > 0) return cli_fail(1);
    return 0;
}
