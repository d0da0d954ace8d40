/* cmd_run.c — `laic run CONFIG [section.key=value ...]`: the no-train pipeline (run.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "run/config.h"
#include "io/err.h"
#include "run/pipeline.h"

int cmd_run(int argc, char **argv) {
    CliOpt opts[] = {
        {"--dry-run", NULL, NULL, "print the resolved config and the plan, compute nothing", NULL, 0},
        {"--help-config", NULL, NULL, "list every config key with its default, range and source", NULL, 0},
    };
    const char *pos[256];
    int npos = 0;
    if (cli_parse(argc, argv, "run",
                  "Run the no-train pipeline from an INI config: laic run CONFIG.ini [section.key=value ...]\n"
                  "Writes runs/<name>-<UTC time>/ (config.ini, report.json, assignments.npy, clusters.tsv, log.txt).",
                  opts, CLI_N(opts), pos, 256, &npos))
        return cli_exit_code();
    if (cli_flag(opts, CLI_N(opts), "--help-config")) {
        config_help(laic_config_keys, laic_config_nkeys, stdout);
        return 0;
    }
    if (npos < 1) {
        laic_error("run: missing CONFIG ---> HINT: laic run configs/demo.ini");
        return cli_fail(2);
    }
    const char *config = pos[0];
    char *over[256];
    for (int i = 1; i < npos; i++) {
        if (!strchr(pos[i], '=')) {
            laic_error("run: '%s' is not a section.key=value override", pos[i]);
            return cli_fail(2);
        }
        over[i - 1] = (char *)pos[i];
    }
    Run r;
    int rc = run_init(&r, config, npos - 1, over, cli_flag(opts, CLI_N(opts), "--dry-run"));
    if (!rc) rc = run_execute(&r);
    if (rc) fprintf(stderr, "%s%s\n", cli_err_prefix(), laic_last_error());
    run_free(&r);
    return rc ? 1 : 0;
}
