/* The fused CPU engine for dense MLPs: one member's whole training step (input noise, every layer's
 * linear map, pre-activation noise, activation, post-activation noise, loss, backward pass and the
 * Adam/SGD update) runs in one pass over data that stays in the core's cache, many steps per call.
 *
 * It computes what the stacked torch program (sweeper/tasks/families/mlp.py) computes, operation for
 * operation and draw for draw: the noise comes from sweeper_add_normal (philox.c) at the same
 * counters, so only the float summation order differs. Members are independent: member k's numbers
 * depend on its own parameters, data and stream only, never on the thread that runs it, on the other
 * members of the call, or on the CPU: compiled without -ffast-math and with -ffp-contract=off (NaN
 * must propagate, as divergence is an outcome to record, and no multiply-add is fused on one CPU and
 * not on another), every sum in one written order whatever the vector width (dot below), and the
 * elementary functions of portable_math.h instead of libm's, whose results depend on the CPU. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../noise/_c/philox.h"
#include "../../noise/_c/portable_math.h"

#define MAX_LAYERS 16
#define SQRT3 1.7320508075688772f
#define EVAL_ROWS 64 /* rows per forward chunk in evaluation */
#define ECE_BINS 15  /* equal-width confidence bins of the expected calibration error (engine/losses.py) */

/* Every enumeration the Python side sets, each value named once here: X(C name, the name Python uses:
 * TaskSpec's activation and problem, OptimizerSpec's name, NoiseSpec's placement and kind). */
#define ACTIVATION_LIST(X) X(ACT_RELU, "relu") X(ACT_TANH, "tanh") X(ACT_SIGMOID, "sigmoid")
#define LOSS_LIST(X) X(LOSS_BCE, "binary") X(LOSS_CE, "multiclass") X(LOSS_MSE, "regression")
#define OPT_LIST(X) X(OPT_ADAM, "adam") X(OPT_SGD, "sgd")
/* Site numbers index the noise tables; a step meets them as targets, input, per layer weights/pre/post,
 * gradients. */
#define SITE_LIST(X)                                                                                          \
    X(SITE_INPUT, "input") X(SITE_PRE, "pre_activation") X(SITE_POST, "post_activation")                    \
    X(SITE_WEIGHTS, "weights") X(SITE_GRADIENTS, "gradients") X(SITE_TARGETS, "targets")
#define KIND_LIST(X)                                                                                          \
    X(KIND_NONE, "none") X(KIND_GAUSSIAN, "gaussian") X(KIND_MULTIPLICATIVE, "multiplicative")              \
    X(KIND_UNIFORM, "uniform") X(KIND_FLIP, "flip") X(KIND_DROPOUT, "dropout")
/* The metrics sweeper_mlp_metrics gives, by their names in sweeper/metrics.py. */
#define METRIC_LIST(X) X(METRIC_LOSS, "loss") X(METRIC_ACCURACY, "accuracy") X(METRIC_ECE, "ece") X(METRIC_MSE, "mse") X(METRIC_R2, "r2")

#define ENUM_VALUE(id, name) id,
#define ENUM_NAME(id, name) name ","
enum { ACTIVATION_LIST(ENUM_VALUE) };
enum { LOSS_LIST(ENUM_VALUE) };
enum { OPT_LIST(ENUM_VALUE) };
enum { SITE_LIST(ENUM_VALUE) SITES };
enum { KIND_LIST(ENUM_VALUE) };
enum { METRIC_LIST(ENUM_VALUE) METRICS };

/* The enumerations by name, in their order: "activation:relu,tanh,sigmoid,;loss:...". sweeper/engine/fused.py
 * reads it when it loads the library and looks every value up by name, so no list is mirrored by position. */
const char *const sweeper_mlp_enums = "activation:" ACTIVATION_LIST(ENUM_NAME) ";loss:" LOSS_LIST(ENUM_NAME)
                                      ";optimizer:" OPT_LIST(ENUM_NAME) ";site:" SITE_LIST(ENUM_NAME)
                                      ";kind:" KIND_LIST(ENUM_NAME) ";metric:" METRIC_LIST(ENUM_NAME);

/* The network and its training rule (mirrored by a ctypes.Structure in sweeper/engine/fused.py).
 * Layer l maps dims[l] -> dims[l + 1]; layers - 1 hidden layers, then the output layer. A member's
 * parameters are one flat vector: for each layer, W^T (dims[l] x dims[l + 1], row-major) then b. */
typedef struct {
    int64_t members, layers, dims[MAX_LAYERS + 1], n_params;
    int32_t act, loss, opt, threads;
    double lr, beta1, beta2, eps, weight_decay, momentum;
} Net;

/* The pack's noise: per member and site its kind and its size at every step of this call, and per member
 * its Philox key and next unused block (advanced here, as PhiloxStreams advances it). The sizes are
 * NoiseSpec.std_at's float32 table (computed once in Python, so every engine uses the same numbers):
 * sizes[(k * SITES + site) * steps + t - first_step], or, with steps == 1, one size for every step (a pack
 * whose schedules are all constant). Relative input (targets) noise of member k is scaled by
 * input_std[k * dims[0] + j] (target_std[k]) where relative[k * SITES + site] is set. */
typedef struct {
    const int32_t *kinds;    /* (members, SITES) */
    const float *sizes;      /* (members, SITES, steps) */
    int64_t steps, first_step;
    const int32_t *relative; /* (members, SITES) */
    const float *input_std;  /* (members, dims[0]) or NULL */
    const float *target_std; /* (members) or NULL */
    const uint64_t *keys;
    uint64_t *blocks;
} Noise;

static int64_t weight_offset(const Net *net, int64_t l) {
    int64_t off = 0;
    for (int64_t i = 0; i < l; i++) off += net->dims[i] * net->dims[i + 1] + net->dims[i + 1];
    return off;
}

static int64_t max_width(const Net *net) {
    int64_t w = 0;
    for (int64_t l = 0; l <= net->layers; l++) w = net->dims[l] > w ? net->dims[l] : w;
    return w;
}

/* The dot product of a and b (n values) in one order on every CPU: eight running sums (sum j takes the
 * products j, j + 8, j + 16, ...), added pairwise, then the tail. The compiler keeps the eight sums in
 * one AVX2 register or two SSE ones; an OpenMP simd reduction would instead split the sum by the
 * vector width, and so round differently on CPUs with and without AVX2. */
static inline float dot(const float *restrict a, const float *restrict b, int64_t n) {
    float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
        for (int j = 0; j < 8; j++) s[j] += a[c + j] * b[c + j];
    float total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; c < n; c++) total += a[c] * b[c];
    return total;
}

/* z = a @ w + b: a (rows x k), w (k x n), b (n) -> z (rows x n). Four rows share each row of w. */
static void linear(const float *restrict a, const float *restrict w, const float *restrict b, float *restrict z,
                   int64_t rows, int64_t k, int64_t n) {
    if (n == 1) {
        for (int64_t i = 0; i < rows; i++) z[i] = dot(a + i * k, w, k) + b[0];
        return;
    }
    int64_t i = 0;
    for (; i + 4 <= rows; i += 4) {
        float *restrict z0 = z + i * n, *restrict z1 = z0 + n, *restrict z2 = z1 + n, *restrict z3 = z2 + n;
        const float *a0 = a + i * k;
        for (int64_t j = 0; j < n; j++) z0[j] = z1[j] = z2[j] = z3[j] = 0.0f;
        for (int64_t c = 0; c < k; c++) {
            const float *restrict wr = w + c * n;
            const float c0 = a0[c], c1 = a0[k + c], c2 = a0[2 * k + c], c3 = a0[3 * k + c];
#pragma omp simd
            for (int64_t j = 0; j < n; j++) {
                z0[j] += c0 * wr[j];
                z1[j] += c1 * wr[j];
                z2[j] += c2 * wr[j];
                z3[j] += c3 * wr[j];
            }
        }
        for (int64_t j = 0; j < n; j++) { z0[j] += b[j]; z1[j] += b[j]; z2[j] += b[j]; z3[j] += b[j]; }
    }
    for (; i < rows; i++) {
        float *restrict zi = z + i * n;
        for (int64_t j = 0; j < n; j++) zi[j] = 0.0f;
        for (int64_t c = 0; c < k; c++) {
            const float ac = a[i * k + c];
#pragma omp simd
            for (int64_t j = 0; j < n; j++) zi[j] += ac * w[c * n + j];
        }
        for (int64_t j = 0; j < n; j++) zi[j] += b[j];
    }
}

/* ga = g @ w^T: g (rows x n), w (k x n) -> ga (rows x k), the gradient reaching the layer's input. */
static void linear_input_grad(const float *restrict g, const float *restrict w, float *restrict ga, int64_t rows,
                              int64_t k, int64_t n) {
    if (n == 1) {
        for (int64_t i = 0; i < rows; i++) {
            const float gi = g[i];
#pragma omp simd
            for (int64_t c = 0; c < k; c++) ga[i * k + c] = gi * w[c];
        }
        return;
    }
    for (int64_t c = 0; c < k; c++) {
        const float *restrict wr = w + c * n;
        for (int64_t i = 0; i < rows; i++) ga[i * k + c] = dot(g + i * n, wr, n);
    }
}

/* gw = a^T @ g and gb = column sums of g: a (rows x k), g (rows x n) -> gw (k x n), gb (n). */
static void linear_weight_grad(const float *restrict a, const float *restrict g, float *restrict gw,
                               float *restrict gb, int64_t rows, int64_t k, int64_t n) {
    memset(gw, 0, sizeof(float) * (size_t)(k * n));
    memset(gb, 0, sizeof(float) * (size_t)n);
    if (n == 1) {
        for (int64_t i = 0; i < rows; i++) {
            const float gi = g[i];
#pragma omp simd
            for (int64_t c = 0; c < k; c++) gw[c] += gi * a[i * k + c];
            gb[0] += gi;
        }
        return;
    }
    int64_t i = 0;
    for (; i + 4 <= rows; i += 4) {
        const float *restrict g0 = g + i * n, *restrict g1 = g0 + n, *restrict g2 = g1 + n, *restrict g3 = g2 + n;
        const float *a0 = a + i * k;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) gb[j] += (g0[j] + g1[j]) + (g2[j] + g3[j]);
        for (int64_t c = 0; c < k; c++) {
            float *restrict gr = gw + c * n;
            const float c0 = a0[c], c1 = a0[k + c], c2 = a0[2 * k + c], c3 = a0[3 * k + c];
#pragma omp simd
            for (int64_t j = 0; j < n; j++) gr[j] += (c0 * g0[j] + c1 * g1[j]) + (c2 * g2[j] + c3 * g3[j]);
        }
    }
    for (; i < rows; i++) {
        const float *restrict gi = g + i * n;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) gb[j] += gi[j];
        for (int64_t c = 0; c < k; c++) {
            const float ac = a[i * k + c];
#pragma omp simd
            for (int64_t j = 0; j < n; j++) gw[c * n + j] += ac * gi[j];
        }
    }
}

/* The activation in place. ReLU keeps NaN (as torch.relu does): a diverging member stays visible. */
static void activate(float *z, int64_t n, int act) {
    if (act == ACT_RELU) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) z[i] = z[i] > 0.0f || z[i] != z[i] ? z[i] : 0.0f;
    } else if (act == ACT_TANH) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) z[i] = pm_tanhf(z[i]);
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) z[i] = pm_sigmoidf(z[i]);
    }
}

/* g *= act'(z) given the activation's output y, as torch's threshold/tanh/sigmoid backward do. */
static void activation_grad(float *restrict g, const float *restrict y, int64_t n, int act) {
    if (act == ACT_RELU) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) g[i] = y[i] <= 0.0f ? 0.0f : g[i];
    } else if (act == ACT_TANH) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) g[i] *= 1.0f - y[i] * y[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) g[i] *= (1.0f - y[i]) * y[i];
    }
}

/* Mean loss over the rows and its gradient with respect to the outputs o (rows x c): binary
 * cross-entropy on logits (c = 1), cross-entropy over c classes (y holds class indices) or squared error. */
static float loss_grad(const float *restrict o, const float *restrict y, float *restrict g, int64_t rows, int64_t c,
                       int loss) {
    const float inv = 1.0f / (float)rows;
    float total = 0.0f;
    for (int64_t i = 0; i < rows; i++) {
        if (loss == LOSS_BCE) {
            const float x = o[i];
            total += (x > 0.0f ? x : 0.0f) - x * y[i] + pm_log1pf(pm_expf(-fabsf(x)));
            g[i] = (pm_sigmoidf(x) - y[i]) * inv;
        } else if (loss == LOSS_MSE) {
            const float d = o[i] - y[i];
            total += d * d;
            g[i] = 2.0f * d * inv;
        } else {
            const float *oi = o + i * c;
            float m = oi[0], s = 0.0f;
            for (int64_t j = 1; j < c; j++) m = oi[j] > m ? oi[j] : m;
            for (int64_t j = 0; j < c; j++) s += pm_expf(oi[j] - m);
            const float lse = m + pm_logf(s);
            const int64_t label = (int64_t)y[i];
            total += lse - oi[label];
            for (int64_t j = 0; j < c; j++) g[i * c + j] = (pm_expf(oi[j] - lse) - (j == label ? 1.0f : 0.0f)) * inv;
        }
    }
    return total * inv;
}

/* One Adam or SGD (momentum) step t (1-based) over a member's flat parameters, as torch's fused
 * optimizers compute it (weight decay added to the gradient, Adam's bias corrections per step). */
static void update(const Net *net, float *restrict p, float *restrict m, float *restrict v, float *restrict grad,
                   int64_t t) {
    const int64_t n = net->n_params;
    const float wd = (float)net->weight_decay;
    if (wd != 0.0f) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) grad[i] += wd * p[i];
    }
    if (net->opt == OPT_ADAM) {
        const float b1 = (float)net->beta1, b2 = (float)net->beta2, eps = (float)net->eps;
        const float step = (float)(net->lr / (1.0 - pm_pow(net->beta1, (double)t)));
        const float bc2 = (float)sqrt(1.0 - pm_pow(net->beta2, (double)t));
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            m[i] += (grad[i] - m[i]) * (1.0f - b1);
            v[i] = b2 * v[i] + (1.0f - b2) * grad[i] * grad[i];
            p[i] -= step * m[i] / (sqrtf(v[i]) / bc2 + eps);
        }
    } else {
        const float lr = (float)net->lr, mom = (float)net->momentum;
        if (mom != 0.0f) {
#pragma omp simd
            for (int64_t i = 0; i < n; i++) m[i] = t == 1 ? grad[i] : mom * m[i] + grad[i];
        }
        const float *d = mom != 0.0f ? m : grad;
#pragma omp simd
        for (int64_t i = 0; i < n; i++) p[i] -= lr * d[i];
    }
}

/* Per-thread working memory: the batch, every layer's output (and its post-noise copy), two gradient
 * buffers and the parameter gradient. */
typedef struct {
    float *x, *y, *out[MAX_LAYERS], *post[MAX_LAYERS], *g0, *g1, *grad, *tmp;
    float *pre_f[MAX_LAYERS], *post_f[MAX_LAYERS]; /* multiplicative factors (1 + σε) of each layer's sites */
    float *w[MAX_LAYERS], *w_f[MAX_LAYERS];        /* noisy weights W'^T and their multiplicative factors */
} Scratch;

static int scratch_init(Scratch *s, const Net *net, int64_t rows) {
    const int64_t d0 = net->dims[0], w = max_width(net);
    int64_t tmp = rows * w > net->n_params ? rows * w : net->n_params;
    for (int64_t l = 0; l < net->layers; l++) {
        const int64_t wn = net->dims[l] * net->dims[l + 1];
        tmp = wn > tmp ? wn : tmp;
    }
    tmp = 3 * tmp + 2 * rows; /* a transposed draw needs three matrices' room, label flips two rows */
    int64_t total = rows * d0 + rows + 2 * rows * w + net->n_params + tmp;
    for (int64_t l = 0; l < net->layers; l++)
        total += 4 * rows * net->dims[l + 1] + 2 * net->dims[l] * net->dims[l + 1];
    float *base = malloc(sizeof(float) * (size_t)total), *q = base;
    if (base == NULL) return 0;
    s->x = q; q += rows * d0;
    s->y = q; q += rows;
    for (int64_t l = 0; l < net->layers; l++) {
        const int64_t n = net->dims[l + 1], wn = net->dims[l] * n;
        s->out[l] = q; q += rows * n;
        s->post[l] = q; q += rows * n;
        s->pre_f[l] = q; q += rows * n;
        s->post_f[l] = q; q += rows * n;
        s->w[l] = q; q += wn;
        s->w_f[l] = q; q += wn;
    }
    s->g0 = q; q += rows * w;
    s->g1 = q; q += rows * w;
    s->grad = q; q += net->n_params;
    s->tmp = q;
    return 1;
}

/* Member k's noise size at a site at step t (0 where it has none): NoiseSpec.std_at's table. */
static float size_at(const Noise *nz, int64_t k, int which, int64_t t) {
    if (nz->kinds[k * SITES + which] == KIND_NONE) return 0.0f;
    return nz->sizes[(k * SITES + which) * nz->steps + (nz->steps == 1 ? 0 : t - nz->first_step)];
}

/* The first Philox block of a draw of n values by member k, advancing its counter past them. */
static uint64_t take(const Noise *nz, int64_t k, int64_t n) {
    const uint64_t first = nz->blocks[k];
    nz->blocks[k] += (uint64_t)((n + 3) / 4);
    return first;
}

/* dst = src with member k's noise of a site at step t, as PackNoise.perturb applies it: x + σε,
 * x + u (u uniform with std σ), x·(1 + σε) or dropout x·m/(1 - p). n values, in place allowed; with relu,
 * ReLU after it (fused with Gaussian noise). A multiplicative draw leaves its factors (1 + σε, or m/(1 - p))
 * in `factor` (for the backward pass) and returns 1; `tmp` is scratch of n values. Members of size 0 draw
 * nothing. */
static int perturb(const Noise *nz, int64_t k, int which, int64_t t, const float *src, float *dst, int64_t n,
                   int relu, float *factor, float *tmp) {
    const float sd = size_at(nz, k, which, t);
    const int kind = nz->kinds[k * SITES + which];
    int multiplied = 0;
    if (sd != 0.0 && kind == KIND_GAUSSIAN) {
        sweeper_add_normal(src, dst, n, nz->keys[k], take(nz, k, n), sd, relu);
        return 0;
    }
    if (sd != 0.0 && kind == KIND_UNIFORM) {
        sweeper_uniform(tmp, n, nz->keys[k], take(nz, k, n), -SQRT3 * sd, SQRT3 * sd);
        for (int64_t i = 0; i < n; i++) dst[i] = tmp[i] + src[i];
    } else if (sd != 0.0 && kind == KIND_MULTIPLICATIVE) {
        sweeper_normal(factor, n, nz->keys[k], take(nz, k, n), sd);
        for (int64_t i = 0; i < n; i++) {
            factor[i] = 1.0f + factor[i];
            dst[i] = src[i] * factor[i];
        }
        multiplied = 1;
    } else if (sd != 0.0f && kind == KIND_DROPOUT) {
        /* A unit is dropped where its uniform u < p (sweeper.noise.philox.dropout_factors), kept ones are
         * scaled by 1 / (1 - p), computed in double from the float32 rate and rounded once (keep_scale). */
        const float keep = (float)(1.0 / (1.0 - (double)sd));
        sweeper_uniform(factor, n, nz->keys[k], take(nz, k, n), 0.0f, 1.0f);
        for (int64_t i = 0; i < n; i++) {
            factor[i] = factor[i] >= sd ? keep : 0.0f;
            dst[i] = src[i] * factor[i];
        }
        multiplied = 1;
    } else if (dst != src) {
        memcpy(dst, src, sizeof(float) * (size_t)n);
    }
    if (relu) activate(dst, n, ACT_RELU);
    return multiplied;
}

/* Relative additive noise: dst = src + (σε)·std[i % width] (or the uniform draw scaled alike), rows of
 * `width` features, as PackNoise.perturb scales the draw before adding it. */
static void perturb_relative(const Noise *nz, int64_t k, int which, int64_t t, const float *src, float *dst,
                             int64_t n, int64_t width, const float *std, float *tmp) {
    const float sd = size_at(nz, k, which, t);
    if (sd == 0.0f) {
        if (dst != src) memcpy(dst, src, sizeof(float) * (size_t)n);
        return;
    }
    if (nz->kinds[k * SITES + which] == KIND_UNIFORM)
        sweeper_uniform(tmp, n, nz->keys[k], take(nz, k, n), -SQRT3 * sd, SQRT3 * sd);
    else
        sweeper_normal(tmp, n, nz->keys[k], take(nz, k, n), sd);
    /* Two passes through memory, so that no compiler contracts the product and the sum into one fused
     * multiply-add: torch rounds each, and so must this on every CPU. */
    for (int64_t i = 0; i < n; i++) tmp[i] *= std[i % width];
    for (int64_t i = 0; i < n; i++) dst[i] = tmp[i] + src[i];
}

/* The same noise on a matrix stored transposed: src/dst are (k x n) but the draws run over its
 * nn.Module layout (n x k), value j*k + c landing on [c][j]; factors are left transposed too. */
static int perturb_transposed(const Noise *nz, int64_t m, int which, int64_t t, const float *src, float *dst,
                              int64_t k, int64_t n, float *factor, float *tmp) {
    const int64_t size = k * n;
    float *drawn = tmp + size;
    for (int64_t j = 0; j < n; j++)
        for (int64_t c = 0; c < k; c++) tmp[j * k + c] = src[c * n + j];
    const int multiplied = perturb(nz, m, which, t, tmp, tmp, size, 0, drawn, drawn + size);
    for (int64_t j = 0; j < n; j++)
        for (int64_t c = 0; c < k; c++) {
            dst[c * n + j] = tmp[j * k + c];
            if (multiplied) factor[c * n + j] = drawn[j * k + c];
        }
    return multiplied;
}

/* Member k's label flips at step t (flip_labels in sweeper/noise/pack.py): each label is replaced,
 * with probability p, by 1 - y (two classes) or by another class drawn uniformly. */
static void flip_labels(const Noise *nz, int64_t k, int64_t t, float *y, int64_t rows, int64_t classes, float *tmp) {
    if (nz->kinds[k * SITES + SITE_TARGETS] != KIND_FLIP) return;
    const float p = size_at(nz, k, SITE_TARGETS, t);
    float *u = tmp, *v = tmp + rows;
    sweeper_uniform(u, rows, nz->keys[k], take(nz, k, rows), 0.0f, 1.0f);
    if (classes == 2) {
        for (int64_t i = 0; i < rows; i++) y[i] = u[i] < p ? 1.0f - y[i] : y[i];
        return;
    }
    sweeper_uniform(v, rows, nz->keys[k], take(nz, k, rows), 0.0f, 1.0f);
    for (int64_t i = 0; i < rows; i++) {
        int64_t offset = (int64_t)(v[i] * (float)(classes - 1));
        offset = 1 + (offset < classes - 2 ? offset : classes - 2);
        if (u[i] < p) y[i] = (float)(((int64_t)y[i] + offset) % classes);
    }
}

/* One training step t (0-based) of member k on `rows` examples x (rows x dims[0]) with targets y (a
 * copy: target noise changes it), drawing its noise in the stacked program's order: targets, input,
 * then per layer weights, pre- and post-activation, and the gradients after the backward pass.
 * Returns the mean loss before the update. */
static float step(const Net *net, const Noise *nz, int64_t k, int64_t t, float *theta, float *m, float *v,
                  const float *x, float *y, int64_t rows, Scratch *s) {
    const int64_t L = net->layers;
    const int32_t *kinds = nz->kinds + k * SITES;
    const float *acts[MAX_LAYERS + 1], *weights[MAX_LAYERS], *a = x;
    int pre_mult[MAX_LAYERS] = {0}, post_mult[MAX_LAYERS] = {0}, w_mult[MAX_LAYERS] = {0};
    if (net->loss == LOSS_MSE) {
        if (nz->relative[k * SITES + SITE_TARGETS])
            perturb_relative(nz, k, SITE_TARGETS, t, y, y, rows, 1, nz->target_std + k, s->tmp);
        else if (kinds[SITE_TARGETS] != KIND_NONE)
            perturb(nz, k, SITE_TARGETS, t, y, y, rows, 0, s->tmp, s->tmp + rows);
    } else {
        flip_labels(nz, k, t, y, rows, net->loss == LOSS_BCE ? 2 : net->dims[L], s->tmp);
    }
    if (kinds[SITE_INPUT] != KIND_NONE) {
        const int64_t size = rows * net->dims[0];
        if (nz->relative[k * SITES + SITE_INPUT])
            perturb_relative(nz, k, SITE_INPUT, t, x, s->x, size, net->dims[0], nz->input_std + k * net->dims[0],
                             s->tmp);
        else
            perturb(nz, k, SITE_INPUT, t, x, s->x, size, 0, s->tmp, s->tmp + size);
        a = s->x;
    }
    acts[0] = a;
    for (int64_t l = 0; l < L; l++) {
        const int64_t k_in = net->dims[l], n = net->dims[l + 1], off = weight_offset(net, l);
        const float *w = theta + off;
        if (kinds[SITE_WEIGHTS] != KIND_NONE) {
            w_mult[l] = perturb_transposed(nz, k, SITE_WEIGHTS, t, w, s->w[l], k_in, n, s->w_f[l], s->tmp);
            w = s->w[l];
        }
        weights[l] = w;
        float *z = s->out[l];
        linear(a, w, theta + off + k_in * n, z, rows, k_in, n);
        if (l == L - 1) break;
        const int relu = net->act == ACT_RELU;
        pre_mult[l] = perturb(nz, k, SITE_PRE, t, z, z, rows * n, relu, s->pre_f[l], s->tmp);
        if (!relu) activate(z, rows * n, net->act);
        a = z;
        if (kinds[SITE_POST] != KIND_NONE) {
            post_mult[l] = perturb(nz, k, SITE_POST, t, z, s->post[l], rows * n, 0, s->post_f[l], s->tmp);
            a = s->post[l];
        }
        acts[l + 1] = a;
    }
    float *g = s->g0, *spare = s->g1;
    const float loss = loss_grad(s->out[L - 1], y, g, rows, net->dims[L], net->loss);
    for (int64_t l = L - 1; l >= 0; l--) {
        const int64_t k_in = net->dims[l], n = net->dims[l + 1], off = weight_offset(net, l);
        float *gw = s->grad + off;
        linear_weight_grad(acts[l], g, gw, gw + k_in * n, rows, k_in, n);
        if (w_mult[l])
            for (int64_t i = 0; i < k_in * n; i++) gw[i] *= s->w_f[l][i];
        if (l == 0) break;
        const int64_t size = rows * k_in;
        linear_input_grad(g, weights[l], spare, rows, k_in, n);
        if (post_mult[l - 1])
            for (int64_t i = 0; i < size; i++) spare[i] *= s->post_f[l - 1][i];
        activation_grad(spare, s->out[l - 1], size, net->act);
        if (pre_mult[l - 1])
            for (int64_t i = 0; i < size; i++) spare[i] *= s->pre_f[l - 1][i];
        float *swap = g; g = spare; spare = swap;
    }
    if (kinds[SITE_GRADIENTS] != KIND_NONE) {
        for (int64_t l = 0; l < L; l++) { /* each weight, then its bias: the canonical parameter order */
            const int64_t k_in = net->dims[l], n = net->dims[l + 1];
            float *gw = s->grad + weight_offset(net, l);
            perturb_transposed(nz, k, SITE_GRADIENTS, t, gw, gw, k_in, n, s->w_f[l], s->tmp);
            perturb(nz, k, SITE_GRADIENTS, t, gw + k_in * n, gw + k_in * n, n, 0, s->tmp, s->tmp + n);
        }
    }
    update(net, theta, m, v, s->grad, t + 1);
    return loss;
}

/* Trains every member for `epochs` epochs from global step `first_step`. x: (members, n, dims[0]),
 * y: (members, n) (class indices as floats for cross-entropy). perms: (members, epochs, n) row orders
 * cut into minibatches of `batch` rows, or NULL for full batches. theta, m, v: (members, n_params).
 * bad_step[k] >= 0 marks a member whose loss was not finite at that step: it trains no further (its
 * later results are discarded), and the first such step is recorded. Returns 0, or -1 without memory. */
int sweeper_mlp_train(const Net *net, const Noise *nz, float *theta, float *m, float *v, const float *x,
                      const float *y, int64_t n, const int64_t *perms, int64_t batch, int64_t epochs,
                      int64_t first_step, int64_t *bad_step) {
    const int64_t d0 = net->dims[0], P = net->n_params;
    const int64_t rows_max = perms == NULL ? n : (batch < n ? batch : n);
    const int64_t per_epoch = perms == NULL ? 1 : (n + rows_max - 1) / rows_max;
    int failed = 0;
#pragma omp parallel num_threads(net->threads) reduction(| : failed)
    {
        Scratch s;
        if (!scratch_init(&s, net, rows_max)) {
            failed = 1;
        } else {
#pragma omp for schedule(dynamic, 1)
            for (int64_t k = 0; k < net->members; k++) {
                const float *xk = x + k * n * d0, *yk = y + k * n;
                float *pk = theta + k * P, *mk = m + k * P, *vk = v + k * P;
                for (int64_t e = 0; e < epochs && bad_step[k] < 0; e++) {
                    for (int64_t b = 0; b < per_epoch && bad_step[k] < 0; b++) {
                        const int64_t t = first_step + e * per_epoch + b;
                        const float *xb = xk;
                        int64_t rows = n;
                        if (perms != NULL) {
                            const int64_t *order = perms + (k * epochs + e) * n + b * rows_max;
                            rows = n - b * rows_max < rows_max ? n - b * rows_max : rows_max;
                            for (int64_t i = 0; i < rows; i++) {
                                memcpy(s.x + i * d0, xk + order[i] * d0, sizeof(float) * (size_t)d0);
                                s.y[i] = yk[order[i]];
                            }
                            xb = s.x; /* the input site adds its noise to the gathered rows in place */
                        } else {
                            memcpy(s.y, yk, sizeof(float) * (size_t)n);
                        }
                        const float loss = step(net, nz, k, t, pk, mk, vk, xb, s.y, rows, &s);
                        if (!isfinite(loss)) bad_step[k] = t;
                    }
                }
            }
            free(s.x);
        }
    }
    return failed ? -1 : 0;
}

/* Noise-free outputs of `rows` (<= EVAL_ROWS) examples a (rows x dims[0]) of the member with parameters pk
 * into dst (rows x dims[layers]); buf holds 2 * EVAL_ROWS * max_width floats. */
static void forward_rows(const Net *net, const float *pk, const float *a, int64_t rows, float *buf, float *dst) {
    const int64_t L = net->layers;
    float *z = buf, *next = buf + EVAL_ROWS * max_width(net);
    for (int64_t l = 0; l < L; l++) {
        const int64_t k_in = net->dims[l], units = net->dims[l + 1];
        const float *wl = pk + weight_offset(net, l);
        linear(a, wl, wl + k_in * units, l == L - 1 ? dst : z, rows, k_in, units);
        if (l == L - 1) break;
        activate(z, rows * units, net->act);
        a = z;
        float *tmp = z; z = next; next = tmp;
    }
}

/* Noise-free outputs of every member: x (members, n, dims[0]) -> out (members, n, dims[layers]). */
int sweeper_mlp_forward(const Net *net, const float *theta, const float *x, int64_t n, float *out) {
    const int64_t d0 = net->dims[0], c = net->dims[net->layers];
    int failed = 0;
#pragma omp parallel num_threads(net->threads) reduction(| : failed)
    {
        float *buf = malloc(sizeof(float) * (size_t)(2 * EVAL_ROWS * max_width(net)));
        if (buf == NULL) {
            failed = 1;
        } else {
#pragma omp for schedule(dynamic, 1)
            for (int64_t k = 0; k < net->members; k++)
                for (int64_t r = 0; r < n; r += EVAL_ROWS)
                    forward_rows(net, theta + k * net->n_params, x + (k * n + r) * d0, n - r < EVAL_ROWS ? n - r : EVAL_ROWS,
                                 buf, out + (k * n + r) * c);
            free(buf);
        }
    }
    return failed ? -1 : 0;
}

/* log(1 + x) in double for x >= 0 (Goldberg's correction, as pm_log1pf). */
static double log1p_double(double x) {
    const double u = 1.0 + x;
    return u == 1.0 ? x : pm_log(u) * (x / (u - 1.0));
}

/* The running sums of one member's metrics over one part, every one in double and in row order: the
 * same bits on every CPU and thread count (no vectorized reduction reorders them). */
typedef struct {
    double loss, correct, sse, bins[ECE_BINS];
} Sums;

/* Adds row o (c outputs) with target y to the sums: the loss (binary cross-entropy on the logit,
 * cross-entropy over c classes, squared error), whether the predicted class is right (logit > 0, else
 * the first largest output, NaN counting as largest as torch.argmax does), and per confidence bin the sum
 * of (right - confidence) for the expected calibration error. */
static void add_row(Sums *s, const float *o, double y, int64_t c, int loss) {
    double confidence = 0.0;
    int right = 0;
    if (loss == LOSS_MSE) {
        const double d = (double)o[0] - y;
        s->sse += d * d;
        return;
    }
    if (loss == LOSS_BCE) {
        const double x = (double)o[0], ax = x < 0.0 ? -x : x;
        s->loss += (x > 0.0 ? x : 0.0) - x * y + log1p_double(pm_exp(-ax));
        const double p = 1.0 / (1.0 + pm_exp(-x));
        confidence = p > 1.0 - p ? p : 1.0 - p;
        right = (x > 0.0 ? 1.0 : 0.0) == y;
    } else {
        int64_t best = 0;
        double m = (double)o[0];
        for (int64_t j = 1; j < c; j++) {
            const double v = (double)o[j];
            if (m == m && (v > m || v != v)) { m = v; best = j; }
        }
        double sum = 0.0;
        for (int64_t j = 0; j < c; j++) sum += pm_exp((double)o[j] - m);
        const int64_t label = (int64_t)y;
        s->loss += (m + pm_log(sum)) - (double)o[label];
        confidence = 1.0 / sum; /* the largest softmax probability: e^0 / sum */
        right = best == label;
    }
    s->correct += right;
    /* Bin b holds confidences in (b/15, (b+1)/15]: ceil(15 conf) - 1, without libm's ceil. */
    const double scaled = confidence * ECE_BINS;
    int64_t b = scaled == scaled ? (int64_t)scaled : 0;
    if ((double)b == scaled) b -= 1;
    b = b < 0 ? 0 : b >= ECE_BINS ? ECE_BINS - 1 : b;
    s->bins[b] += (double)right - confidence;
}

/* The logged metrics of every member on one part of its data, from its noise-free outputs: x (members,
 * n, dims[0]), y (members, n) (class indices as floats for cross-entropy), y_std (members) the scale of
 * standardized regression targets. result (members, METRICS), in METRIC_LIST's order: the mean loss,
 * accuracy, expected calibration error (Naeini et al. 2015; Guo et al. 2017: sum over 15 equal-width
 * confidence bins of |sum over the bin of (right - confidence)| / n), mse (the mean squared error times
 * y_std^2: the targets' own units) and R^2 (1 - SSE / SST); NaN where the problem has no such metric.
 * Everything is summed in double, row by row in order. Returns 0, or -1 without memory. */
int sweeper_mlp_metrics(const Net *net, const float *theta, const float *x, const float *y, int64_t n,
                        const double *y_std, double *result) {
    const int64_t d0 = net->dims[0], c = net->dims[net->layers], w = max_width(net);
    const double nan = (double)NAN; /* a compiler builtin, not libm */
    int failed = 0;
#pragma omp parallel num_threads(net->threads) reduction(| : failed)
    {
        float *buf = malloc(sizeof(float) * (size_t)(2 * EVAL_ROWS * w + EVAL_ROWS * c));
        if (buf == NULL) {
            failed = 1;
        } else {
            float *out = buf + 2 * EVAL_ROWS * w;
#pragma omp for schedule(dynamic, 1)
            for (int64_t k = 0; k < net->members; k++) {
                const float *yk = y + k * n;
                Sums s;
                memset(&s, 0, sizeof s);
                for (int64_t r = 0; r < n; r += EVAL_ROWS) {
                    const int64_t rows = n - r < EVAL_ROWS ? n - r : EVAL_ROWS;
                    forward_rows(net, theta + k * net->n_params, x + (k * n + r) * d0, rows, buf, out);
                    for (int64_t i = 0; i < rows; i++) add_row(&s, out + i * c, (double)yk[r + i], c, net->loss);
                }
                double *res = result + k * METRICS;
                for (int i = 0; i < METRICS; i++) res[i] = nan;
                if (net->loss == LOSS_MSE) {
                    double mean = 0.0, sst = 0.0;
                    for (int64_t i = 0; i < n; i++) mean += (double)yk[i];
                    mean /= (double)n;
                    for (int64_t i = 0; i < n; i++) sst += ((double)yk[i] - mean) * ((double)yk[i] - mean);
                    res[METRIC_LOSS] = s.sse / (double)n;
                    res[METRIC_MSE] = res[METRIC_LOSS] * (y_std[k] * y_std[k]);
                    res[METRIC_R2] = 1.0 - s.sse / sst;
                } else {
                    double ece = 0.0;
                    for (int b = 0; b < ECE_BINS; b++) ece += s.bins[b] < 0.0 ? -s.bins[b] : s.bins[b];
                    res[METRIC_LOSS] = s.loss / (double)n;
                    res[METRIC_ACCURACY] = s.correct / (double)n;
                    res[METRIC_ECE] = ece / (double)n;
                }
            }
            free(buf);
        }
    }
    return failed ? -1 : 0;
}
