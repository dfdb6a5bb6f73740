/*
 * subject_id.c — the one rule for subject ids (store.h). Its own file because
 * both the index and the store's row checks stand on it, and the row checks
 * also load the index: kept in rows.c, the two would call each other.
 */
#include "siamese/store.h"

#include <stddef.h>

int store_subject_id_valid(const char *id) {
    if (!id)
        return 0;
    size_t n = 0;
    for (; id[n]; n++) {
        char c = id[n];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
        if (!ok || n >= STORE_SUBJECT_MAX)
            return 0;
    }
    return n > 0;
}
