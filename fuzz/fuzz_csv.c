/* CSV reader on arbitrary bytes, with the three dtypes, a header and another delimiter. */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write(data, size, ".csv");
    static const nb_csv_opts opts[] = {{0, false, NB_F32}, {0, true, NB_I64}, {';', false, NB_F64}, {'\t', true, NB_I64}};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
        nb_tensor *t = nb_csv_load(p, &opts[i]);
        if (t && (t->ndim != 2 || t->numel != t->shape[0] * t->shape[1])) abort();
        nb_tensor_free(t);
    }
    return 0;
}
