/*
 * comm.h — the process group of a job started by mpirun or srun (Ops layer): who this process
 * is, and the collectives on host memory. The backends' communicator entries in the op table
 * (host/ops.h: comm_rank … barrier) are these functions on the CPU backend (MPI on host memory)
 * and their NCCL twins on CUDA (kernels/comm.cu, device memory).
 *
 * Without MPI (a build without libopenmpi-dev, or a process not started by a launcher) there is
 * one rank: rank 0 of 1, every collective is a no-op (allreduce, broadcast, barrier) or leaves
 * the buffer as it is (allgather of the one segment), and laic runs exactly as a plain process.
 *
 * A "launcher" is recognised by its environment: Open MPI's mpirun (OMPI_COMM_WORLD_SIZE),
 * MPICH/Hydra or Slurm PMI (PMI_SIZE), PMIx (PMIX_RANK). Only then is MPI initialised, so a
 * laic built with MPI and run by hand never touches MPI. srun of several tasks without an MPI
 * plugin (every task would think it is alone) is refused by comm_init.
 *
 * Collectives run on the "active" group: the world, or — while comm_set_local(1) holds — this
 * process alone (laic sweep runs its points one per rank that way). Every rank of the active
 * group must make the same calls in the same order with the same sizes.
 *
 * Failure: MPI errors are fatal (MPI's default handler aborts the job). comm_abort(code) ends
 * every rank of the job at once (MPI_Abort), so a rank that fails never leaves the others
 * waiting in a collective.
 */
#ifndef LAIC_COMM_H
#define LAIC_COMM_H

#include <stddef.h>
#include <stdint.h>

// Element types of comm_allreduce_sum (the values of the op table's `type` argument).
enum { COMM_I64 = 0, COMM_F32 = 1, COMM_F64 = 2 };

/* MPI_Init when started by a launcher (see above); else one rank. -1 with an error recorded
 * when the environment asks for several ranks that this process cannot join. */
int comm_init(int *argc, char ***argv);
/* MPI_Finalize when comm_init initialised MPI (after a barrier: ranks leave together). */
void comm_finalize(void);
/* Ends the whole job with this exit code: MPI_Abort with several ranks, exit() with one. */
__attribute__((noreturn)) void comm_abort(int code);

int comm_world_rank(void);
int comm_world_size(void);
/* Rank among the ranks on this node (one rank, one GPU: cudaSetDevice(local rank)). */
int comm_local_rank(void);
/* "Open MPI v4.1.4" (the library's version string, first line) or "none". */
const char *comm_library(void);
/* 1 when this binary was built with MPI. */
int comm_have_mpi(void);

/* While on, the active group is this process alone (size 1); returns the previous setting. */
int comm_set_local(int on);
/* Rank and size of the active group. */
int comm_rank(void);
int comm_size(void);
/* Test hook: while forced, the drivers and the trainer take their data-parallel code paths and
 * the device collectives really run (NCCL with one rank) even in a job of one rank, so those
 * paths can be checked against the plain ones on a single device (tests/gpu/test_comm_gpu.c)
 * or CPU. Returns the previous setting. The environment variable LAIC_COMM_FORCE=1 sets it at
 * comm_init. */
int comm_set_forced(int on);
int comm_forced(void);
/* 1 when the code must take its data-parallel paths: several ranks, or forced. */
int comm_distributed(void);

/* Host-memory collectives on the active group.
 * allreduce_sum: buf (n elements of `type`) = Σ over ranks, in place. Integer sums are exact
 *   (any order); float sums are in the library's order — every rank gets the same bits, but
 *   not those of one process: callers that promise one-process bits gather and sum themselves.
 * allgather: buf holds the concatenation of size segments, segment r counts[r] bytes (in rank
 *   order); on entry this rank's segment is filled, on return all are.
 * broadcast: buf (bytes) = root's buf. */
void comm_allreduce_sum_host(void *buf, size_t n, int type);
void comm_allgather_host(void *buf, const size_t *counts);
void comm_broadcast_host(void *buf, size_t bytes, int root);
void comm_barrier_host(void);

/* This rank's share [lo, hi) of n rows when the rows are cut into blocks of `align` (the last one
 * may be short) and the blocks are dealt out contiguously, at most one block apart: boundaries
 * fall on multiples of align, so per-block arithmetic is the same whatever the rank count. */
void comm_shard(size_t n, size_t align, int rank, int size, size_t *lo, size_t *hi);

#endif
