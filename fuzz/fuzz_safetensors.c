/* safetensors reader on arbitrary bytes; what loads must be self-consistent and save again. */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write(data, size, ".safetensors");
    nb_tensor_list *l = nb_safetensors_load(p);
    if (!l) return 0;
    for (int i = 0; i < l->n; i++) {
        if (nb_tensor_list_find(l, l->names[i]) != l->tensors[i]) abort(); /* names are unique */
        double s = 0; /* read the data (ASan checks the bounds) */
        for (int64_t k = 0; k < l->tensors[i]->numel && k < 64; k++) s += nb_get(l->tensors[i], k);
        if (s == 12345.678) fputc(' ', stderr);
    }
    for (int i = 0; i < l->nmeta; i++) /* keys are unique too */
        if (nb_tensor_list_meta(l, l->meta_keys[i]) != l->meta_values[i]) abort();
    nb_tensor_list_free(l);
    return 0;
}
