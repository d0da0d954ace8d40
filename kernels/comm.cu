/*
 * comm.cu — the CUDA backend's communicator entries (host/ops.h comm_rank … barrier) on device
 * memory: NCCL when built with it (LAIC_NCCL, the Makefile's ✓ NCCL), else a copy through host
 * memory and the MPI collectives of host/comm.c.
 *
 * NCCL: one communicator for the world, created at the first collective with more than one
 * rank: rank 0 draws the ncclUniqueId, MPI broadcasts it (comm_broadcast_host), every rank
 * calls ncclCommInitRank on its own device (ops_get picked device local_rank: one rank, one
 * GPU). Collectives run on the calling thread's default stream (cudaStreamPerThread) like every
 * other op, so they are ordered with the kernels around them; allreduce of COMM_I64 is exact,
 * of floats in NCCL's ring order (the same bits on every rank). allgather with equal segments
 * is ncclAllGather in place; with unequal ones, one ncclBroadcast per rank in a group. barrier
 * synchronises this rank's stream and then the ranks (MPI). Errors are fatal ("laic: fatal:
 * NCCL ..."): the rank exits and the launcher ends the job.
 *
 * With comm_set_local(1) (or one rank) every entry returns at once, as on the CPU.
 *
 * Status: compiled and linked for sm_90; unverified on hardware (no GPU, no NCCL run here).
 * tests/gpu/test_comm_gpu.c checks a 1-rank NCCL run equals a run without it.
 */
#include "common.cuh"

extern "C" {
#include "comm.h"
}

#ifdef LAIC_NCCL
#include <nccl.h>

static void nccl_check_impl(ncclResult_t r, const char *stmt, const char *file, int line) {
    if (r != ncclSuccess) {
        fprintf(stderr, "laic: fatal: NCCL error %s in `%s` at %s:%d (rank %d of %d)\n",
                ncclGetErrorString(r), stmt, file, line, comm_world_rank(), comm_world_size());
        exit(1);
    }
}
#define ncclCheck(x) nccl_check_impl((x), #x, __FILE__, __LINE__)

static ncclComm_t nccl_world(void) {
    static ncclComm_t comm;
    static int up;
    if (!up) {
        ncclUniqueId id;
        if (comm_rank() == 0) ncclCheck(ncclGetUniqueId(&id));
        comm_broadcast_host(&id, sizeof id, 0);
        ncclCheck(ncclCommInitRank(&comm, comm_size(), id, comm_rank()));
        up = 1;
    }
    return comm;
}

static ncclDataType_t nccl_type(int type, size_t *es) {
    switch (type) {
    case COMM_F32: *es = 4; return ncclFloat32;
    case COMM_F64: *es = 8; return ncclFloat64;
    default: *es = 8; return ncclInt64;
    }
}
#endif

extern "C" int comm_rank_cuda(void) { return comm_rank(); }
extern "C" int comm_size_cuda(void) { return comm_size(); }

// One rank and not forced (comm_set_forced): nothing to do. Forced with one rank, NCCL runs a
// one-rank communicator (the unique id needs no MPI then), so its calls are exercised.
static int nothing_to_do(void) { return comm_size() == 1 && !comm_forced(); }

extern "C" void comm_allreduce_sum_cuda(void *buf, size_t n, int type) {
    if (nothing_to_do() || n == 0) return;
#ifdef LAIC_NCCL
    size_t es;
    ncclDataType_t t = nccl_type(type, &es);
    ncclCheck(ncclAllReduce(buf, buf, n, t, ncclSum, nccl_world(), cudaStreamPerThread));
#else
    const size_t es = type == COMM_F32 ? 4 : 8;
    void *h = malloc(n * es);
    cudaAssert(h != NULL, "comm_allreduce_sum_cuda: host staging buffer");
    cudaCheck(cudaMemcpy(h, buf, n * es, cudaMemcpyDeviceToHost));
    comm_allreduce_sum_host(h, n, type);
    cudaCheck(cudaMemcpy(buf, h, n * es, cudaMemcpyHostToDevice));
    free(h);
#endif
}

extern "C" void comm_allgather_cuda(void *buf, const size_t *counts) {
    const int P = comm_size();
    if (nothing_to_do()) return;
    size_t total = 0, off = 0;
    int equal = 1;
    for (int r = 0; r < P; r++) {
        total += counts[r];
        equal &= counts[r] == counts[0];
        if (r < comm_rank()) off += counts[r];
    }
    if (total == 0) return;
#ifdef LAIC_NCCL
    char *b = (char *)buf;
    if (equal) {
        ncclCheck(ncclAllGather(b + off, b, counts[0], ncclChar, nccl_world(), cudaStreamPerThread));
    } else {
        ncclCheck(ncclGroupStart());
        size_t o = 0;
        for (int r = 0; r < P; r++) {
            if (counts[r])
                ncclCheck(ncclBroadcast(b + o, b + o, counts[r], ncclChar, r, nccl_world(),
                                        cudaStreamPerThread));
            o += counts[r];
        }
        ncclCheck(ncclGroupEnd());
    }
#else
    (void)equal;
    (void)off;
    void *h = malloc(total);
    cudaAssert(h != NULL, "comm_allgather_cuda: host staging buffer");
    cudaCheck(cudaMemcpy(h, buf, total, cudaMemcpyDeviceToHost));
    comm_allgather_host(h, counts);
    cudaCheck(cudaMemcpy(buf, h, total, cudaMemcpyHostToDevice));
    free(h);
#endif
}

extern "C" void comm_broadcast_cuda(void *buf, size_t bytes, int root) {
    if (nothing_to_do() || bytes == 0) return;
#ifdef LAIC_NCCL
    ncclCheck(ncclBroadcast(buf, buf, bytes, ncclChar, root, nccl_world(), cudaStreamPerThread));
#else
    void *h = malloc(bytes);
    cudaAssert(h != NULL, "comm_broadcast_cuda: host staging buffer");
    cudaCheck(cudaMemcpy(h, buf, bytes, cudaMemcpyDeviceToHost));
    comm_broadcast_host(h, bytes, root);
    cudaCheck(cudaMemcpy(buf, h, bytes, cudaMemcpyHostToDevice));
    free(h);
#endif
}

extern "C" void comm_barrier_cuda(void) {
    if (nothing_to_do()) return;
    cudaCheck(cudaStreamSynchronize(cudaStreamPerThread));
    comm_barrier_host();
}

extern "C" int comm_nccl_built(void) {
#ifdef LAIC_NCCL
    return 1;
#else
    return 0;
#endif
}
