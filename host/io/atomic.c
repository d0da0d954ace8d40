/* atomic.c — see atomic.h. */
#include "io/atomic.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "io/err.h"

int atomic_open(AtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path) return laic_error("%s: path too long", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->fp = fopen(af->tmp, "wb");
    if (!af->fp) return laic_error("%s: cannot open for writing: %s", path, strerror(errno));
    return 0;
}

int atomic_commit(AtomicFile *af) {
    if (!af->fp) return laic_error("%s: internal: commit without open file", af->path);
    int bad = ferror(af->fp);
    int saved = errno;
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
    return 0;
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
