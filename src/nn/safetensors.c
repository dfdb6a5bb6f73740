/*
 * safetensors.c — the model file format: reading and writing safetensors
 * files holding F32 tensors and string metadata.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON (padded
 * with spaces so the data starts 8-aligned), then the tensor bytes. The
 * writer builds the whole file in memory and hands it to
 * sm_write_file_atomic(), so a crash never leaves half a model behind; it
 * also stores the SHA-256 of the data section as metadata "fingerprint".
 *
 * The reader faces untrusted files. Before anything is allocated from a
 * number in the file, that number is checked against the input size or a
 * cap. The JSON is parsed by cJSON, which is lenient, so this file adds what
 * cJSON does not check: UTF-8 and control characters, duplicate keys, exact
 * key names (cJSON_GetObjectItem ignores case), integer-valued numbers. The
 * tensors must tile the data section exactly, as the safetensors spec asks.
 * Tensor data is copied out of the input so that every tensor starts on a
 * 64-byte boundary, and the caller's buffer need not outlive the StFile.
 */
#include "siamese/safetensors.h"
#include "siamese/common.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Tensor bytes are copied between file and memory unchanged. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (file floats are little-endian)"
#endif

#define ST_ALIGN 64
#define ST_MAX_DIM 2147483647.0          /* largest accepted dimension (2^31 - 1) */
#define ST_MAX_OFFSET 9007199254740992.0 /* 2^53: beyond it a JSON double is inexact */
#define ST_FINGERPRINT_KEY "fingerprint"
#define ST_METADATA_KEY "__metadata__"

struct StFile {
    cJSON *header;     /* owns the tensor names and metadata strings */
    StTensor *tensors; /* header order */
    int n_tensors;
    StMeta *meta;
    int n_meta;
    void *data; /* one ST_ALIGN-aligned block, each tensor ST_ALIGN-aligned in it */
    char fingerprint[65];
};

/* Where a tensor's bytes lie in the data section; idx is its header position. */
typedef struct {
    uint64_t begin, end;
    int idx;
} Span;

static void hex_encode(const uint8_t *digest, char *hex) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[2 * SHA256_DIGEST_SIZE] = 0;
}

void st_sha256_hex(const void *data, size_t len, char *hex) {
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    if (len > 0)
        sha256_update(&ctx, len, data);
    sha256_digest(&ctx, sizeof digest, digest);
    hex_encode(digest, hex);
}

/* Bytes of an F32 tensor of this shape; -EOVERFLOW (and *out = UINT64_MAX)
 * when a dimension is negative or the size does not fit in 64 bits. */
static int shape_nbytes(const int64_t *shape, int ndim, uint64_t *out) {
    *out = sizeof(float);
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0 || __builtin_mul_overflow(*out, (uint64_t)shape[d], out)) {
            *out = UINT64_MAX;
            return -EOVERFLOW;
        }
    return 0;
}

static void shape_format(const StTensor *t, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < t->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", d ? "," : "",
                                 (long long)t->shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), 0 if none. */
static size_t utf8_seq_len(const uint8_t *p, size_t n) {
    size_t len;
    uint32_t cp, min;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xE0) == 0xC0)
        len = 2, cp = p[0] & 0x1F, min = 0x80;
    else if ((p[0] & 0xF0) == 0xE0)
        len = 3, cp = p[0] & 0x0F, min = 0x800;
    else if ((p[0] & 0xF8) == 0xF0)
        len = 4, cp = p[0] & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[k] & 0x3F);
    }
    /* Overlong forms, UTF-16 surrogates and code points past Unicode are invalid. */
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* JSON text is UTF-8 with no raw control characters (RFC 8259). cJSON checks
 * neither and treats every byte below 0x20, NUL included, as whitespace. */
static int header_text_check(const uint8_t *p, size_t n, char *msg) {
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            return sm_err(msg, -EINVAL, "header byte %zu is a control character (0x%02x)", i, p[i]);
        size_t len = utf8_seq_len(p + i, n - i);
        if (len == 0)
            return sm_err(msg, -EINVAL, "header is not valid UTF-8 at byte %zu", i);
        i += len;
    }
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts names (n of them) in place; returns a name that occurs twice, or NULL. */
static const char *find_duplicate(const char **names, size_t n) {
    if (n < 2)
        return NULL;
    qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    return NULL;
}

/* ---- Writing ------------------------------------------------------------ */

/* Checks one tensor passed to st_write and adds its size to *total. */
static int write_check_tensor(const StTensor *t, uint64_t *total, char *msg) {
    if (!t->name || !t->name[0])
        return sm_err(msg, -EINVAL, "a tensor has an empty name");
    if (strcmp(t->name, ST_METADATA_KEY) == 0)
        return sm_err(msg, -EINVAL, "'%s' is reserved and cannot name a tensor", ST_METADATA_KEY);
    if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
        return sm_err(msg, -EINVAL, "tensor '%s': %d dimensions (0..%d allowed)", t->name, t->ndim,
                      ST_MAX_DIMS);
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0 || t->shape[d] > (int64_t)ST_MAX_DIM)
            return sm_err(msg, -EINVAL, "tensor '%s': dimension %d is %lld", t->name, d,
                          (long long)t->shape[d]);
    uint64_t nbytes;
    if (shape_nbytes(t->shape, t->ndim, &nbytes) < 0 ||
        __builtin_add_overflow(*total, nbytes, total) || *total > (uint64_t)ST_MAX_OFFSET)
        return sm_err(msg, -EFBIG, "tensor '%s': tensors too large", t->name);
    if (nbytes > 0 && !t->data)
        return sm_err(msg, -EINVAL, "tensor '%s': no data", t->name);
    return 0;
}

/* Validates st_write's arguments; *data_len receives the data section size. */
static int write_check(const StTensor *tensors, int n_tensors, const StMeta *meta, int n_meta,
                       uint64_t *data_len, char *msg) {
    int rc = 0;
    const char **names = NULL;
    if (n_tensors < 0 || n_meta < 0 || (n_tensors > 0 && !tensors) || (n_meta > 0 && !meta))
        return sm_err(msg, -EINVAL, "bad tensor or metadata list");
    size_t n_names = (size_t)(n_tensors > n_meta ? n_tensors : n_meta);
    names = malloc((n_names + 1) * sizeof *names);
    if (!names)
        return sm_err(msg, -ENOMEM, "out of memory");
    *data_len = 0;
    for (int i = 0; i < n_tensors && rc == 0; i++) {
        rc = write_check_tensor(&tensors[i], data_len, msg);
        names[i] = tensors[i].name;
    }
    const char *dup = rc == 0 ? find_duplicate(names, (size_t)n_tensors) : NULL;
    if (dup)
        rc = sm_err(msg, -EINVAL, "duplicate tensor name '%s'", dup);
    for (int i = 0; i < n_meta && rc == 0; i++) {
        if (!meta[i].key || !meta[i].value)
            rc = sm_err(msg, -EINVAL, "metadata entry %d has no key or value", i);
        else if (strcmp(meta[i].key, ST_FINGERPRINT_KEY) == 0)
            rc = sm_err(msg, -EINVAL, "metadata key '%s' is reserved for the writer",
                        ST_FINGERPRINT_KEY);
        names[i] = meta[i].key;
    }
    dup = rc == 0 ? find_duplicate(names, (size_t)n_meta) : NULL;
    if (dup)
        rc = sm_err(msg, -EINVAL, "duplicate metadata key '%s'", dup);
    free(names);
    return rc;
}

/* Adds the decimal integer v to array as raw JSON: cJSON would print a double,
 * in exponent form past 1e15, which safetensors readers reject. */
static int json_add_uint(cJSON *array, uint64_t v) {
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    return cJSON_AddItemToArray(array, cJSON_CreateRaw(num)) ? 0 : -ENOMEM;
}

static int json_add_tensor(cJSON *root, const StTensor *t, uint64_t begin, uint64_t end) {
    cJSON *entry = cJSON_CreateObject();
    if (!cJSON_AddItemToObject(root, t->name, entry)) {
        cJSON_Delete(entry);
        return -ENOMEM;
    }
    if (!cJSON_AddStringToObject(entry, "dtype", "F32"))
        return -ENOMEM;
    cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
    if (!shape)
        return -ENOMEM;
    for (int d = 0; d < t->ndim; d++)
        if (json_add_uint(shape, (uint64_t)t->shape[d]) < 0)
            return -ENOMEM;
    cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
    if (!offsets || json_add_uint(offsets, begin) < 0 || json_add_uint(offsets, end) < 0)
        return -ENOMEM;
    return 0;
}

/* The header text for st_write (caller frees with cJSON_free), NULL when out of memory. */
static char *header_build(const StTensor *tensors, int n_tensors, const StMeta *meta, int n_meta,
                          const char *fingerprint) {
    char *text = NULL;
    uint64_t offset = 0, nbytes;
    cJSON *root = cJSON_CreateObject();
    cJSON *md = cJSON_AddObjectToObject(root, ST_METADATA_KEY);
    if (!md)
        goto out;
    for (int i = 0; i < n_meta; i++)
        if (!cJSON_AddStringToObject(md, meta[i].key, meta[i].value))
            goto out;
    if (!cJSON_AddStringToObject(md, ST_FINGERPRINT_KEY, fingerprint))
        goto out;
    for (int i = 0; i < n_tensors; i++) {
        shape_nbytes(tensors[i].shape, tensors[i].ndim, &nbytes); /* checked already */
        if (json_add_tensor(root, &tensors[i], offset, offset + nbytes) < 0)
            goto out;
        offset += nbytes;
    }
    text = cJSON_PrintUnformatted(root);
out:
    cJSON_Delete(root);
    return text;
}

/* The SHA-256 hex of the tensors' bytes in order: the data section st_write lays out. */
static void tensors_fingerprint(const StTensor *tensors, int n_tensors, char *hex) {
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    uint64_t nbytes;
    sha256_init(&ctx);
    for (int i = 0; i < n_tensors; i++) {
        shape_nbytes(tensors[i].shape, tensors[i].ndim, &nbytes);
        if (nbytes > 0)
            sha256_update(&ctx, (size_t)nbytes, (const uint8_t *)tensors[i].data);
    }
    sha256_digest(&ctx, sizeof digest, digest);
    hex_encode(digest, hex);
}

/* Lays out the whole file in buf: length, header padded with spaces, tensors. */
static void file_assemble(uint8_t *buf, const char *json, size_t json_len, size_t header_len,
                          const StTensor *tensors, int n_tensors) {
    uint64_t nbytes;
    for (int b = 0; b < 8; b++)
        buf[b] = (uint8_t)((uint64_t)header_len >> (8 * b));
    memcpy(buf + 8, json, json_len);
    memset(buf + 8 + json_len, ' ', header_len - json_len);
    uint8_t *p = buf + 8 + header_len;
    for (int i = 0; i < n_tensors; i++) {
        shape_nbytes(tensors[i].shape, tensors[i].ndim, &nbytes);
        if (nbytes > 0)
            memcpy(p, tensors[i].data, (size_t)nbytes);
        p += nbytes;
    }
}

int st_write(const char *path, const StTensor *tensors, int n_tensors, const StMeta *meta,
             int n_meta, char *fingerprint_hex, char *err) {
    int rc = 0;
    char msg[SM_ERRMAX], hex[65];
    char *json = NULL;
    uint8_t *file = NULL;
    uint64_t data_len = 0;
    if ((rc = write_check(tensors, n_tensors, meta, n_meta, &data_len, msg)) < 0)
        return sm_err(err, rc, "safetensors: %s", msg);
    tensors_fingerprint(tensors, n_tensors, hex);
    json = header_build(tensors, n_tensors, meta, n_meta, hex);
    if (!json) {
        rc = sm_err(err, -ENOMEM, "safetensors: out of memory");
        goto out;
    }
    size_t json_len = strlen(json);
    if ((rc = header_text_check((const uint8_t *)json, json_len, msg)) < 0) {
        rc = sm_err(err, rc, "safetensors: tensor names and metadata must be UTF-8: %s", msg);
        goto out;
    }
    size_t header_len = (json_len + 7) & ~(size_t)7; /* the data section starts 8-aligned */
    if (header_len > ST_MAX_HEADER) {
        rc = sm_err(err, -EFBIG, "safetensors: header of %zu bytes exceeds %u", header_len,
                    ST_MAX_HEADER);
        goto out;
    }
    size_t total = 8 + header_len + (size_t)data_len;
    if (!(file = malloc(total))) {
        rc = sm_err(err, -ENOMEM, "safetensors: out of memory for a %zu-byte file", total);
        goto out;
    }
    file_assemble(file, json, json_len, header_len, tensors, n_tensors);
    rc = sm_write_file_atomic(path, file, total, err);
    if (rc == 0 && fingerprint_hex)
        memcpy(fingerprint_hex, hex, sizeof hex);
out:
    free(file);
    cJSON_free(json);
    return rc;
}

/* ---- Reading ------------------------------------------------------------ */

/* A JSON number that is an integer in [0, max]. */
static int json_uint(const cJSON *v, double max, uint64_t *out) {
    if (!cJSON_IsNumber(v))
        return -EINVAL;
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0 || d > max || d != floor(d))
        return -EINVAL;
    *out = (uint64_t)d;
    return 0;
}

/* Checks the 8-byte length prefix; *header_len receives N. */
static int parse_prefix(const uint8_t *buf, size_t len, size_t *header_len, char *msg) {
    if (len < 8)
        return sm_err(msg, -EINVAL, "file is %zu bytes, too short for the 8-byte header length",
                      len);
    uint64_t n = 0;
    for (int b = 7; b >= 0; b--)
        n = n << 8 | buf[b];
    if (n == 0)
        return sm_err(msg, -EINVAL, "header length is 0");
    if (n > ST_MAX_HEADER)
        return sm_err(msg, -EFBIG, "header length %llu exceeds the %u-byte limit",
                      (unsigned long long)n, ST_MAX_HEADER);
    if (n > len - 8)
        return sm_err(msg, -EINVAL, "header length %llu runs past the end of the %zu-byte file",
                      (unsigned long long)n, len);
    *header_len = (size_t)n;
    return 0;
}

/* Parses the header text (not NUL-terminated in the file) into f->header. */
static int parse_json(StFile *f, const uint8_t *text, size_t len, char *msg) {
    int rc = header_text_check(text, len, msg);
    if (rc < 0)
        return rc;
    char *copy = malloc(len + 1);
    if (!copy)
        return sm_err(msg, -ENOMEM, "out of memory for the header");
    memcpy(copy, text, len);
    copy[len] = 0;
    /* The length given to cJSON includes the NUL, which require_null_terminated looks for. */
    const char *end = NULL;
    f->header = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 1);
    if (!f->header)
        rc = sm_err(msg, -EINVAL, "header is not valid JSON (error near byte %td)",
                    end ? end - copy : (ptrdiff_t)0);
    else if (!cJSON_IsObject(f->header))
        rc = sm_err(msg, -EINVAL, "header is not a JSON object");
    free(copy);
    return rc;
}

/* Parses "__metadata__": an object of string values with distinct keys. */
static int parse_meta(StFile *f, const cJSON *md, char *msg) {
    if (f->meta)
        return sm_err(msg, -EINVAL, "duplicate key '%s'", ST_METADATA_KEY);
    if (!cJSON_IsObject(md))
        return sm_err(msg, -EINVAL, "'%s' is not an object", ST_METADATA_KEY);
    int n = cJSON_GetArraySize(md);
    f->meta = calloc((size_t)n + 1, sizeof *f->meta);
    const char **keys = malloc(((size_t)n + 1) * sizeof *keys);
    int rc = 0;
    if (!f->meta || !keys) {
        rc = sm_err(msg, -ENOMEM, "out of memory for metadata");
        goto out;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, md) {
        if (!cJSON_IsString(item)) {
            rc = sm_err(msg, -EINVAL, "metadata '%.64s' is not a string", item->string);
            goto out;
        }
        f->meta[f->n_meta] = (StMeta){.key = item->string, .value = item->valuestring};
        keys[f->n_meta++] = item->string;
    }
    const char *dup = find_duplicate(keys, (size_t)n);
    if (dup)
        rc = sm_err(msg, -EINVAL, "duplicate metadata key '%.64s'", dup);
out:
    free(keys);
    return rc;
}

/* Parses "shape" into t; the checks on each dimension bound the product's factors. */
static int parse_shape(StTensor *t, const cJSON *shape, char *msg) {
    if (!cJSON_IsArray(shape))
        return sm_err(msg, -EINVAL, "tensor '%.64s': shape is not an array", t->name);
    int n = cJSON_GetArraySize(shape);
    if (n > ST_MAX_DIMS)
        return sm_err(msg, -EINVAL, "tensor '%.64s': %d dimensions, at most %d allowed", t->name, n,
                      ST_MAX_DIMS);
    const cJSON *dim;
    uint64_t v;
    cJSON_ArrayForEach(dim, shape) {
        if (json_uint(dim, ST_MAX_DIM, &v) < 0)
            return sm_err(msg, -EINVAL,
                          "tensor '%.64s': shape entry %d is not an integer in 0..%.0f", t->name,
                          t->ndim, ST_MAX_DIM);
        t->shape[t->ndim++] = (int64_t)v;
    }
    return 0;
}

static int parse_offsets(const StTensor *t, const cJSON *offsets, Span *span, char *msg) {
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        json_uint(offsets->child, ST_MAX_OFFSET, &span->begin) < 0 ||
        json_uint(offsets->child->next, ST_MAX_OFFSET, &span->end) < 0)
        return sm_err(msg, -EINVAL, "tensor '%.64s': data_offsets is not [begin,end] integers",
                      t->name);
    uint64_t nbytes;
    char shape[96];
    if (shape_nbytes(t->shape, t->ndim, &nbytes) < 0 || span->end < span->begin ||
        span->end - span->begin != nbytes) {
        shape_format(t, shape, sizeof shape);
        return sm_err(msg, -EINVAL,
                      "tensor '%.64s': data_offsets [%llu,%llu] do not match shape %s F32", t->name,
                      (unsigned long long)span->begin, (unsigned long long)span->end, shape);
    }
    return 0;
}

/* Parses one tensor entry: exactly the keys dtype, shape and data_offsets. */
static int parse_tensor(StTensor *t, const cJSON *entry, Span *span, char *msg) {
    if (!t->name[0])
        return sm_err(msg, -EINVAL, "a tensor has an empty name");
    if (!cJSON_IsObject(entry))
        return sm_err(msg, -EINVAL, "tensor '%.64s': entry is not an object", t->name);
    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    const cJSON *found[3] = {NULL, NULL, NULL}, *item;
    cJSON_ArrayForEach(item, entry) {
        int k = 0;
        while (k < 3 && strcmp(item->string, keys[k]) != 0)
            k++;
        if (k == 3 || found[k])
            return sm_err(msg, -EINVAL, "tensor '%.64s': %s key '%.64s'", t->name,
                          k == 3 ? "unexpected" : "duplicate", item->string);
        found[k] = item;
    }
    for (int k = 0; k < 3; k++)
        if (!found[k])
            return sm_err(msg, -EINVAL, "tensor '%.64s': missing '%s'", t->name, keys[k]);
    if (!cJSON_IsString(found[0]))
        return sm_err(msg, -EINVAL, "tensor '%.64s': dtype is not a string", t->name);
    if (strcmp(found[0]->valuestring, "F32") != 0)
        return sm_err(msg, -EINVAL, "tensor '%.64s': dtype '%.16s' is not supported (only F32)",
                      t->name, found[0]->valuestring);
    int rc = parse_shape(t, found[1], msg);
    return rc < 0 ? rc : parse_offsets(t, found[2], span, msg);
}

/* Walks the header: fills f->tensors, f->meta and one span per tensor. */
static int parse_entries(StFile *f, Span **spans_out, char *msg) {
    int rc = 0, n = cJSON_GetArraySize(f->header);
    const char **names = malloc(((size_t)n + 1) * sizeof *names);
    Span *spans = calloc((size_t)n + 1, sizeof *spans);
    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    if (!names || !spans || !f->tensors) {
        rc = sm_err(msg, -ENOMEM, "out of memory for %d header entries", n);
        goto out;
    }
    const cJSON *item;
    int n_names = 0;
    cJSON_ArrayForEach(item, f->header) {
        names[n_names++] = item->string;
        if (strcmp(item->string, ST_METADATA_KEY) == 0) {
            rc = parse_meta(f, item, msg);
        } else {
            StTensor *t = &f->tensors[f->n_tensors];
            t->name = item->string;
            spans[f->n_tensors].idx = f->n_tensors;
            rc = parse_tensor(t, item, &spans[f->n_tensors], msg);
            f->n_tensors++;
        }
        if (rc < 0)
            goto out;
    }
    const char *dup = find_duplicate(names, (size_t)n_names);
    if (dup)
        rc = sm_err(msg, -EINVAL, "duplicate tensor name '%.64s'", dup);
out:
    free(names);
    if (rc < 0)
        free(spans);
    else
        *spans_out = spans;
    return rc;
}

static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

/* The tensors must tile [0, data_len) exactly: no overlap, no gap, no trailing bytes. */
static int check_layout(const StFile *f, Span *spans, uint64_t data_len, char *msg) {
    qsort(spans, (size_t)f->n_tensors, sizeof *spans, cmp_span);
    uint64_t cursor = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const Span *s = &spans[i];
        const char *name = f->tensors[s->idx].name;
        if (s->end > data_len)
            return sm_err(msg, -EINVAL,
                          "tensor '%.64s': data_offsets [%llu,%llu] run past the %llu-byte data",
                          name, (unsigned long long)s->begin, (unsigned long long)s->end,
                          (unsigned long long)data_len);
        if (s->begin < cursor)
            return sm_err(msg, -EINVAL,
                          "tensor '%.64s': data_offsets [%llu,%llu] overlap bytes before %llu",
                          name, (unsigned long long)s->begin, (unsigned long long)s->end,
                          (unsigned long long)cursor);
        if (s->begin > cursor)
            return sm_err(msg, -EINVAL,
                          "tensor '%.64s': data_offsets [%llu,%llu] leave a gap after byte %llu",
                          name, (unsigned long long)s->begin, (unsigned long long)s->end,
                          (unsigned long long)cursor);
        cursor = s->end;
    }
    if (cursor != data_len)
        return sm_err(msg, -EINVAL, "%llu trailing bytes after the last tensor",
                      (unsigned long long)(data_len - cursor));
    return 0;
}

static uint64_t align_up(uint64_t n) {
    return (n + ST_ALIGN - 1) & ~(uint64_t)(ST_ALIGN - 1);
}

/* Copies each tensor into f->data at an ST_ALIGN boundary and points it there. */
static int copy_data(StFile *f, const Span *spans, const uint8_t *data, char *msg) {
    uint64_t total = 0;
    for (int i = 0; i < f->n_tensors; i++)
        total += align_up(spans[i].end - spans[i].begin); /* bounded by the input size */
    f->data = aligned_alloc(ST_ALIGN, total > 0 ? (size_t)total : ST_ALIGN);
    if (!f->data)
        return sm_err(msg, -ENOMEM, "out of memory for %llu bytes of tensors",
                      (unsigned long long)total);
    uint8_t *p = f->data;
    for (int i = 0; i < f->n_tensors; i++) {
        const Span *s = &spans[i];
        size_t nbytes = (size_t)(s->end - s->begin);
        if (nbytes > 0)
            memcpy(p, data + s->begin, nbytes);
        f->tensors[s->idx].data = (const float *)(void *)p;
        p += align_up(nbytes);
    }
    return 0;
}

static int parse_buffer(const uint8_t *buf, size_t len, StFile **out, char *msg) {
    int rc = 0;
    size_t header_len = 0;
    Span *spans = NULL;
    StFile *f = NULL;
    *out = NULL;
    if (!buf && len > 0)
        return sm_err(msg, -EINVAL, "no input");
    if ((rc = parse_prefix(buf, len, &header_len, msg)) < 0)
        return rc;
    const uint8_t *data = buf + 8 + header_len;
    size_t data_len = len - 8 - header_len;
    if (!(f = calloc(1, sizeof *f)))
        return sm_err(msg, -ENOMEM, "out of memory");
    if ((rc = parse_json(f, buf + 8, header_len, msg)) < 0 ||
        (rc = parse_entries(f, &spans, msg)) < 0 ||
        (rc = check_layout(f, spans, data_len, msg)) < 0 ||
        (rc = copy_data(f, spans, data, msg)) < 0)
        goto out;
    /* The spans tile the data section, so hashing it hashes the tensors in order. */
    st_sha256_hex(data, data_len, f->fingerprint);
    const char *stored = st_meta(f, ST_FINGERPRINT_KEY);
    if (stored && strcasecmp(stored, f->fingerprint) != 0)
        rc = sm_err(msg, -EBADMSG, "fingerprint mismatch: file is corrupt");
out:
    free(spans);
    if (rc < 0)
        st_free(f);
    else
        *out = f;
    return rc;
}

int st_parse(const uint8_t *buf, size_t len, StFile **out, char *err) {
    char msg[SM_ERRMAX];
    int rc = parse_buffer(buf, len, out, msg);
    return rc < 0 ? sm_err(err, rc, "safetensors: %s", msg) : 0;
}

int st_read(const char *path, size_t max_bytes, StFile **out, char *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    char msg[SM_ERRMAX];
    *out = NULL;
    int rc = sm_read_file(path, max_bytes, &buf, &len, err);
    if (rc < 0)
        return rc;
    rc = parse_buffer(buf, len, out, msg);
    /* A safetensors file opens with its header length and the header's '{'. */
    int looks = len > 8 && buf[8] == '{';
    free(buf);
    if (rc < 0 && !looks)
        return sm_err(err, rc, "%s: not a safetensors file (%s)", path, msg);
    return rc < 0 ? sm_err(err, rc, "%s: %s", path, msg) : 0;
}

void st_free(StFile *f) {
    if (!f)
        return;
    cJSON_Delete(f->header);
    free(f->tensors);
    free(f->meta);
    free(f->data);
    free(f);
}

int st_n_tensors(const StFile *f) {
    return f->n_tensors;
}

const StTensor *st_tensor(const StFile *f, int i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *st_meta(const StFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

const char *st_fingerprint(const StFile *f) {
    return f->fingerprint;
}
