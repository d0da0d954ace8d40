/*
 * comm.c — the job's process group (comm.h): MPI when built with it (LAIC_MPI, the Makefile's
 * ✓ MPI) and started by a launcher; otherwise one rank and no-op collectives.
 *
 * Large buffers: MPI counts are int, so broadcasts and reductions go in chunks of at most 1 GiB
 * and an allgather whose segments or offsets would not fit an int becomes one chunked
 * broadcast per rank.
 */
#include "comm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef LAIC_MPI
#include <mpi.h>
#endif

#include "io/err.h"

static int g_rank = 0, g_size = 1, g_local = 0;   // the world
static int g_local_mode = 0;                        // comm_set_local
static int g_forced = 0;                            // comm_set_forced
#ifdef LAIC_MPI
static int g_mpi_up = 0;                            // comm_init called MPI_Init
#endif
static char g_library[256] = "none";

// Launch environment: the world size a launcher announces (0 when none does).
static long launcher_size(const char **var) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            *var = vars[i];
            return strtol(v, NULL, 10);
        }
    }
    if (getenv("PMIX_RANK")) {   // PMIx without a size variable: a launcher all the same
        *var = "PMIX_RANK";
        return 2;
    }
    return 0;
}

int comm_init(int *argc, char ***argv) {
    const char *force = getenv("LAIC_COMM_FORCE");
    if (force && !strcmp(force, "1")) g_forced = 1;
    const char *var = NULL;
    const long n = launcher_size(&var);
    const char *st = getenv("SLURM_STEP_NUM_TASKS");
    if (n == 0 && st && strtol(st, NULL, 10) > 1)
        return laic_error("srun started %s tasks, but without an MPI process manager each would run "
                          "alone ---> HINT: srun --mpi=pmix (or --mpi=pmi2) ./build/laic ...", st);
#ifdef LAIC_MPI
    if (n > 0) {
        int provided = 0;
        // OpenMP threads never call MPI; only the main thread does (FUNNELED)
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return laic_error("MPI_Init failed (%s=%ld)", var, n);
        g_mpi_up = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_size);
        MPI_Comm node;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node);
        MPI_Comm_rank(node, &g_local);
        MPI_Comm_free(&node);
        char v[MPI_MAX_LIBRARY_VERSION_STRING];
        int len = 0;
        MPI_Get_library_version(v, &len);
        v[strcspn(v, ",\n")] = 0;
        snprintf(g_library, sizeof g_library, "%s", v);
    }
    return 0;
#else
    (void)argc;
    (void)argv;
    if (n > 1)
        return laic_error("this laic was built without MPI, but the launcher started it as one of "
                          "%ld ranks (%s) ---> HINT: install libopenmpi-dev openmpi-bin and "
                          "rebuild (make prints '✓ MPI')", n, var);
    return 0;
#endif
}

void comm_finalize(void) {
#ifdef LAIC_MPI
    if (g_mpi_up) {
        MPI_Finalize();
        g_mpi_up = 0;
    }
#endif
}

__attribute__((noreturn)) void comm_abort(int code) {
    fflush(stdout);
    fflush(stderr);
#ifdef LAIC_MPI
    if (g_mpi_up && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    if (g_mpi_up) MPI_Finalize();
#endif
    exit(code);
}

int comm_world_rank(void) { return g_rank; }
int comm_world_size(void) { return g_size; }
int comm_local_rank(void) { return g_local; }
const char *comm_library(void) { return g_library; }
int comm_have_mpi(void) {
#ifdef LAIC_MPI
    return 1;
#else
    return 0;
#endif
}

int comm_set_local(int on) {
    int prev = g_local_mode;
    g_local_mode = on != 0;
    return prev;
}

int comm_rank(void) { return g_local_mode ? 0 : g_rank; }
int comm_size(void) { return g_local_mode ? 1 : g_size; }
int comm_set_forced(int on) {
    int prev = g_forced;
    g_forced = on != 0;
    return prev;
}
int comm_forced(void) { return g_forced; }
int comm_distributed(void) { return comm_size() > 1 || g_forced; }

void comm_shard(size_t n, size_t align, int rank, int size, size_t *lo, size_t *hi) {
    if (align < 1) align = 1;
    if (size < 1) size = 1;
    const size_t nb = (n + align - 1) / align;
    const size_t b0 = nb * (size_t)rank / (size_t)size, b1 = nb * (size_t)(rank + 1) / (size_t)size;
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

#ifdef LAIC_MPI
#define CHUNK ((size_t)1 << 30)   // bytes per MPI call: counts are int

static MPI_Datatype mpi_type(int type, size_t *size) {
    switch (type) {
    case COMM_F32: *size = 4; return MPI_FLOAT;
    case COMM_F64: *size = 8; return MPI_DOUBLE;
    default: *size = 8; return MPI_INT64_T;
    }
}
#endif

void comm_allreduce_sum_host(void *buf, size_t n, int type) {
    if (comm_size() == 1 || n == 0) return;
#ifdef LAIC_MPI
    size_t es;
    MPI_Datatype t = mpi_type(type, &es);
    for (size_t i = 0; i < n; i += CHUNK / es) {
        size_t m = n - i < CHUNK / es ? n - i : CHUNK / es;
        MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * es, (int)m, t, MPI_SUM, MPI_COMM_WORLD);
    }
#else
    (void)buf;
    (void)type;
#endif
}

void comm_broadcast_host(void *buf, size_t bytes, int root) {
    if (comm_size() == 1 || bytes == 0) return;
#ifdef LAIC_MPI
    for (size_t i = 0; i < bytes; i += CHUNK) {
        size_t m = bytes - i < CHUNK ? bytes - i : CHUNK;
        MPI_Bcast((char *)buf + i, (int)m, MPI_BYTE, root, MPI_COMM_WORLD);
    }
#else
    (void)buf;
    (void)root;
#endif
}

void comm_allgather_host(void *buf, const size_t *counts) {
    const int P = comm_size();
    if (P == 1) return;
#ifdef LAIC_MPI
    int *ic = malloc(sizeof(int) * (size_t)P), *id = malloc(sizeof(int) * (size_t)P);
    size_t off = 0;
    int fits = ic && id;
    for (int r = 0; r < P && fits; r++) {
        fits = counts[r] < CHUNK && off < (size_t)INT_MAX;
        ic[r] = (int)counts[r];
        id[r] = (int)off;
        off += counts[r];
    }
    fits = fits && off <= (size_t)INT_MAX;
    if (fits) {
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, ic, id, MPI_BYTE, MPI_COMM_WORLD);
    } else {   // segments too large for int counts: each rank broadcasts its own, in chunks
        off = 0;
        for (int r = 0; r < P; r++) {
            comm_broadcast_host((char *)buf + off, counts[r], r);
            off += counts[r];
        }
    }
    free(ic);
    free(id);
#else
    (void)buf;
    (void)counts;
#endif
}

void comm_barrier_host(void) {
    if (comm_size() == 1) return;
#ifdef LAIC_MPI
    MPI_Barrier(MPI_COMM_WORLD);
#endif
}
