/*
 * test_bench_scripts.c — the GPU session script's logic, checked here so that device time is
 * never spent on a shell error (issue 12): every shell script in bench/ parses (bash -n), and the quick and
 * deep plans of bench/gpu_session.sh print their steps with planned seconds and a total within
 * the budget (--dry-run), while a budget smaller than the plan is refused. The steps themselves
 * were run end to end on the CPU with DEVICE=cpu (README, "On a GPU machine").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test.h"

// Runs a shell command, stdout+stderr into buf; returns the exit status.
static int sh(const char *cmd, char *buf, size_t n) {
    char full[1024];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t got = fread(buf, 1, n - 1, p);
    buf[got] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(bench_scripts_parse) {
    char out[8192];
    int st = sh("for f in bench/*.sh; do bash -n \"$f\" || echo \"BAD $f\"; done", out, sizeof out);
    CHECK(st == 0 && !strstr(out, "BAD"), "bash -n bench/*.sh: %s", out);
}

static void check_plan(const char *plan) {
    char cmd[256], out[8192];
    snprintf(cmd, sizeof cmd, "bash bench/gpu_session.sh --dry-run %s", plan);
    int st = sh(cmd, out, sizeof out);
    CHECK(st == 0, "%s: exit %d: %s", cmd, st, out);
    const char *t = strstr(out, "  total");
    long total = -1, budget = -1;
    const char *b = t ? strstr(t, "budget ") : NULL;
    if (t) total = strtol(t + 7, NULL, 10);
    if (b) budget = strtol(b + 7, NULL, 10);
    CHECK(total > 0 && budget > 0 && total <= budget, "%s: planned %ld s within the budget %ld s",
          plan, total, budget);
    CHECK(budget <= 540, "%s: budget %ld s is under 9 minutes", plan, budget);
    CHECK(strstr(out, "build") && strstr(out, "timeout"), "%s: every step listed: %s", plan, out);
    snprintf(cmd, sizeof cmd, "BUDGET=100 bash bench/gpu_session.sh --dry-run %s", plan);
    st = sh(cmd, out, sizeof out);
    CHECK(st != 0 && strstr(out, "OVER BUDGET"), "%s: a plan over its budget is refused (exit %d)",
          cmd, st);
}

TEST(bench_gpu_session_plans_fit_their_budget) {
    check_plan("quick");
    check_plan("deep");
    char out[4096];
    int st = sh("bash bench/gpu_session.sh --dry-run sideways", out, sizeof out);
    CHECK(st == 2 && strstr(out, "unknown stage"), "unknown stage refused: %d %s", st, out);
}
