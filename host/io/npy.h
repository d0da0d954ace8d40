/*
 * npy.h — the one place laic reads and writes NumPy .npy files.
 *
 * Supported: format versions 1.0/2.0/3.0 for reading, 1.0 for writing; little-endian
 * float32, float64, int32, int64, uint8; C order only (fortran_order True is rejected).
 * Every reader error names the file and the problem. Writes are atomic (atomic.h).
 */
#ifndef LAIC_NPY_H
#define LAIC_NPY_H

#include <stddef.h>
#include <stdint.h>

typedef enum { NPY_F32 = 0, NPY_F64, NPY_I32, NPY_I64, NPY_U8 } NpyDtype;

#define NPY_MAX_DIMS 8

typedef struct {
    NpyDtype dtype;
    int ndim;
    size_t shape[NPY_MAX_DIMS];
    size_t count;   // product of shape
    void *data;     // malloc'd, count * npy_dtype_size(dtype) bytes
} Npy;

size_t npy_dtype_size(NpyDtype t);
const char *npy_dtype_name(NpyDtype t);   // "float32", ...

/* Reads a whole file. On error returns -1 with a message naming `path`; *out is zeroed. */
int npy_read(const char *path, Npy *out);
void npy_free(Npy *a);

/* Shape check: ndim must match, and each shape[i] >= 0 must match (-1 = any).
 * Message: "<path>: expected shape [N,512], got [10,3]" (names given by `what`, may be NULL). */
int npy_check_shape(const Npy *a, const char *path, int ndim, const long *shape);

/* Converts in place to float32 (from float32/float64/int32/int64/uint8). */
int npy_to_f32(Npy *a, const char *path);
/* Converts in place to int64 (from any integer type; floats are rejected). */
int npy_to_i64(Npy *a, const char *path);

/* Convenience: read + convert + check. shape may be NULL (any shape with that ndim; ndim<0 any). */
int npy_read_f32(const char *path, Npy *out, int ndim, const long *shape);
int npy_read_i64(const char *path, Npy *out, int ndim, const long *shape);

/* Writes atomically. */
int npy_write(const char *path, NpyDtype dtype, int ndim, const size_t *shape, const void *data);
int npy_write_f32_2d(const char *path, const float *data, size_t rows, size_t cols);

#endif
