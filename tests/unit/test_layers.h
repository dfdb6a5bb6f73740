/* test_layers.h — the layers executable's second file (convolution, pooling,
 * flatten) registers its tests here. */
#ifndef TEST_LAYERS_H
#define TEST_LAYERS_H

#include <check.h>

void add_conv_tests(TCase *tc);

#endif
