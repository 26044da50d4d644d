/* IDX reader (images and labels, gzip or plain) on arbitrary bytes. */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write(data, size, ".idx");
    nb_image_opts o = {.nchw = size & 1, .standardize = size & 2};
    nb_tensor_free(nb_idx_load_images(p, &o));
    nb_tensor_free(nb_idx_load_labels(p, (int64_t)(size % 11)));
    return 0;
}
