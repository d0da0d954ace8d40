/*
 * ops.c — backend selection (host/ops.h): "cpu", "cuda" or "auto".
 *
 * "auto" takes CUDA when the binary was built with it and a device answers, else the CPU
 * (ggml_backend_init_best habit); "cuda" without CUDA is an error, never a silent fallback.
 */
#include <string.h>

#include "comm.h"
#include "io/err.h"
#include "ops.h"
#ifdef LAIC_CUDA
#include "../kernels/ops_cuda.h"
#endif

#ifdef LAIC_CUDA
// One rank, one GPU: in a job of several ranks each takes the device of its rank on the node.
static const OpsBackend *cuda_for_rank(void) {
    if (comm_world_size() > 1 && ops_cuda_select_device(comm_local_rank())) return NULL;
    return &ops_cuda;
}
#endif

const OpsBackend *ops_get(const char *device) {
    if (!device || !strcmp(device, "auto")) {
#ifdef LAIC_CUDA
        if (ops_cuda_device_count() > 0) return cuda_for_rank();
#endif
        return &ops_cpu;
    }
    if (!strcmp(device, "cpu")) return &ops_cpu;
    if (!strcmp(device, "cuda")) {
#ifdef LAIC_CUDA
        if (ops_cuda_device_count() > 0) return cuda_for_rank();
        laic_error("--device cuda: no CUDA device found ---> HINT: use --device cpu or auto");
#else
        laic_error("--device cuda: this laic was built without CUDA ---> HINT: rebuild with nvcc "
                   "on PATH (make CUDA=1), or use --device cpu");
#endif
        return NULL;
    }
    laic_error("--device: unknown device '%s' ---> HINT: use cpu, cuda or auto", device);
    return NULL;
}
