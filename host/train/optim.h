/*
 * optim.h — host side of the optimisers the trainers use through the op table (host/ops.h):
 * the per-step scalars of Adam / AdamW. The update itself is the op adam_forward.
 */
#ifndef LAIC_OPTIM_H
#define LAIC_OPTIM_H

#include <math.h>

/* sched (3) = {lr, 1 − β1^t, 1 − β2^t} for step t ≥ 1, as torch.optim.Adam computes them
 * (Python's float ** is C pow). Copy it to backend memory and pass it to adam_forward. */
static inline void adam_schedule(double sched[3], double lr, double beta1, double beta2, long t) {
    sched[0] = lr;
    sched[1] = 1.0 - pow(beta1, (double)t);
    sched[2] = 1.0 - pow(beta2, (double)t);
}

#endif
