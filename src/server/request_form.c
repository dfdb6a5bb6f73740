/*
 * request_form.c — the parsed form both body parsers fill (request.c for
 * multipart, request_json.c for JSON): its storage and accessors, and the
 * checks on names and text both parsers apply.
 */
#include "request_int.h"

#include "siamese/common.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct ReqForm {
    ReqField *fields; /* n used of cap; every pointer in them is owned */
    int n, cap;
};

bool req_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

int req_check_known(const ReqLim *lim, const char *name, char *err) {
    for (const char *const *n = lim->fields; n && *n; n++)
        if (strcmp(*n, name) == 0)
            return 0;
    return lim->fields ? sm_err(err, -ENOENT, "unknown field '%.64s'", name) : 0;
}

bool req_is_image(const ReqLim *lim, const char *name) {
    for (const char *const *n = lim->image_fields; n && *n; n++)
        if (strcmp(*n, name) == 0)
            return true;
    return false;
}

int req_check_name(const char *name, size_t len, char *err) {
    if (len == 0)
        return sm_err(err, -EINVAL, "empty field name");
    if (len > REQ_MAX_NAME)
        return sm_err(err, -EINVAL, "field name longer than %d bytes", REQ_MAX_NAME);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
            return sm_err(err, -EINVAL, "field name with a byte outside visible ASCII");
    return 0;
}

int req_check_text(const ReqLim *lim, const char *name, const uint8_t *data, size_t len,
                   char *err) {
    if (len > lim->max_text)
        return sm_err(err, -E2BIG, "field '%.64s' is longer than %zu bytes", name, lim->max_text);
    if (!req_utf8_valid(data, len))
        return sm_err(err, -EINVAL, "field '%.64s' is not valid UTF-8", name);
    return 0;
}

/* ---- the form ------------------------------------------------------------ */

int req_form_add(ReqForm *f, const ReqLim *lim, char *name, uint8_t *data, size_t len, char *ctype,
                 char *fname, char *err) {
    int rc = 0;
    if (f->n >= lim->max_parts) {
        rc = sm_err(err, -E2BIG, "more than %d fields", lim->max_parts);
        goto out;
    }
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 8;
        ReqField *grown = realloc(f->fields, (size_t)cap * sizeof *grown);
        if (!grown) {
            rc = sm_err(err, -ENOMEM, "out of memory");
            goto out;
        }
        f->fields = grown;
        f->cap = cap;
    }
    f->fields[f->n++] = (ReqField){name, data, len, ctype, fname};
out:
    if (rc < 0) {
        free(name);
        free(data);
        free(ctype);
        free(fname);
    }
    return rc;
}

void req_free(ReqForm *f) {
    if (!f)
        return;
    for (int i = 0; i < f->n; i++) {
        free((char *)f->fields[i].name);
        free((uint8_t *)f->fields[i].data);
        free((char *)f->fields[i].content_type);
        free((char *)f->fields[i].filename);
    }
    free(f->fields);
    free(f);
}

int req_n_fields(const ReqForm *f) {
    return f ? f->n : 0;
}

const ReqField *req_field(const ReqForm *f, int i) {
    return f && i >= 0 && i < f->n ? &f->fields[i] : NULL;
}

int req_count(const ReqForm *f, const char *name) {
    int n = 0;
    for (int i = 0; f && name && i < f->n; i++)
        n += strcmp(f->fields[i].name, name) == 0;
    return n;
}

const ReqField *req_get(const ReqForm *f, const char *name, int idx) {
    for (int i = 0; f && name && idx >= 0 && i < f->n; i++)
        if (strcmp(f->fields[i].name, name) == 0 && idx-- == 0)
            return &f->fields[i];
    return NULL;
}

const char *req_text(const ReqForm *f, const char *name) {
    const ReqField *fl = req_get(f, name, 0);
    if (!fl || memchr(fl->data, 0, fl->len))
        return NULL;
    return (const char *)fl->data;
}

void *req_dup(const void *src, size_t len) {
    uint8_t *d = malloc(len + 1);
    if (d) {
        if (len)
            memcpy(d, src, len);
        d[len] = 0;
    }
    return d;
}

ReqForm *req_form_new(void) {
    return calloc(1, sizeof(ReqForm));
}
