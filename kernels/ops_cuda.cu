/*
 * ops_cuda.cu — the CUDA backend table (`ops_cuda`, host/ops.h), its memory functions, device
 * discovery (ops_cuda_device_count, ops_cuda_describe) and the cudaEvent timer of
 * kernels/ops_cuda.h for bench/.
 *
 * Promises:
 * - alloc never aborts: when cudaMalloc fails it records one line with laic_error saying how
 *   many bytes were asked for and how many are free (cudaMemGetInfo), clears CUDA's sticky
 *   last-error, and returns NULL. Other CUDA failures (a copy to a bad pointer, a lost device)
 *   are programming or system errors and stop the program via cudaCheck.
 * - ops_cuda_device_count never fails: no driver, no device, or a driver too old all count 0.
 * - One stream: the calling thread's default stream (built with --default-stream per-thread,
 *   see the Makefile). to_device and to_host are synchronous (cudaMemcpy), so a to_host result
 *   is ready when the call returns; copy, memset0 and kernels are asynchronous and ordered on
 *   that stream, and so may be captured into a CUDA graph.
 * - graph_capture records fn's ops on that stream (thread-local capture mode) and returns an
 *   instantiated cudaGraphExec_t; alloc/free/to_device/to_host/synchronize called inside fn
 *   do nothing and make the capture fail with one error line (the stream is never left
 *   capturing, CUDA's error state is cleared), so the backend stays usable.
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include "cluster.cuh"   // includes common.cuh

// --- graph capture guard ----------------------------------------------------------------------
// While graph_capture runs its fn on this thread, the memory functions that cannot be captured
// (they allocate, free, synchronise or touch host memory) do nothing and record their name
// here; graph_capture then fails with one error line and the backend stays usable. Without
// this guard a to_host inside fn would invalidate the capture and stop the program in cudaCheck.
static thread_local int g_in_capture;
static thread_local const char *g_capture_violation;

static int capture_refuses(const char *what) {
    if (!g_in_capture) return 0;
    if (!g_capture_violation) g_capture_violation = what;
    return 1;
}

// --- memory ---------------------------------------------------------------------------------
static void *cuda_alloc(size_t bytes) {
    if (capture_refuses("alloc")) {
        laic_error("cuda: alloc inside a CUDA graph capture");
        return NULL;
    }
    void *p = NULL;
    // Zero bytes still gets a distinct pointer, so NULL means only "failed" (as ops_cpu).
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e == cudaSuccess) return p;
    (void)cudaGetLastError();   // an allocation failure must not poison the next launch check
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        (void)cudaGetLastError();
        laic_error("cuda: cannot allocate %zu bytes of device memory: %s ---> HINT: check "
                   "`laic info` and nvidia-smi",
                   bytes, cudaGetErrorString(e));
        return NULL;
    }
    laic_error("cuda: out of memory allocating %zu bytes (%.1f MiB) on the device, %zu bytes "
               "(%.1f MiB) free of %.1f MiB: %s ---> HINT: lower the batch size",
               bytes, bytes / 1048576.0, free_b, free_b / 1048576.0, total_b / 1048576.0,
               cudaGetErrorString(e));
    return NULL;
}

static void cuda_free(void *p) {
    if (capture_refuses("free")) return;   // leaked: fn broke the rule (host/ops.h)
    if (p) cudaCheck(cudaFree(p));
}

static void cuda_to_device(void *dst, const void *src_host, size_t bytes) {
    if (capture_refuses("to_device")) return;
    if (bytes) cudaCheck(cudaMemcpy(dst, src_host, bytes, cudaMemcpyHostToDevice));
}

static void cuda_to_host(void *dst_host, const void *src, size_t bytes) {
    if (capture_refuses("to_host")) return;
    if (bytes) cudaCheck(cudaMemcpy(dst_host, src, bytes, cudaMemcpyDeviceToHost));
}

// copy and memset0 stay inside the device and are ordered by the stream like any kernel, so
// they are asynchronous (and can be captured into a CUDA graph); to_device/to_host are not.
static void cuda_copy(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src)
        cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cudaStreamPerThread));
}

static void cuda_memset0(void *p, size_t bytes) {
    if (bytes) cudaCheck(cudaMemsetAsync(p, 0, bytes, cudaStreamPerThread));
}

static void cuda_synchronize(void) {
    if (capture_refuses("synchronize")) return;
    cudaCheck(cudaDeviceSynchronize());
}

// --- CUDA graphs ------------------------------------------------------------------------------
// Capture on the per-thread default stream every op uses, in thread-local mode (only this
// thread's unsafe calls break it). On any failure: end the capture if it is still open, drop
// what was captured, clear the error state, record one line, return NULL.
static void *cuda_graph_capture(void (*fn)(void *ctx), void *ctx) {
    if (g_in_capture || stream_is_capturing()) {
        laic_error("cuda graph: capture failed: a capture is already in progress on this thread");
        return NULL;
    }
    cudaError_t e = cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        laic_error("cuda graph: capture failed: %s", cudaGetErrorString(e));
        return NULL;
    }
    g_in_capture = 1;
    g_capture_violation = NULL;
    fn(ctx);
    g_in_capture = 0;
    const char *violation = g_capture_violation;
    g_capture_violation = NULL;
    cudaGraph_t graph = NULL;
    e = cudaStreamEndCapture(cudaStreamPerThread, &graph);
    if (stream_is_capturing()) {   // EndCapture refused (wrong thread?): never leave it open
        cudaGraph_t g2 = NULL;
        (void)cudaStreamEndCapture(cudaStreamPerThread, &g2);
        if (g2) (void)cudaGraphDestroy(g2);
    }
    cudaGraphExec_t exec = NULL;
    if (e == cudaSuccess && !violation && graph) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaCheck(cudaGraphDestroy(graph));   // the executable keeps what it needs
    if (violation || e != cudaSuccess || !exec) {
        if (exec) cudaCheck(cudaGraphExecDestroy(exec));
        (void)cudaGetLastError();   // capture errors must not fail the next launchCheck
        if (violation)
            laic_error("cuda graph: capture failed: the captured function called %s (only ops "
                       "may be captured) ---> HINT: move copies to/from the host, allocations "
                       "and synchronisation out of the captured step",
                       violation);
        else
            laic_error("cuda graph: capture failed: %s",
                       e != cudaSuccess ? cudaGetErrorString(e) : "empty graph");
        return NULL;
    }
    return (void *)exec;
}

static int cuda_graph_launch(void *graph) {
    if (!graph) return laic_error("cuda graph: launch of a NULL graph");
    cudaError_t e = cudaGraphLaunch((cudaGraphExec_t)graph, cudaStreamPerThread);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return laic_error("cuda graph: launch failed: %s", cudaGetErrorString(e));
    }
    return 0;
}

static void cuda_graph_free(void *graph) {
    if (graph) cudaCheck(cudaGraphExecDestroy((cudaGraphExec_t)graph));
}

// --- the table ------------------------------------------------------------------------------
// Positional (C++17 has no designated initialisers), so the order must follow host/ops.h. The
// compiler checks each entry's type, but to_device, to_host and copy share one; this catches an
// entry added to ops.h without one here.
static_assert(sizeof(OpsBackend) == 80 * sizeof(void *), "host/ops.h changed: update ops_cuda");

extern "C" const OpsBackend ops_cuda = {
    "cuda",
    cuda_alloc,
    cuda_free,
    cuda_to_device,
    cuda_to_host,
    cuda_copy,
    cuda_memset0,
    cuda_synchronize,
    matmul_forward,
    layernorm_forward,
    l2norm_forward,
    quickgelu_forward,
    residual_forward,
    attention_forward,
    im2col_forward,
    vision_embed_forward,
    token_embed_forward,
    pos_add_forward,
    gather_rows_forward,
    matmul_backward,
    layernorm_backward,
    l2norm_backward,
    quickgelu_backward,
    residual_backward,
    attention_backward,
    pos_add_backward,
    gather_rows_backward,
    // clustering (kernels/cholesky.cu, kmeans.cu, knn.cu)
    f32_to_f64,
    f64_to_f32,
    transpose_f64,
    gram_f64_forward,
    dgemm_nt_forward,
    sgemm_nn_forward,
    cholesky_forward,
    cholesky_solve_right,
    cholesky_solve_left,
    rownorm2_forward,
    l2normalize_rows,
    sqdist_forward,
    kmeans_assign_forward,
    kmeans_update_forward,
    kmeans_rowdist_forward,
    kmeans_assign_sums_forward,
    kmeans_centres_forward,
    knn_topk_forward,
    knn_topk_rows_forward,
    knn_filter_forward,
    // prompt learning (kernels/train.cu; the views wrap kernels/augment.cu)
    strided_copy,
    train_views_forward,
    prompt_loss_forward_backward,
    sgd_forward,
    // parameter gradients and optimisers (kernels/matmul.cu, optim.cu)
    matmul_backward_weight,
    adam_forward,
    // CUDA graphs (above)
    cuda_graph_capture,
    cuda_graph_launch,
    cuda_graph_free,
    // image-encoder training (kernels/layernorm.cu, embed.cu, lora.cu, optim.cu; issue 16)
    layernorm_backward_weight,
    vision_embed_backward,
    im2col_backward,
    lora_forward,
    lora_backward,
    sumsq_forward,
    grad_clip_forward,
    // communicator (kernels/comm.cu): NCCL on device memory, or staged through host MPI
    comm_rank_cuda,
    comm_size_cuda,
    comm_allreduce_sum_cuda,
    comm_allgather_cuda,
    comm_broadcast_cuda,
    comm_barrier_cuda,
    // clustering heads (kernels/heads.cu)
    batchnorm_forward,
    batchnorm_backward,
    relu_forward,
    relu_backward,
    softmax_forward,
    index_select_forward,
    sic_loss_forward_backward,
    tac_loss_forward_backward,
    // SEIC (kernels/seic.cu)
    seic_align_loss_forward_backward,
    seic_self_loss_forward_backward,
    seic_views_forward,
};

// --- devices -------------------------------------------------------------------------------

extern "C" int ops_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n > 0 ? n : 0;
}

extern "C" int ops_cuda_select_device(int local_rank) {
    const int n = ops_cuda_device_count();
    if (local_rank >= n)
        return laic_error("rank %d on this node has no GPU of its own (%d device%s here) ---> HINT: "
                          "start one rank per GPU (mpirun -np <GPUs>, srun --gpus-per-task=1)",
                          local_rank, n, n == 1 ? "" : "s");
    cudaCheck(cudaSetDevice(local_rank));
    return 0;
}

extern "C" void ops_cuda_describe(char *buf, size_t n) {
    if (!buf || n == 0) return;
    buf[0] = 0;
    const int count = ops_cuda_device_count();
    size_t used = 0;
    for (int d = 0; d < count && used + 1 < n; d++) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) {
            (void)cudaGetLastError();
            continue;
        }
        int w = snprintf(buf + used, n - used, "%s%d: %s, sm_%d%d, %.1f GiB", d ? "\n" : "", d,
                         prop.name, prop.major, prop.minor,
                         prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
        if (w < 0) break;
        used += (size_t)w < n - used ? (size_t)w : n - used - 1;
    }
}

extern "C" int ops_cuda_mem_info(size_t *free_bytes, size_t *total_bytes) {
    size_t f = 0, t = 0;
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
    return 0;
}

// --- timing for bench/ ------------------------------------------------------------------------
extern "C" double ops_cuda_time_ms(void (*fn)(void *ctx), void *ctx, int repeats) {
    if (repeats < 1) repeats = 1;
    int dev = 0, l2 = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    // Writing twice the L2 size evicts whatever the previous run left there (llm.c habit).
    const size_t flush_bytes = (size_t)(l2 > 0 ? l2 : 64 << 20) * 2;
    void *flush = NULL;
    cudaCheck(cudaMalloc(&flush, flush_bytes));
    cudaEvent_t t0, t1;
    cudaCheck(cudaEventCreate(&t0));
    cudaCheck(cudaEventCreate(&t1));

    fn(ctx);   // warm-up: lazy initialisation (cuBLAS handle, heuristics) stays out of the time
    cudaCheck(cudaDeviceSynchronize());
    double total_ms = 0.0;
    for (int r = 0; r < repeats; r++) {
        cudaCheck(cudaMemset(flush, r & 0xff, flush_bytes));
        cudaCheck(cudaEventRecord(t0));
        fn(ctx);
        cudaCheck(cudaEventRecord(t1));
        cudaCheck(cudaEventSynchronize(t1));
        float ms = 0.0f;
        cudaCheck(cudaEventElapsedTime(&ms, t0, t1));
        total_ms += ms;
    }
    cudaCheck(cudaEventDestroy(t0));
    cudaCheck(cudaEventDestroy(t1));
    cudaCheck(cudaFree(flush));
    return total_ms / repeats;
}
