/*
 * cmd_report.c — `laic report DIR`: rebuilds report.html of a run directory, or sweep.html of a
 * sweep directory (one with sweep.json), from the directory's files (run/report_html.h). The
 * run's dataset is re-opened for the montages; when it is gone the page says so and keeps every
 * other panel.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "io/err.h"
#include "io/progress.h"
#include "run/report_html.h"

int cmd_report(int argc, char **argv) {
    CliOpt opts[] = {
        {"--out", "FILE", NULL, "write here instead of DIR/report.html (DIR/sweep.html)", NULL, 0},
    };
    const char *pos[1];
    int npos = 0;
    if (cli_parse(argc, argv, "report",
                  "Rebuild the HTML report of a run or sweep directory: laic report DIR\n"
                  "A run directory (report.json) gets report.html; a sweep directory (sweep.json) "
                  "gets sweep.html.\nOne self-contained file: images embedded, no network, no script.",
                  opts, CLI_N(opts), pos, 1, &npos))
        return cli_exit_code();
    if (npos < 1) {
        laic_error("report: missing DIR ---> HINT: laic report runs/demo-<time>");
        return cli_fail(2);
    }
    const char *dir = pos[0], *out = cli_get(opts, CLI_N(opts), "--out");
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
        laic_error("%s: not a directory ---> HINT: laic report takes a run or sweep directory", dir);
        return cli_fail(1);
    }
    char p[4200];
    snprintf(p, sizeof p, "%s/sweep.json", dir);
    const int sweep = !stat(p, &st);
    double t = now_seconds();
    ReportStats rs;
    int rc;
    if (sweep) {
        rc = report_sweep_html_write(dir, out, &rs);
    } else {
        ReportOpts o = {.dir = dir, .out = out, .stats = &rs};
        rc = report_html_write(&o);
    }
    if (rc) return cli_fail(1);
    if (!out) {
        snprintf(p, sizeof p, "%s/%s", dir, sweep ? "sweep.html" : "report.html");
        out = p;
    }
    if (sweep)
        fprintf(stderr, "laic: %s: %d points, %d charts, %zu kB in %.2fs\n", out, rs.points, rs.charts,
                rs.bytes / 1024, now_seconds() - t);
    else
        fprintf(stderr, "laic: %s: %d methods, %d cluster panels, %d montages, %zu kB in %.2fs\n", out,
                rs.methods, rs.panels, rs.montages, rs.bytes / 1024, now_seconds() - t);
    return 0;
}
