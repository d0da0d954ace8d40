/* atomic.c — see atomic.h. */
#include "io/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "io/err.h"

int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return laic_error("%s: cannot open directory to sync it: %s", dir, strerror(errno));
    int rc = 0;
    // EINVAL: a file system that cannot sync directories (nothing more to do there)
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = laic_error("%s: cannot sync directory: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

int fsync_parent(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) return fsync_dir(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);   // "/x" -> "/"
    if (n >= sizeof dir) return laic_error("%s: path too long", path);
    memcpy(dir, path, n);
    dir[n] = 0;
    return fsync_dir(dir);
}

int atomic_open(AtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path) return laic_error("%s: path too long", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->fp = fopen(af->tmp, "wbe");
    if (!af->fp) return laic_error("%s: cannot open for writing: %s", path, strerror(errno));
    return 0;
}

int atomic_commit(AtomicFile *af) {
    if (!af->fp) return laic_error("%s: internal: commit without open file", af->path);
    int bad = ferror(af->fp);
    int saved = errno;
    // the data reaches the disk before the rename publishes it: a crash then leaves either the
    // old file or the complete new one, never a renamed file with missing blocks
    if (!bad && (fflush(af->fp) != 0 || (fsync(fileno(af->fp)) != 0 && errno != EINVAL))) {
        bad = 1;
        saved = errno;
    }
    if (fclose(af->fp) != 0 && !bad) { bad = 1; saved = errno; }
    af->fp = NULL;
    if (bad) {
        unlink(af->tmp);
        return laic_error("%s: write failed: %s", af->path, strerror(saved));
    }
    if (rename(af->tmp, af->path) != 0) {
        saved = errno;
        unlink(af->tmp);
        return laic_error("%s: cannot rename temp file into place: %s", af->path, strerror(saved));
    }
    return fsync_parent(af->path);
}

void atomic_abort(AtomicFile *af) {
    if (af->fp) {
        fclose(af->fp);
        af->fp = NULL;
        unlink(af->tmp);
    }
}

int atomic_write_file(const char *path, const void *data, size_t n) {
    AtomicFile af;
    if (atomic_open(&af, path)) return -1;
    if (n && fwrite(data, 1, n, af.fp) != n) {
        atomic_abort(&af);
        return laic_error("%s: write failed", path);
    }
    return atomic_commit(&af);
}
