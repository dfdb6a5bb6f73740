/*
 * request_int.h — what request_form.c (form storage), request.c
 * (Content-Type, multipart) and request_json.c (JSON bodies) share. Not part of the module's
 * contract.
 */
#ifndef SIAMESE_REQUEST_INT_H
#define SIAMESE_REQUEST_INT_H

#include "siamese/request.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ReqLimits with every default filled in. */
typedef struct {
    int max_parts, max_json_depth, max_json_values;
    size_t max_header_line, max_text;
    const char *const *image_fields;
    const char *const *fields; /* NULL: any */
} ReqLim;

/* True when len bytes at s are well-formed UTF-8 (no overlongs, surrogates
 * or code points past U+10FFFF). */
bool req_utf8_valid(const uint8_t *s, size_t len);

/* A malloc'ed copy of len bytes with a NUL after them, or NULL. */
void *req_dup(const void *src, size_t len);

/* True when name is listed in lim->image_fields. */
bool req_is_image(const ReqLim *lim, const char *name);

/* -ENOENT naming name unless lim->fields is NULL or lists it; else 0. */
int req_check_known(const ReqLim *lim, const char *name, char *err);

/* Checks a field name: 1..REQ_MAX_NAME bytes of visible ASCII. -EINVAL. */
int req_check_name(const char *name, size_t len, char *err);

/* Checks a text field (not an image): at most lim->max_text bytes (-E2BIG)
 * and UTF-8 (-EINVAL). */
int req_check_text(const ReqLim *lim, const char *name, const uint8_t *data, size_t len, char *err);

/* An empty form (free with req_free()), or NULL when out of memory. */
ReqForm *req_form_new(void);

/* Appends a field, taking ownership of the malloc'ed name, data (len bytes
 * plus a NUL at data[len]), ctype and fname (the last two may be NULL): they
 * are the form's on success and freed on failure. -E2BIG past
 * lim->max_parts fields, -ENOMEM. */
int req_form_add(ReqForm *f, const ReqLim *lim, char *name, uint8_t *data, size_t len, char *ctype,
                 char *fname, char *err);

/* Fills form f (empty, from request.c) from a JSON body. */
int req_parse_json(ReqForm *f, const ReqLim *lim, const uint8_t *body, size_t len, char *err);

#endif
