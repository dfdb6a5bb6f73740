/*
 * train.h — the offline trainer: contrastive loss on balanced pairs, RMSprop
 * or Adam, then evaluation and threshold calibration.
 *
 * train_run() holds out a validation split of the training samples
 * (val_fraction per class), builds train/validation/test pairs as the
 * reference recipe does, trains for the configured epochs (printing one
 * line per epoch, and a live bar when the progress stream is a terminal),
 * picks the decision threshold that maximises accuracy on the validation
 * pairs (never on test), stores it and the training summary in the model,
 * and fills a report with the metrics of train and test pairs.
 *
 * Determinism: the same seed, data and thread count give bit-identical
 * weights (the RNG streams for pairs, shuffling, dropout and initialisation
 * are all derived from the seed).
 */
#ifndef SIAMESE_TRAIN_H
#define SIAMESE_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "siamese/dataset.h"
#include "siamese/metrics.h"
#include "siamese/model.h"
#include "siamese/pairs.h"

typedef enum { OPT_RMSPROP, OPT_ADAM } Optimizer;
/* The learning rate over a run: lr throughout, or cosine decay from lr at the
 * first step to 0 at the end of the last epoch (lr_cosine() in optim.h). */
typedef enum { LR_CONSTANT, LR_COSINE } LrSchedule;

typedef struct {
    ModelArch arch; /* in_h/in_w must match the dataset */
    int epochs, batch;
    float lr; /* RMSprop 1e-3 (rho 0.9, eps 1e-7); Adam 1e-3 (0.9, 0.999, 1e-7) */
    Optimizer optimizer;
    LrSchedule lr_schedule; /* over all tc->epochs, also when patience stops earlier */
    float weight_decay;     /* decoupled (AdamW's): weights -= lr*wd*weights each step,
                             * biases untouched; 0: off */
    float ema;              /* decay of the weights' moving average, which validation,
                             * calibration and the model get; 0: off (the last weights) */
    float margin;
    uint64_t seed;
    int threads;           /* OpenBLAS threads */
    double val_fraction;   /* of each class's training samples, for calibration */
    PairsMode pairs;       /* pairing of every split (pairs.h); AUTO resolves per split */
    PairsMode train_pairs; /* the training split's instead, unless PAIRS_AUTO (a preset's) */
    int augment_shift;     /* training images shifted by up to this many pixels (0: off) */
    int augment_flip;      /* training images flipped left-right at random (0: off) */
    int augment_cutout;    /* an N×N square of each training image zeroed, centred
                            * anywhere on it (0: off) */
    int patience;          /* stop after this many epochs without a better validation AUC,
                            * keeping the best epoch's weights; 0: run every epoch */
    int force;             /* a collapsed run still returns its model (with a warning) */
    const char *data_name; /* recorded in the model's training summary */
    FILE *progress;        /* per-epoch lines (and a live bar if a tty); NULL: silent */
} TrainConfig;

typedef struct {
    Metrics train, val, test;                     /* test.pairs == 0 when there is no test split */
    PairsInfo train_pairs, val_pairs, test_pairs; /* how each split was paired */
    float threshold;                              /* the calibrated threshold */
    double pairs_per_s;                           /* training throughput over all epochs */
    double seconds;                               /* training time */
    float final_loss;
    int epochs_run; /* epochs trained (fewer than asked when stopped early) */
    int best_epoch; /* the epoch whose weights the model holds */
} TrainReport;

/* One epoch as the trainer saw it: the mean training loss and the accuracy
 * of the validation pairs at threshold 0.5. The training summary stored in
 * the model keeps every epoch's (report_training_json()). */
typedef struct {
    float loss, val_accuracy;
} TrainEpoch;

/* Parses an augmentation spec: "" (none), "shiftN" (N 0..8), "flip",
 * "cutoutN" (N 0..64), or several comma-separated ("shift2,flip,cutout8"),
 * into tc. -EINVAL with one line otherwise. */
int train_parse_augment(const char *spec, TrainConfig *tc, char *err);

/* What a preset ("mlp", "cnn", "custom") trains with unless the user says
 * otherwise, as measured by bench/quality.sh; a zero or NULL field leaves the
 * option's own default. */
typedef struct {
    int epochs;             /* 0: the recipe's */
    const char *augment;    /* NULL: none given */
    float lr;               /* 0: the recipe's */
    LrSchedule lr_schedule; /* LR_CONSTANT: the option's default */
    PairsMode train_pairs;  /* PAIRS_AUTO: as the pairs option says; validation and
                             * test pairs always are */
    float weight_decay;     /* 0: the option's default (off) */
} TrainPreset;
TrainPreset train_preset_defaults(const char *preset);

/* Sets the reference recipe's defaults (784->128->128->128, 20 epochs, ...). */
void train_config_default(TrainConfig *tc);

/* Trains a new model on train (which loses its validation samples to the
 * split), evaluates on test (may be NULL). *out is the caller's (model_free).
 * The model is not saved here. */
int train_run(const TrainConfig *tc, Dataset *train, const Dataset *test, Model **out,
              TrainReport *rep, char *err);

/* Distances of every pair of d built as mode says with seed, then the
 * metrics at threshold 0.5 and at the model's threshold; *info (may be NULL)
 * says how d was paired. For --eval. */
int train_evaluate(const Model *m, const Dataset *d, PairsMode mode, uint64_t seed, Metrics *out,
                   PairsInfo *info, char *err);

/* Sets m's threshold to the one that maximises accuracy on the pairs of d
 * (built as the recipe does with seed, the validation stream) and fills out
 * with the metrics there. For --import. */
int train_calibrate(Model *m, const Dataset *d, PairsMode mode, uint64_t seed, Metrics *out,
                    char *err);

/* The pairs train_evaluate() scores on d, which are also those train_run()
 * scores on its test split (with tc->pairs and tc->seed). *p (info->n pairs)
 * is the caller's, freed with free(). For the HTML report's charts. */
int train_eval_pairs(const Dataset *d, PairsMode mode, uint64_t seed, Pair **p, PairsInfo *info,
                     char *err);

/* Prints the final report (human table on f, or one JSON object when json). */
void train_report_print(FILE *f, const char *model_path, const TrainReport *rep, int json,
                        int with_throughput);

#endif
