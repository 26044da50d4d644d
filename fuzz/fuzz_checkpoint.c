/* Checkpoint loader on arbitrary bytes into a fixed model: Adam, early stopping, 3 parameters.
 * Fuzzing builds skip the checksum comparison (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION), so
 * the fuzzer reaches the metadata and state validation behind it. A load that succeeds must
 * leave a state a training step accepts. */
#include "fuzz_common.h"

static nb_params *ps;
static nb_optim *opt;
static nb_early_stop es;
static nb_train_state st;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_init();
    ps = nb_params_new();
    nb_params_add(ps, "w1", NB_SHAPE(4, 3));
    nb_params_add(ps, "b1", NB_SHAPE(4));
    nb_params_add(ps, "w2", NB_SHAPE(2, 4));
    opt = nb_optim_new(&nb_adam, ps, NULL);
    if (!opt || nb_early_stop_init(&es, ps, NB_MODE_MIN, 3, 0.0, true) != NB_OK) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write(data, size, ".ckpt");
    if (nb_checkpoint_load(p, ps, opt, &es, &st) == NB_OK) {
        if (opt->step < 0 || st.n_values < 0 || st.n_values > NB_CHECKPOINT_MAX_VALUES || es.wait < 0) abort();
        nb_params_zero_grad(ps);
        if (nb_optim_step(opt) != NB_OK) abort(); /* validated on load: a step must be possible */
        nb_early_stop_update(&es, 1.0);
        nb_optim_reset(opt);
    }
    return 0;
}
