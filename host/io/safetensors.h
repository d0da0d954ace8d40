/*
 * safetensors.h — reading and writing safetensors files (the weights format, weights/FORMAT.md).
 *
 * Reader: st_open mmaps the file read-only and parses the JSON header with cJSON. It promises,
 * or fails with one message naming the file and the problem:
 *   - the file holds an 8-byte header length N and N header bytes (no length past EOF);
 *   - the header is a JSON object of tensors plus an optional "__metadata__" object whose
 *     values are all strings; names are unique (checked in O(n log n): sorted, not pairwise);
 *   - every tensor has a known dtype, a shape of non-negative integers and data_offsets
 *     [begin, end] inside the data section with end - begin = numel * dtype size;
 *   - tensors do not overlap and together cover the whole data section (no trailing junk).
 * What the tensors mean (names, shapes, one dtype) is the caller's business (host/model/weights.c).
 *
 * Writer: st_write writes a header with __metadata__ and the tensors back to back in the order
 * given, the data section 8-byte aligned, atomically (atomic.h).
 *
 * Half-precision helpers: exact f16/bf16 → f32, and f32 → f16/bf16 rounding to nearest even.
 */
#ifndef LAIC_SAFETENSORS_H
#define LAIC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef struct {
    const char *name;          // points into the parsed header (valid until st_close)
    char dtype[8];             // "F32", "F16", "BF16", "F64", "I32", ...
    size_t elem_size;          // bytes per element of dtype
    int ndim;
    size_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t begin, end;         // byte offsets into the data section
    const uint8_t *data;       // mapped bytes (begin .. end)
} StTensor;

typedef struct {
    const char *path;          // as given to st_open (not copied)
    void *map;                 // whole file, read-only mapping
    size_t file_size;
    size_t data_size;          // bytes after the header
    StTensor *tensors;         // n_tensors, in header order
    int n_tensors;
    const StTensor **by_name;  // n_tensors, sorted by name (st_find's binary search)
    void *json;                // cJSON root (owns the tensor names)
    void *meta;                // cJSON "__metadata__" object or NULL
} StFile;

/* Opens and validates a file as described above; on error returns -1, *f is left closed. */
int st_open(StFile *f, const char *path);
void st_close(StFile *f);
/* The tensor called name, or NULL (O(log n)). */
const StTensor *st_find(const StFile *f, const char *name);
/* A __metadata__ value, or NULL when absent. */
const char *st_meta(const StFile *f, const char *key);
/* Bytes per element of a safetensors dtype name; 0 when unknown. */
size_t st_dtype_size(const char *dtype);

typedef struct {
    const char *name;
    const char *dtype;         // "F32", "F16" or "BF16" (any known dtype)
    int ndim;
    size_t shape[ST_MAX_DIMS];
    const void *data;          // numel * dtype size bytes, little-endian
} StWriteTensor;

/* Writes atomically. meta is n_meta key/value string pairs (meta[2i], meta[2i+1]). */
int st_write(const char *path, const char *const *meta, int n_meta, const StWriteTensor *t,
             int n);

/* ---- half precision --------------------------------------------------------------------- */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);    // round to nearest even; overflow → ±inf; NaN kept
uint16_t st_f32_to_bf16(float f);   // round to nearest even; NaN kept

#endif
