/*
 * fuzz_route.c — fuzz target for what the daemon makes of a request target:
 * route_unescape() (libmicrohttpd's unescape callback) and then
 * route_match(). The first byte picks the method, the rest is the target.
 *
 * Contracts checked: unescaping never lengthens the text, returns its new
 * length (no NUL inside it: %00 stays escaped), and never creates a '/' (an
 * escaped one stays escaped, so the segments are the ones sent); every
 * target matches some route; the 404/405 answer for the ones no handler
 * takes is JSON of the documented shape, valid UTF-8, ending in a newline.
 */
#include "fuzz.h"
#include "siamese/common.h"
#include "src/server/routes.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static size_t count(const char *s, size_t n, char c) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

/* 1 if the len bytes at s are well-formed UTF-8 (simple check, no NUL). */
static int utf8_ok(const unsigned char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        size_t n = s[i] < 0x80 ? 1 : (s[i] & 0xe0) == 0xc0 ? 2 : (s[i] & 0xf0) == 0xe0 ? 3 : 4;
        if (s[i] == 0 || (s[i] & 0xf8) == 0xf8 || (s[i] & 0xc0) == 0x80 || i + n > len)
            return 0;
        for (size_t k = 1; k < n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += n;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE", "PUT", "OPTIONS"};
    if (size < 1 || size > 4096)
        return 0;
    const char *method = methods[data[0] % SM_ARRAY_LEN(methods)];
    size_t n = strnlen((const char *)data + 1, size - 1);
    char *s = malloc(n + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, data + 1, n);
    s[n] = 0;
    size_t slashes = count(s, n, '/');
    size_t len = route_unescape(NULL, NULL, s);
    FUZZ_CHECK(len <= n);
    FUZZ_CHECK(strlen(s) == len);
    FUZZ_CHECK(count(s, len, '/') == slashes);
    const Route *r = route_match(method, s);
    FUZZ_CHECK(r != NULL);
    if (strcmp(route_name(r), "other") == 0) {
        HttpReq req = {.method = method, .path = s, .body = (const uint8_t *)""};
        Reply rep = {0};
        route_handle(NULL, r, &req, &rep);
        FUZZ_CHECK(rep.status == 404 || rep.status == 405);
        FUZZ_CHECK(rep.body && rep.len > 0 && rep.body[rep.len - 1] == '\n');
        FUZZ_CHECK(utf8_ok((const unsigned char *)rep.body, rep.len));
        cJSON *j = cJSON_Parse(rep.body);
        FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")));
        cJSON_Delete(j);
        free(rep.body);
    }
    free(s);
    return 0;
}
