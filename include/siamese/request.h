/*
 * request.h — a request body, already read whole into memory, as named fields.
 *
 * The daemon accumulates a POST body (with its own size cap) and hands it to
 * req_parse() together with the raw Content-Type header. Two encodings are
 * understood, and both yield the same thing: a list of fields, each a name
 * and bytes, in body order, where a name may repeat (several images under one
 * name, e.g. for enrolment).
 *
 *   multipart/form-data; boundary=B   (RFC 7578 over RFC 2046)
 *       Each part needs Content-Disposition: form-data; name="N", and may
 *       carry filename="F" and a Content-Type, which are recorded. Preamble and
 *       epilogue are ignored. Lines end in CRLF; a body whose first delimiter
 *       line ends in a bare LF is read with LF line ends throughout. The close
 *       delimiter "--B--" is required: a body without it was truncated.
 *
 *   application/json [; charset=utf-8]
 *       One JSON object. Members named in ReqLimits.image_fields hold images
 *       as base64 text (standard or URL-safe alphabet, padding optional,
 *       whitespace ignored, an optional "data:<type>;base64," prefix whose
 *       <type> becomes the field's content type), either one string or an
 *       array of strings (one field per element, in order). Other members
 *       become text fields: strings as their text, anything else as the
 *       body spells it, whitespace around it trimmed ("k": 5 gives "5",
 *       1234567890123456789 stays that, objects keep their inner spacing).
 *       A number with a leading zero (01, -007) is refused. null means
 *       absent; an empty image array likewise yields no field. Duplicate
 *       keys (at any depth) are rejected, as are invalid UTF-8, raw control
 *       characters in strings and the escape \u0000 (which cJSON would
 *       silently truncate at).
 *
 * Fields not named in image_fields are text: at most max_text bytes, valid
 * UTF-8 (in multipart too). Image fields are binary and bounded only by the
 * body. Field names are 1..REQ_MAX_NAME bytes of visible ASCII (0x21..0x7E),
 * so that error messages may quote them; filenames are UTF-8 without control
 * characters.
 *
 * Results of req_parse():
 *   0                 *out holds the form (free with req_free()).
 *   -EPROTONOSUPPORT  no Content-Type, or a type other than the two above
 *                     (also multipart/other-than-form-data, a JSON charset
 *                     other than UTF-8): the daemon answers 415.
 *   -EINVAL           malformed: bad boundary parameter, truncated body, part
 *                     without Content-Disposition or name, bad JSON, JSON
 *                     not an object or nested deeper than max_json_depth,
 *                     duplicate keys, bad base64, invalid UTF-8 ...: 400.
 *   -ENOENT           a field not among lim->fields (found as soon as its name
 *                     is read, before its value is checked): 400 unknown_field.
 *   -E2BIG            a limit on counts or sizes: more than max_parts fields,
 *                     more than max_json_values JSON values, a text field
 *                     over max_text, a part header line over max_header_line,
 *                     more than REQ_MAX_PART_HEADERS headers in a part: 413.
 *   -ENOMEM           out of memory.
 * On failure *out is NULL and err names the problem (field or part number).
 * JSON depth and value counts are checked by a non-recursive scan before cJSON
 * sees the text, so cJSON's recursion is bounded by max_json_depth.
 *
 * Ownership: the form copies everything it needs; the body may be freed as
 * soon as req_parse() returns. Image bytes exist once in the form (multipart:
 * copied out of the body; JSON: decoded from base64, the cJSON copy of the
 * text released as each image is decoded). Every pointer handed out by the
 * accessors is borrowed from the form and valid until req_free().
 */
#ifndef SIAMESE_REQUEST_H
#define SIAMESE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

typedef struct ReqForm ReqForm;

typedef struct {
    const char *name;    /* 1..REQ_MAX_NAME bytes of visible ASCII */
    const uint8_t *data; /* len bytes, then a NUL not counted in len */
    size_t len;
    const char *content_type; /* part Content-Type or data: URL type; may be NULL */
    const char *filename;     /* multipart filename parameter; may be NULL */
} ReqField;

/* Defaults used for a ReqLimits member left at 0 (or for lim == NULL). */
#define REQ_DEFAULT_MAX_PARTS 64
#define REQ_DEFAULT_MAX_JSON_DEPTH 32
#define REQ_DEFAULT_MAX_JSON_VALUES 10000
#define REQ_DEFAULT_MAX_HEADER_LINE 1024
#define REQ_DEFAULT_MAX_TEXT 65536

#define REQ_MAX_NAME 256        /* bytes in a field name */
#define REQ_MAX_PART_HEADERS 16 /* header lines in one multipart part */

typedef struct {
    int max_parts;                   /* fields in the form (each array element counts) */
    int max_json_depth;              /* nesting of objects and arrays; the body object is 1 */
    int max_json_values;             /* JSON values in the whole body, at any depth */
    size_t max_header_line;          /* bytes of one part header line, without its line end */
    size_t max_text;                 /* bytes of one text field */
    const char *const *image_fields; /* NULL-terminated names of image fields; may be NULL */
    const char *const *fields;       /* NULL-terminated names the caller takes; NULL: any */
} ReqLimits;

/* Parses body (len bytes, need not be NUL-terminated; may be NULL when len is
 * 0) as described above. content_type is the raw header value or NULL. lim
 * may be NULL (all defaults, no image fields). Returns 0 with *out set, or
 * a negative errno with *out NULL and err filled. */
int req_parse(const char *content_type, const uint8_t *body, size_t len, const ReqLimits *lim,
              ReqForm **out, char *err);

/* Frees the form and everything in it. NULL is fine. */
void req_free(ReqForm *f);

/* Number of fields, all names together (0 for NULL). */
int req_n_fields(const ReqForm *f);

/* Field i (0 <= i < req_n_fields) in body order, or NULL when out of range.
 * The way to walk every field, e.g. to refuse names a route does not know. */
const ReqField *req_field(const ReqForm *f, int i);

/* Number of fields called name (exact, case-sensitive). */
int req_count(const ReqForm *f, const char *name);

/* The idx-th field called name (0-based, body order), or NULL if absent. */
const ReqField *req_get(const ReqForm *f, const char *name, int idx);

/* The first field called name as a C string, or NULL if absent or if its
 * data contains a NUL byte. */
const char *req_text(const ReqForm *f, const char *name);

/* Validates a query-string value as a strict decimal integer: optional '-'
 * then 1..19 ASCII digits, nothing else (no '+', spaces, hex or exponent),
 * within [lo, hi]. Returns 0 with *out set; SM_ABSENT (1) when s is NULL (the
 * parameter was not given; *out untouched); -EINVAL when s is not such a
 * number, -ERANGE when it is outside [lo, hi] (err filled, without the
 * parameter's name, which the caller adds). */
int req_query_int(const char *s, long lo, long hi, long *out, char *err);

/* Checks that text (len bytes) is one JSON object that a JSON body would
 * accept: valid UTF-8, nested at most max_depth deep, at most max_values
 * values, no duplicate keys, nothing after it. For JSON carried inside a
 * field (e.g. enroll metadata). 0, or -EINVAL / -E2BIG with err. */
int req_json_object_check(const char *text, size_t len, int max_depth, int max_values, char *err);

#endif
