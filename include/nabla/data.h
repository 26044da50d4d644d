/* nabla/data.h — IDX/CSV readers, standardization, splits, batch iterators.
 *
 * Everything here works without a context: tensors returned are long-lived (free them with
 * nb_tensor_free), failures return NULL or a status and set the thread-local error
 * (nb_last_status / nb_last_error). Malformed, truncated or hostile files give NB_ERR_FORMAT,
 * unreadable ones NB_ERR_IO; a reader never allocates more than the file really holds.
 *
 * A typical training script:
 *
 *   nb_mnist d;
 *   nb_image_opts io = {.standardize = true};             // mean/std computed on train
 *   if (nb_fashion_mnist_load(NULL, &io, &d)) { fprintf(stderr, "%s\n", nb_last_error()); return 1; }
 *   nb_tensor *xtr, *ytr, *xva, *yva;                     // 55000 train / 5000 validation
 *   nb_split(d.train_x, d.train_y, 5000, 42, &xtr, &ytr, &xva, &yva);
 *   nb_batcher *it = nb_batcher_new(xtr, ytr, &(nb_batch_opts){.batch_size = 64, .shuffle = true, .seed = 1});
 *   for (int epoch = 0; epoch < 10; epoch++) {
 *       nb_batch b;
 *       nb_batcher_start(it, epoch);
 *       while (nb_batcher_next(it, &b)) {
 *           nb_tensor *loss = nb_cross_entropy(ctx, forward(ctx, b.x), b.y, NB_REDUCE_MEAN); // b.x (n,784)
 *           ...; nb_ctx_reset(ctx);
 *       }
 *   }
 *   nb_batcher_free(it); nb_mnist_free(&d); ...
 *
 * Full-batch gradient descent, SGD with one sample and mini-batches are the same loop with
 * batch_size = N, 1 or B.
 */
#ifndef NABLA_DATA_H
#define NABLA_DATA_H

#include "graph.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- size cap of the readers ---------------------------------------------------------------- *
 * A small file can claim, or decompress to, a huge payload (a 1 MB gzip IDX file may expand to
 * 1 GiB, i.e. 5 GiB of buffers and floats). Every reader — nb_idx_load_images/labels,
 * nb_csv_load, nb_safetensors_load, nb_safetensors_load_params, nb_checkpoint_load — therefore
 * refuses, with NB_ERR_FORMAT naming the cap, a file whose tensors and read buffers would take
 * more than the cap, before allocating them. The default is NB_READ_LIMIT_DEFAULT (2 GiB, about
 * ten times Fashion-MNIST as floats). Raise or remove it (0 = no cap) with nb_set_read_limit,
 * e.g. nb_set_read_limit((size_t)16 << 30) before loading a 10 GB model. The cap is
 * process-wide and may be changed from any thread. */
#define NB_READ_LIMIT_DEFAULT ((size_t)2 << 30)
/* Set the cap in bytes (0 = unlimited); returns the previous value. */
size_t nb_set_read_limit(size_t max_bytes);
size_t nb_read_limit(void);

/* ---- IDX files (MNIST, Fashion-MNIST), gzip-compressed or plain --------------------------- */
typedef struct {
    bool nchw;          /* images as (N, 1, rows, cols); default (N, rows*cols) */
    bool standardize;   /* after scaling to [0,1]: x = (x - mean) / std */
    double mean, std;   /* in/out: used when std > 0, else computed from the data (one mean and
                           std over all pixels) and written back, so the same values can be
                           passed when loading the test set; images all of one value give
                           std 0, written back as 1 (centred, not divided by 0); an empty
                           file has no statistics: NB_ERR_SHAPE unless std > 0 is given */
} nb_image_opts;

/* Read an IDX image file (magic 0x00000803: unsigned bytes, 3 dims N, rows, cols) into a new F32
 * tensor with values in [0,1] (or standardized), shape (N, rows*cols) or (N, 1, rows, cols).
 * opts may be NULL (flat, unscaled [0,1]). Errors: NB_ERR_IO (cannot open), NB_ERR_FORMAT (wrong
 * magic / data type / number of dims, truncated data, trailing bytes, size over 4 GiB). */
nb_tensor *nb_idx_load_images(const char *path, nb_image_opts *opts);

/* Read an IDX label file (magic 0x00000801, 1 dim N) into a new I64 tensor (N). When
 * num_classes > 0 every label must be in [0, num_classes) (else NB_ERR_FORMAT naming the index). */
nb_tensor *nb_idx_load_labels(const char *path, int64_t num_classes);

/* Write an IDX file of unsigned bytes (magic 0x0800 + ndim, big-endian dims), gzip-compressed
 * when gzip is true (needs zlib). For tests and small tools. */
nb_status nb_idx_save_u8(const char *path, bool gzip, int ndim, const int64_t *dims, const uint8_t *data);

/* The four Fashion-MNIST files as long-lived tensors (free with nb_mnist_free). */
typedef struct {
    nb_tensor *train_x, *train_y;   /* (60000, 784) or (60000,1,28,28) F32, (60000) I64 */
    nb_tensor *test_x, *test_y;     /* (10000, ...) F32, (10000) I64; labels in 0..9 */
} nb_mnist;

#define NB_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
/* Load {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from dir (NULL: the environment
 * variable NABLA_FASHION_MNIST_DIR, else NB_FASHION_MNIST_DIR). With opts->standardize and
 * opts->std <= 0 the mean/std are computed on the training images, written back to opts and
 * applied to both sets. On error *out is all NULL; a missing file gives NB_ERR_IO with a
 * message naming the Debian package dataset-fashion-mnist. */
nb_status nb_fashion_mnist_load(const char *dir, nb_image_opts *opts, nb_mnist *out);
void nb_mnist_free(nb_mnist *m);   /* frees the four tensors and sets them to NULL */

/* ---- CSV ---------------------------------------------------------------------------------- */
typedef struct {
    char delimiter;    /* 0 means ',' */
    bool header;       /* skip the first non-empty line */
    nb_dtype dtype;    /* of the result (default NB_F32) */
} nb_csv_opts;

/* Read a numeric table into a new tensor (rows, cols). Blank lines and lines starting with '#'
 * are skipped, CRLF is fine, fields may be surrounded by spaces. opts may be NULL. An NB_I64
 * table reads integers exactly (all of the i64 range, not through a double); a field such as
 * "3.0" or "1e3" is taken when it is an integer below 2^53, "2.5" is an error. Errors:
 * NB_ERR_IO, NB_ERR_FORMAT with line and column ("line 7, column 3: 'abc' is not a number",
 * "line 9 has 4 columns, expected 5"), also for an empty table. */
nb_tensor *nb_csv_load(const char *path, const nb_csv_opts *opts);

/* ---- preprocessing ------------------------------------------------------------------------ */
/* Mean and (population) standard deviation over all elements of a float tensor. */
nb_status nb_mean_std(const nb_tensor *x, double *mean, double *std);
/* In place: x = (x - mean) / std (std > 0), for F32/F64 tensors. */
nb_status nb_standardize(nb_tensor *x, double mean, double std);

/* ---- rows and splits (seeded permutations: nb_rng_permutation in tensor.h) --------------- */
/* A new long-lived tensor holding rows idx[0..n) of x along its first dim (any dtype, any
 * strides). Errors: NB_ERR_INDEX for an index outside [0, x->shape[0]). */
nb_tensor *nb_take_rows(const nb_tensor *x, const int64_t *idx, int64_t n);

/* Split (x, y) along the first dim into n_val validation rows and N - n_val training rows.
 * seed == 0: the last n_val rows are validation (as in Keras); otherwise a random subset given
 * by nb_rng_permutation(nb_rng_new(seed)): its last n_val entries. Both parts keep the original
 * relative order of the rows. y may be NULL (then *y_train and *y_val are set to NULL). All
 * four outputs are new long-lived tensors; on error all are NULL. Errors: NB_ERR_SHAPE (first
 * dims differ), NB_ERR_VALUE (n_val outside [0, N]). */
nb_status nb_split(const nb_tensor *x, const nb_tensor *y, int64_t n_val, uint64_t seed, nb_tensor **x_train,
                   nb_tensor **y_train, nb_tensor **x_val, nb_tensor **y_val);

/* ---- batch iterator ----------------------------------------------------------------------- */
typedef struct {
    int64_t batch_size;  /* samples per batch on this rank (> 0); the global batch is
                            batch_size * world_size */
    bool shuffle;        /* a new seeded order every epoch, the same on every rank */
    bool drop_last;      /* skip a last global batch that is not full */
    uint64_t seed;
    int rank, world_size;  /* data-parallel shard (0, 1 for one process; world_size 0 means 1) */
} nb_batch_opts;

typedef struct {
    nb_tensor *x, *y;      /* this rank's samples: (n, ...) and (n, ...); y NULL without labels.
                              Owned by the iterator, overwritten by the next batch, do not free */
    int64_t n;             /* samples in this shard; 0 only when a short last global batch has
                              fewer samples than ranks */
    int64_t global_n;      /* samples in the global batch over all ranks (weight rank gradients
                              by n / global_n to get the global-batch mean) */
    int64_t index;         /* batch number within the epoch, from 0 */
    const int64_t *idx;    /* the n sample indices (rows of the data set) of this shard */
} nb_batch;

typedef struct nb_batcher nb_batcher;

/* An iterator over (x, y) (y may be NULL) that copies each batch into two long-lived tensors
 * allocated here once: no malloc per batch. Global batch k of an epoch is elements
 * [k*G, k*G + G) of the epoch's order (G = batch_size * world_size); rank r gets the r-th of R
 * contiguous pieces of its g samples (batch_size each; for a short last batch g/R, the first g%R
 * ranks one more), so R ranks with batch B see exactly the samples that one process with batch
 * R*B sees. Order and pieces are those of nb_dist_permutation / nb_dist_shard (dist.h), so the
 * batcher can feed an MPI trainer directly. The data tensors must outlive the iterator.
 * Errors (NULL): NB_ERR_NULL, NB_ERR_SHAPE (first dims differ, scalar x), NB_ERR_VALUE. */
nb_batcher *nb_batcher_new(const nb_tensor *x, const nb_tensor *y, const nb_batch_opts *opts);
void nb_batcher_free(nb_batcher *b);
/* Begin epoch `epoch`: with shuffle its order is nb_dist_permutation(seed, epoch, N), which
 * depends only on seed and epoch (the same on every rank, and training can resume). */
void nb_batcher_start(nb_batcher *b, int64_t epoch);
/* Fill *out with the next batch of the epoch; false when the epoch is over. Starts epoch 0
 * if nb_batcher_start was never called. */
bool nb_batcher_next(nb_batcher *b, nb_batch *out);
/* Global batches per epoch (same on every rank). */
int64_t nb_batcher_num_batches(const nb_batcher *b);

#ifdef __cplusplus
}
#endif
#endif
