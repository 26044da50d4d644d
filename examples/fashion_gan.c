/* A small GAN on Fashion-MNIST: an MLP generator maps 64-d Gaussian noise to 28x28 images in
 * [-1, 1] (tanh), an MLP discriminator (LeakyReLU, dropout) scores images as real or fake. Each
 * network has its own parameters and its own Adam (lr 2e-4, beta1 0.5, as in DCGAN); they are
 * trained in turn with the non-saturating logistic loss. Every --sample-every epochs a PNG grid of
 * 64 samples from fixed noise is written (out/fashion_gan_epochNNN.png).
 *
 * --gp LAMBDA adds WGAN-GP's gradient penalty to the discriminator's loss:
 * LAMBDA * mean (||d D(x_hat) / d x_hat|| - 1)^2 at random points x_hat between real and fake
 * images. The input gradient is built with create_graph, so the penalty is differentiated again
 * w.r.t. the discriminator's weights (nb_gradient_penalty).
 *
 *   build/fashion_gan                            # 20 epochs over 60000 images
 *   build/fashion_gan --epochs 5 --gp 10
 */
// ci-args: --subset 2000 --epochs 2 --sample-every 1 --gp 1 --threads 1
#include "example_util.h"

enum { ZDIM = 64 };

/* z (N, 64) -> images (N, 784) in [-1, 1] */
static nb_module *generator(nb_model *m, int64_t h) {
    return nb_sequential(m, "G", NB_MODULES(
        nb_linear_module(m, (nb_linear_opts){.in = ZDIM, .out = h}), nb_leaky_relu_module(m, NULL, 0.2),
        nb_linear_module(m, (nb_linear_opts){.in = h, .out = 2 * h}), nb_leaky_relu_module(m, NULL, 0.2),
        nb_linear_module(m, (nb_linear_opts){.in = 2 * h, .out = 784}), nb_tanh_module(m, NULL)));
}

/* images (N, 784) -> logits (N, 1): real > 0 > fake. Dropout only in train mode. */
static nb_module *discriminator(nb_model *m, int64_t h) {
    return nb_sequential(m, "D", NB_MODULES(
        nb_linear_module(m, (nb_linear_opts){.in = 784, .out = 2 * h}), nb_leaky_relu_module(m, NULL, 0.2),
        nb_dropout_module(m, NULL, 0.3),
        nb_linear_module(m, (nb_linear_opts){.in = 2 * h, .out = h}), nb_leaky_relu_module(m, NULL, 0.2),
        nb_dropout_module(m, NULL, 0.3),
        nb_linear_module(m, (nb_linear_opts){.in = h, .out = 1})));
}

/* Write G(z_fixed) as an 8x8 grid (eval mode, no graph). */
static nb_status save_samples(nb_ctx *ctx, const nb_module *G, nb_tensor *z_fixed, const char *path) {
    nb_status s;
    nb_ctx_set_train(ctx, false);
    NB_NO_GRAD(ctx) {
        nb_tensor *img = nb_affine(ctx, nb_module_forward(ctx, G, z_fixed), 0.5, 0.5); /* [-1, 1] -> [0, 1] */
        s = img ? nb_png_grid(path, img, 8, 2) : nb_ctx_status(ctx);
    }
    nb_ctx_set_train(ctx, true);
    nb_ctx_reset(ctx);
    return s;
}

int main(int argc, char **argv) {
    int64_t subset = 0, epochs = 20, batch = 64, hidden = 256, sample_every = 5, threads = 0, seed = 1;
    double lr = 2e-4, gp = 0;
    const char *data = NULL, *prefix = "out/fashion_gan";
    const ex_opt opts[] = {
        EX_SUBSET(&subset),
        EX_EPOCHS(&epochs),
        EX_BATCH(&batch),
        EX_LR(&lr, "learning rate of both Adams"),
        {"--hidden", EX_INT, &hidden, 1, 65536, "G: 64 -> H -> 2H -> 784, D: 784 -> 2H -> H -> 1"},
        {"--gp", EX_REAL, &gp, 0, 1e6, "weight of the gradient penalty on D (0: none)"},
        {"--sample-every", EX_INT, &sample_every, 1, 10000, "write a PNG of samples every this many epochs"},
        EX_THREADS(&threads),
        EX_SEED(&seed),
        EX_DATA(&data),
        {"--out", EX_STR, &prefix, 0, 0, "prefix of the PNG files"},
    };
    if (!ex_parse(argc, argv, "fashion_gan", opts, (int)(sizeof opts / sizeof opts[0]))) return 2;
    char first_png[4096]; /* the files are prefix_epochNNN.png: check where the first one goes */
    if (snprintf(first_png, sizeof first_png, "%s_epoch001.png", prefix) >= (int)sizeof first_png)
        return fprintf(stderr, "fashion_gan: --out: prefix too long\n"), 2;
    if (!ex_prepare_output("fashion_gan", first_png)) return 2;
    if (threads) nb_set_num_threads((int)threads);

    ex_data d; /* (N, 784) in [0, 1], rescaled to [-1, 1] per batch; no validation split needed */
    if (!ex_load("fashion_gan", data, false, false, subset, 0, 64, (uint64_t)seed, &d)) return 1;
    if (d.x_train->shape[0] < batch) { /* whole batches only (drop_last): not one step would run */
        fprintf(stderr, "fashion_gan: %lld training images are fewer than one batch of %lld (--subset, --batch)\n",
                (long long)d.x_train->shape[0], (long long)batch);
        ex_data_free(&d);
        return 2;
    }
    printf("train %lld images; %d threads; gradient penalty %g\n", (long long)d.x_train->shape[0], nb_get_num_threads(),
           gp);

    /* two models (each with its own parameters) and two optimizers */
    nb_model *mg = nb_model_new((uint64_t)seed), *md = nb_model_new((uint64_t)seed + 1);
    nb_module *G = mg ? generator(mg, hidden) : NULL, *D = md ? discriminator(md, hidden) : NULL;
    if (!G || !D) return fprintf(stderr, "fashion_gan: %s\n", nb_last_error()), 1;
    nb_hparams hp = nb_adam.defaults;
    hp.lr = lr, hp.beta1 = 0.5;
    nb_optim *opt_g = nb_optim_new(&nb_adam, mg->ps, &hp), *opt_d = nb_optim_new(&nb_adam, md->ps, &hp);
    nb_ctx *ctx = nb_ctx_new();
    nb_ctx_seed(ctx, (uint64_t)seed); /* noise and dropout come from the context's generator */
    nb_tensor *z_fixed = nb_tensor_new(NB_F32, NB_SHAPE(64, ZDIM));
    nb_rng rng = nb_rng_new((uint64_t)seed);
    nb_rng_normal(&rng, z_fixed, 0, 1);
    nb_batcher *it = nb_batcher_new(d.x_train, NULL, &(nb_batch_opts){.batch_size = batch, .shuffle = true,
                                                                      .drop_last = true, .seed = (uint64_t)seed});
    if (!opt_g || !opt_d || !ctx || !it) return fprintf(stderr, "fashion_gan: %s\n", nb_last_error()), 1;
    printf("G: %lld parameters, D: %lld parameters\n", (long long)nb_params_numel(mg->ps), (long long)nb_params_numel(md->ps));

    double train_time = 0;
    int64_t seen = 0;
    for (int64_t epoch = 0; epoch < epochs; epoch++) {
        double t0 = ex_now(), sum_d = 0, sum_g = 0, sum_real = 0;
        int64_t steps = 0, epoch_n = 0;
        nb_batch b;
        nb_batcher_start(it, epoch);
        while (nb_batcher_next(it, &b)) {
            const int64_t n = b.n;
            nb_tensor *ones = nb_ones(ctx, NB_F32, NB_SHAPE(n, 1)), *zeros = nb_zeros(ctx, NB_F32, NB_SHAPE(n, 1));

            /* 1. discriminator step: real images -> 1, generated ones (constants here) -> 0 */
            nb_tensor *real = nb_affine(ctx, b.x, 2, -1), *fake;
            NB_NO_GRAD(ctx) { fake = nb_module_forward(ctx, G, nb_randn(ctx, NB_F32, NB_SHAPE(n, ZDIM))); }
            nb_tensor *d_real = nb_module_forward(ctx, D, real);
            nb_tensor *loss_d = nb_add(ctx, nb_bce_with_logits(ctx, d_real, ones, NB_REDUCE_MEAN),
                                       nb_bce_with_logits(ctx, nb_module_forward(ctx, D, fake), zeros, NB_REDUCE_MEAN));
            if (gp > 0) {
                /* x_hat = a*real + (1-a)*fake, a ~ U(0,1) per image: a leaf that requires grad */
                nb_tensor *a = nb_rand(ctx, NB_F32, NB_SHAPE(n, 1)), *x_hat;
                NB_NO_GRAD(ctx) { x_hat = nb_add(ctx, fake, nb_mul(ctx, a, nb_sub(ctx, real, fake))); }
                x_hat = nb_detach(ctx, x_hat);
                nb_requires_grad(x_hat, true);
                loss_d = nb_add(ctx, loss_d, nb_gradient_penalty(ctx, nb_module_forward(ctx, D, x_hat), x_hat, 1.0, gp));
            }
            nb_params_zero_grad(md->ps);
            if (!loss_d || nb_backward(ctx, loss_d, NULL) != NB_OK || nb_optim_step(opt_d) != NB_OK)
                return fprintf(stderr, "fashion_gan: %s%s\n", nb_ctx_error(ctx), nb_last_error()), 1;
            sum_d += nb_item(loss_d);
            for (int64_t i = 0; i < n; i++) sum_real += nb_get(d_real, i) > 0;
            nb_ctx_reset(ctx);

            /* 2. generator step: make D call fresh samples real (non-saturating loss). The
             * gradient also reaches D's parameters; D's step above zeroes them first. */
            ones = nb_ones(ctx, NB_F32, NB_SHAPE(n, 1));
            nb_tensor *loss_g =
                nb_bce_with_logits(ctx, nb_module_forward(ctx, D, nb_module_forward(ctx, G, nb_randn(ctx, NB_F32, NB_SHAPE(n, ZDIM)))),
                                   ones, NB_REDUCE_MEAN);
            nb_params_zero_grad(mg->ps);
            if (!loss_g || nb_backward(ctx, loss_g, NULL) != NB_OK || nb_optim_step(opt_g) != NB_OK)
                return fprintf(stderr, "fashion_gan: %s%s\n", nb_ctx_error(ctx), nb_last_error()), 1;
            sum_g += nb_item(loss_g);
            nb_ctx_reset(ctx);
            seen += n, epoch_n += n, steps++;
        }
        train_time += ex_now() - t0;
        printf("epoch %3lld  loss_D %.4f  loss_G %.4f  D(real) > 0 on %.1f%%  (%.1f s)\n", (long long)epoch + 1,
               sum_d / (double)steps, sum_g / (double)steps, 100 * sum_real / (double)epoch_n,
               ex_now() - t0);
        if ((epoch + 1) % sample_every == 0 || epoch + 1 == epochs) {
            char path[512];
            snprintf(path, sizeof path, "%s_epoch%03lld.png", prefix, (long long)epoch + 1);
            if (save_samples(ctx, G, z_fixed, path) != NB_OK)
                return fprintf(stderr, "fashion_gan: %s\n", nb_last_error()), 1;
            printf("wrote %s\n", path);
        }
        fflush(stdout);
    }
    printf("samples_per_sec=%.0f\n", (double)seen / train_time);

    nb_batcher_free(it);
    nb_optim_free(opt_g), nb_optim_free(opt_d);
    nb_model_free(mg), nb_model_free(md);
    nb_tensor_free(z_fixed);
    nb_ctx_free(ctx);
    ex_data_free(&d);
    return 0;
}
