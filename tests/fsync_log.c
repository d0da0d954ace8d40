/* fsync_log.c — see fsync_log.h. Defining fsync here overrides libc's for the whole test binary. */
#include "fsync_log.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static FsyncCall g_calls[FSYNC_LOG_MAX];
static int g_n, g_on;
static char g_watch[4096];

void fsync_log_start(const char *watch) {
    g_n = 0;
    snprintf(g_watch, sizeof g_watch, "%s", watch ? watch : "");
    g_on = 1;
}

const FsyncCall *fsync_log_stop(int *n) {
    g_on = 0;
    *n = g_n;
    return g_calls;
}

int fsync(int fd) {
    if (g_on && g_n < FSYNC_LOG_MAX) {
        struct stat st, w;
        if (!fstat(fd, &st)) {
            g_calls[g_n].dev = st.st_dev;
            g_calls[g_n].ino = st.st_ino;
            g_calls[g_n].is_dir = S_ISDIR(st.st_mode);
            g_calls[g_n].watched_existed = g_watch[0] && !stat(g_watch, &w);
            g_n++;
        }
    }
    return (int)syscall(SYS_fsync, fd);
}
