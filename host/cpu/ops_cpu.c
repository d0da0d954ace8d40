/*
 * ops_cpu.c — the CPU backend table (`ops_cpu`, host/ops.h): host memory plus the reference ops
 * of host/cpu/<op>.c. Always built; the CUDA backend is compared against it op by op.
 */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cluster_ops.h"   // the clustering ops (cholesky.c, kmeans.c, knn.c, cluster.c)
#include "comm.h"
#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "ops.h"

static void *cpu_alloc(size_t bytes) {
    void *p = NULL;
    // 64-byte alignment: cache lines and AVX loads in sgemm
    if (posix_memalign(&p, 64, bytes ? bytes : 1) != 0) {
        laic_error("cpu: out of memory allocating %zu bytes ---> HINT: lower --batch", bytes);
        return NULL;
    }
    return p;
}
static void cpu_free(void *p) { free(p); }
static void cpu_memcpy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_memset0(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}
static void cpu_synchronize(void) {}

int cpu_set_threads(int n) {
    if (n > 0) {
        omp_set_num_threads(n);
        // OpenBLAS keeps its own pool (pthread build); size it alike so the two never sum to
        // more threads than cores.
        openblas_set_num_threads(n);
    }
    return omp_get_max_threads();
}

const OpsBackend ops_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_device = cpu_memcpy,
    .to_host = cpu_memcpy,
    .copy = cpu_memcpy,
    .memset0 = cpu_memset0,
    .synchronize = cpu_synchronize,
    .matmul_forward = matmul_forward_cpu,
    .layernorm_forward = layernorm_forward_cpu,
    .l2norm_forward = l2norm_forward_cpu,
    .quickgelu_forward = quickgelu_forward_cpu,
    .residual_forward = residual_forward_cpu,
    .attention_forward = attention_forward_cpu,
    .im2col_forward = im2col_forward_cpu,
    .vision_embed_forward = vision_embed_forward_cpu,
    .token_embed_forward = token_embed_forward_cpu,
    .pos_add_forward = pos_add_forward_cpu,
    .gather_rows_forward = gather_rows_forward_cpu,
    .matmul_backward = matmul_backward_cpu,
    .layernorm_backward = layernorm_backward_cpu,
    .l2norm_backward = l2norm_backward_cpu,
    .quickgelu_backward = quickgelu_backward_cpu,
    .residual_backward = residual_backward_cpu,
    .attention_backward = attention_backward_cpu,
    .pos_add_backward = pos_add_backward_cpu,
    .gather_rows_backward = gather_rows_backward_cpu,
    .f32_to_f64 = f32_to_f64_cpu,
    .f64_to_f32 = f64_to_f32_cpu,
    .transpose_f64 = transpose_f64_cpu,
    .gram_f64_forward = gram_f64_forward_cpu,
    .dgemm_nt_forward = dgemm_nt_forward_cpu,
    .sgemm_nn_forward = sgemm_nn_forward_cpu,
    .cholesky_forward = cholesky_forward_cpu,
    .cholesky_solve_right = cholesky_solve_right_cpu,
    .cholesky_solve_left = cholesky_solve_left_cpu,
    .rownorm2_forward = rownorm2_forward_cpu,
    .l2normalize_rows = l2normalize_rows_cpu,
    .sqdist_forward = sqdist_forward_cpu,
    .kmeans_assign_forward = kmeans_assign_forward_cpu,
    .kmeans_update_forward = kmeans_update_forward_cpu,
    .kmeans_rowdist_forward = kmeans_rowdist_forward_cpu,
    .kmeans_assign_sums_forward = kmeans_assign_sums_forward_cpu,
    .kmeans_centres_forward = kmeans_centres_forward_cpu,
    .knn_topk_forward = knn_topk_forward_cpu,
    .knn_topk_rows_forward = knn_topk_rows_forward_cpu,
    .knn_filter_forward = knn_filter_forward_cpu,
    .strided_copy = strided_copy_cpu,
    .train_views_forward = train_views_forward_cpu,
    .prompt_loss_forward_backward = prompt_loss_forward_backward_cpu,
    .sgd_forward = sgd_forward_cpu,
    .matmul_backward_weight = matmul_backward_weight_cpu,
    .adam_forward = adam_forward_cpu,
    // image-encoder training (issue 16)
    .layernorm_backward_weight = layernorm_backward_weight_cpu,
    .vision_embed_backward = vision_embed_backward_cpu,
    .im2col_backward = im2col_backward_cpu,
    .lora_forward = lora_forward_cpu,
    .lora_backward = lora_backward_cpu,
    .sumsq_forward = sumsq_forward_cpu,
    .grad_clip_forward = grad_clip_forward_cpu,
    // SEIC (seic.c)
    .seic_align_loss_forward_backward = seic_align_loss_forward_backward_cpu,
    .seic_self_loss_forward_backward = seic_self_loss_forward_backward_cpu,
    .seic_views_forward = seic_views_forward_cpu,
    // no graphs on the CPU: graph_capture, graph_launch, graph_free stay NULL
    // communicator: MPI on host memory (host/comm.c)
    .comm_rank = comm_rank,
    .comm_size = comm_size,
    .allreduce_sum = comm_allreduce_sum_host,
    .allgather = comm_allgather_host,
    .broadcast = comm_broadcast_host,
    .barrier = comm_barrier_host,
    .batchnorm_forward = batchnorm_forward_cpu,
    .batchnorm_backward = batchnorm_backward_cpu,
    .relu_forward = relu_forward_cpu,
    .relu_backward = relu_backward_cpu,
    .softmax_forward = softmax_forward_cpu,
    .index_select_forward = index_select_forward_cpu,
    .sic_loss_forward_backward = sic_loss_forward_backward_cpu,
    .tac_loss_forward_backward = tac_loss_forward_backward_cpu,
};
