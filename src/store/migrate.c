/* migrate.c: not written yet */
#include "siamese/common.h"
