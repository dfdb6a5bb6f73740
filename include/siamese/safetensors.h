/*
 * safetensors.h — reading and writing the safetensors format, F32 tensors only.
 *
 * Layout: 8-byte little-endian u64 header length N, N bytes of JSON header
 * (padded with spaces to a multiple of 8), then the raw little-endian tensor
 * bytes. The header maps tensor names to {"dtype":"F32","shape":[...],
 * "data_offsets":[begin,end]} (offsets relative to the data section) and may
 * hold "__metadata__", a map of string keys to string values.
 *
 * The reader faces untrusted files: it checks the header length against the
 * file size and a cap, parses the JSON strictly, and checks every dtype,
 * shape, offset and size (no overflow, in bounds, contiguous, no overlap, the
 * data section fully covered), and rejects anything else with a reason.
 */
#ifndef SIAMESE_SAFETENSORS_H
#define SIAMESE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 4
#define ST_MAX_HEADER (1u << 20) /* 1 MiB of JSON header at most */

typedef struct {
    const char *name;
    int ndim; /* 0..ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];
    const float *data; /* product(shape) floats */
} StTensor;

typedef struct {
    const char *key;
    const char *value;
} StMeta;

/* Writes tensors (in the given order) and metadata atomically to path
 * (temp file, fsync, rename). If fingerprint_hex is not NULL it receives the
 * SHA-256 (65 bytes: 64 hex + NUL) of the tensor bytes, which is also stored
 * as metadata key "fingerprint" (a "fingerprint" entry in meta is an error). */
int st_write(const char *path, const StTensor *tensors, int n_tensors, const StMeta *meta,
             int n_meta, char *fingerprint_hex, char *err);

typedef struct StFile StFile;

/* Reads and validates the whole file (at most max_bytes). *out is freed with
 * st_free(). If the metadata has "fingerprint", it must match the SHA-256 of
 * the tensor bytes (else -EBADMSG). */
int st_read(const char *path, size_t max_bytes, StFile **out, char *err);
/* Same, from memory (the buffer is copied; used by tests and fuzzing). */
int st_parse(const uint8_t *buf, size_t len, StFile **out, char *err);
void st_free(StFile *f);

int st_n_tensors(const StFile *f);
/* Tensors in file order (the order of the JSON header; st_write writes the
 * data section in that order too); NULL if i is out of range. Pointers are
 * borrowed until st_free(f). Each tensor's data starts on a 64-byte boundary. */
const StTensor *st_tensor(const StFile *f, int i);
const StTensor *st_find(const StFile *f, const char *name); /* NULL if absent */
const char *st_meta(const StFile *f, const char *key);      /* NULL if absent */
/* SHA-256 hex of the tensor bytes (64 chars). Borrowed. */
const char *st_fingerprint(const StFile *f);

/* Writes the lowercase hex SHA-256 of len bytes at data into hex (65 bytes:
 * 64 hex + NUL). The fingerprint above is this over the data section. */
void st_sha256_hex(const void *data, size_t len, char *hex);

#endif
