/*
 * fuzz_cache.c — the run's verified cache entries (host/run/run.c run_cache_load): the checksum
 * sidecar "<entry>.npy.sum" (magic, key, dtype, shape, content hash) and the .npy entry it
 * vouches for, as every cached stage reads them (image/noun features, keep indices,
 * candidates, clip-kmeans, tac). An entry either loads (and then its array is what the sidecar
 * describes) or is rejected with one warning and removed; never anything else.
 * Input: the sidecar text, the separator "\xfe\xedPT", then the .npy bytes (no separator: no
 * .npy file). The key asked for is "fuzz-key".
 */
#include "io/err.h"
#include "io/npy.h"
#include "run/run.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2];
    size_t len[2];
    int np = fuzz_split(data, size, part, len, 2);
    const char *npy = fuzz_file(0, "entry.npy", np == 2 ? part[1] : (const uint8_t *)"", np == 2 ? len[1] : 0);
    if (np < 2) unlink(npy);
    (void)fuzz_file(1, "entry.npy.sum", part[0], len[0]);
    static Run r;   // run_log appends to r.log: emptied after every input
    Npy a;
    if (run_cache_load(&r, "fuzz", npy, "fuzz-key", &a) == 1) {
        if (!a.data && a.count) abort();
        npy_free(&a);
    }
    free(r.log);
    r.log = NULL;
    r.log_len = r.log_cap = 0;
    return 0;
}
