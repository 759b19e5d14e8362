/* montecarlo_pi.h : the Monte Carlo estimate of pi shared by
 * examples/montecarlo_pi.c and bench/montecarlo_bench.c.
 *
 * The work is cut into `tasks` batches of `per_task` samples. Batch b draws
 * its points from its own xoshiro256** stream, seeded from (seed, b) alone,
 * and yields one estimate pi_b = 4 * hits / per_task. The batches are a
 * weft_parallel_reduce over [0, tasks) with grain 1: every leaf of the
 * reduction is one batch (one or two when tasks is not a power of two:
 * the leaves depend on the batch count alone), and the partials -- a
 * count, a mean and a sum of squared deviations (Welford), merged with
 * Chan's formula -- are combined in the reduction's fixed tree. Who runs
 * which batch never changes a bit of the answer: serial, threads,
 * processes and mpi, with any number of workers, give the same estimate
 * and the same confidence interval.
 *
 * The confidence interval is the batch-means one: the batches are
 * independent estimates of pi, so their standard error is
 * sqrt(var(pi_b) / tasks), and mean +- 1.96 of it covers pi 95% of the time.
 *
 * Include <weft.h> first. One translation unit per program includes this
 * file (it registers the reduction body for the processes and mpi levels). */
#ifndef MONTECARLO_PI_H
#define MONTECARLO_PI_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* What the body needs: copied to worker processes and ranks (arg_size). */
typedef struct mc_params {
    uint64_t seed;     /* the run's seed */
    uint64_t per_task; /* samples per batch */
} mc_params;

/* A partial result: batches seen, their mean estimate, the sum of squared
 * deviations from it, and the hits (an exact integer check). */
typedef struct mc_acc {
    double n, mean, m2;
    uint64_t hits;
} mc_acc;

/* Batch b's seed: the run seed and the batch number, mixed (splitmix64's
 * finalizer), so neighbouring batches get unrelated streams. */
static inline uint64_t mc_batch_seed(uint64_t seed, uint64_t b)
{
    uint64_t z = seed ^ ((b + 1) * 0xd1b54a32d192ed03ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Counts the points of batch b that fall inside the quarter circle. */
static inline uint64_t mc_batch_hits(uint64_t seed, uint64_t b, uint64_t per_task)
{
    weft_rng r;
    uint64_t hits = 0;
    weft_rng_seed(&r, mc_batch_seed(seed, b));
    for (uint64_t i = 0; i < per_task; i++) {
        double x = weft_rng_double(&r), y = weft_rng_double(&r);
        hits += x * x + y * y < 1.0;
    }
    return hits;
}

/* The reduction body: batches [lo, hi) folded into *acc (Welford). */
static int mc_batches(int64_t lo, int64_t hi, void *acc, void *arg)
{
    const mc_params *p = arg;
    mc_acc *a = acc;
    for (int64_t b = lo; b < hi; b++) {
        uint64_t h = mc_batch_hits(p->seed, (uint64_t)b, p->per_task);
        double est = 4.0 * (double)h / (double)p->per_task;
        a->hits += h;
        a->n += 1.0;
        double d = est - a->mean;
        a->mean += d / a->n;
        a->m2 += d * (est - a->mean);
    }
    return 0;
}

/* The combine: acc = acc (+) right (Chan et al.'s pairwise update). */
static void mc_merge(void *acc, const void *right, void *arg)
{
    mc_acc *a = acc;
    const mc_acc *b = right;
    (void)arg;
    if (b->n == 0) return;
    if (a->n == 0) {
        *a = *b;
        return;
    }
    double n = a->n + b->n, d = b->mean - a->mean;
    a->mean += d * b->n / n;
    a->m2 += b->m2 + d * d * a->n * b->n / n;
    a->n = n;
    a->hits += b->hits;
}
WEFT_RANGE_REGISTER_REDUCE(mc_batches, mc_merge);

/* The estimate of one run. */
typedef struct mc_result {
    double pi;       /* the mean of the batch estimates */
    double se;       /* its standard error (batch means) */
    double lo, hi;   /* the 95% confidence interval */
    uint64_t hits;   /* points inside, over all batches */
    uint64_t points; /* tasks * per_task */
} mc_result;

/* Runs `tasks` batches of `per_task` samples on `ex`.
 * @return 0 or the reduction's error code. */
static inline int mc_estimate(weft_executor *ex, uint64_t seed, uint64_t tasks, uint64_t per_task,
                              mc_result *out)
{
    mc_params p = {.seed = seed, .per_task = per_task};
    mc_acc zero = {0}, acc;
    /* grain 1: one leaf per batch, whatever the worker count */
    weft_range_options o = {.grain = 1, .arg_size = sizeof p};
    int rc = weft_parallel_reduce(ex, 0, (int64_t)tasks, &zero, sizeof zero, mc_batches, mc_merge,
                                  &p, &o, &acc);
    if (rc) return rc;
    out->pi = acc.mean;
    out->se = acc.n > 1 ? sqrt(acc.m2 / (acc.n - 1) / acc.n) : NAN;
    out->lo = out->pi - 1.96 * out->se;
    out->hi = out->pi + 1.96 * out->se;
    out->hits = acc.hits;
    out->points = tasks * per_task;
    return 0;
}

/* The bits of a double, to compare runs exactly. */
static inline uint64_t mc_bits(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

#endif /* MONTECARLO_PI_H */
