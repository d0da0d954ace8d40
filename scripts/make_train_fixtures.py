#!/usr/bin/env python3
"""make_train_fixtures.py — goldens for tests/train/test_train.c and tests/model/test_augment.c.

Writes tests/fixtures/train/:
  loss_*.npy      fixed features, and for every non-empty subset of {gce, mse, entropy} and
                  three high-quality masks (mixed / none / all): loss terms and dL/dW from
                  PyTorch autograd in float64 (inputs are the float32 values, upcast)
  l2n_*.npy       backward of row L2 normalisation (autograd, float64)
  sgd_*.npy       torch.optim.SGD(lr, momentum 0.9, weight_decay 5e-4) driven by CoOp's
                  ConstantWarmupScheduler(CosineAnnealingLR) on float32 parameters
  lr_*.npy        the learning rate per epoch of that scheduler
  aug_*.npy       torchvision (PIL) RandAugment ops, resized crops and RandomResizedCrop
                  parameter statistics (see make_aug below)
  cj_*.npy        torchvision (PIL) ColorJitter adjustments, RandomGrayscale, whole ColorJitter
                  calls with fixed draws, SEIC strong views with fixed draws, and the SEIC crop
                  statistics (see make_cj below)

Run from the repository root:  python3 scripts/make_train_fixtures.py
Needs torch and torchvision (pip install --no-deps torchvision matching the installed torch).
"""
import itertools
import math
import os

import numpy as np
import torch

OUT = "tests/fixtures/train"


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), a)


# --- losses ---------------------------------------------------------------------------------

def ref_loss(fw, fs, W, y, hq, terms, q=0.7, alpha=1.0, beta=1.0, scale=100.0):
    """The loss of SPEC §7 written the obvious way; autograd gives dL/dW."""
    W = W.clone().requires_grad_(True)
    ps = torch.softmax(scale * fs @ W.T, dim=1)
    pw = torch.softmax(scale * fw @ W.T, dim=1).detach()   # weak view: target, no gradient
    hqb = hq.bool()
    zero = W.sum() * 0
    gce = ((1 - ps[hqb, y[hqb]] ** q) / q).mean() if hqb.any() else zero
    mse = torch.nn.functional.mse_loss(ps[~hqb], pw[~hqb]) if (~hqb).any() else zero
    pbar = ps.mean(0)
    H = -(pbar * torch.log(pbar)).sum()
    L = zero
    if "gce" in terms:
        L = L + gce
    if "mse" in terms:
        L = L + alpha * mse
    if "entropy" in terms:
        L = L - beta * H
    L.backward()
    return np.array([L.item(), gce.item(), mse.item(), H.item()]), W.grad.numpy()


def make_loss():
    g = np.random.default_rng(7)
    B, K, E = 12, 6, 16
    W = g.standard_normal((K, E))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    # image features near a random class centre so the softmax is neither flat nor one-hot
    lab = g.integers(0, K, B)
    fw = W[lab] * 0.5 + 0.25 * g.standard_normal((B, E))
    fs = fw + 0.15 * g.standard_normal((B, E))
    fw /= np.linalg.norm(fw, axis=1, keepdims=True)
    fs /= np.linalg.norm(fs, axis=1, keepdims=True)
    y = np.where(g.random(B) < 0.8, lab, g.integers(0, K, B)).astype(np.int32)
    W, fw, fs = (a.astype(np.float32) for a in (W, fw, fs))
    masks = {"mixed": (g.random(B) < 0.5).astype(np.uint8), "none": np.zeros(B, np.uint8),
             "all": np.ones(B, np.uint8)}
    masks["mixed"][:2] = [1, 0]   # at least one of each
    save("loss_W", W)
    save("loss_fw", fw)
    save("loss_fs", fs)
    save("loss_y", y)
    subsets = [c for r in (1, 2, 3) for c in itertools.combinations(("gce", "mse", "entropy"), r)]
    vals, grads, hqs = [], [], []
    for mname in ("mixed", "none", "all"):
        hqs.append(masks[mname])
        for s in subsets:
            v, dW = ref_loss(*(torch.tensor(a, dtype=torch.float64) for a in (fw, fs, W)),
                             torch.tensor(y, dtype=torch.long), torch.tensor(masks[mname]), s)
            vals.append(v)
            grads.append(dW)
    save("loss_hq", np.stack(hqs))                    # (3, B) mixed, none, all
    save("loss_vals", np.stack(vals))                 # (3*7, 4) total, gce, mse, H
    save("loss_dW", np.stack(grads))                  # (3*7, K, E)
    # subset order, as a bit mask gce=1 mse=2 entropy=4
    save("loss_terms", np.array([sum({"gce": 1, "mse": 2, "entropy": 4}[t] for t in s)
                                 for s in subsets], np.int32))
    # row L2-normalisation backward
    u = torch.tensor(g.standard_normal((K, E)).astype(np.float32), dtype=torch.float64,
                     requires_grad=True)
    dw = torch.tensor(g.standard_normal((K, E)).astype(np.float32), dtype=torch.float64)
    (torch.nn.functional.normalize(u, dim=1) * dw).sum().backward()
    save("l2n_u", u.detach().numpy().astype(np.float32))
    save("l2n_dw", dw.numpy().astype(np.float32))
    save("l2n_du", u.grad.numpy())


# --- optimiser and schedule -----------------------------------------------------------------

class ConstantWarmup(torch.optim.lr_scheduler.LRScheduler):
    """CoOp's ConstantWarmupScheduler (dassl.optim.lr_scheduler), re-typed from its definition:
    constant cons_lr for warmup_epoch epochs, then defer to the successor scheduler."""

    def __init__(self, optimizer, successor, warmup_epoch, cons_lr):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        self.cons_lr = cons_lr
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]

    def step(self, epoch=None):
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)


def schedule(max_epoch, n_epochs, lr=0.002, steps_per_epoch=0, p0=None, grads=None):
    p = torch.nn.Parameter(torch.tensor(p0) if p0 is not None else torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr, momentum=0.9, weight_decay=5e-4, foreach=False)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, float(max_epoch))
    sch = ConstantWarmup(opt, cos, 1, 1e-5)
    lrs, ps, k = [], [], 0
    for _ in range(n_epochs):
        lrs.append(opt.param_groups[0]["lr"])
        for _ in range(steps_per_epoch):
            opt.zero_grad()
            p.grad = torch.tensor(grads[k])
            k += 1
            opt.step()
            ps.append(p.detach().numpy().copy())
        sch.step()
    return np.array(lrs, np.float64), ps


def make_sgd():
    save("lr_T20", schedule(20, 21)[0])
    save("lr_T4", schedule(4, 12)[0])   # runs past T_max: torch's special branch
    g = np.random.default_rng(11)
    shape = (3, 2, 8)
    p0 = (0.02 * g.standard_normal(shape)).astype(np.float32)
    n_ep, spe = 4, 3
    grads = g.standard_normal((n_ep * spe,) + shape).astype(np.float32)
    _, ps = schedule(3, n_ep, lr=0.5, steps_per_epoch=spe, p0=p0, grads=grads)
    save("sgd_p0", p0)
    save("sgd_grads", grads)
    save("sgd_p", np.stack(ps))   # (steps, 3, 2, 8) after each step


# --- augmentations ---------------------------------------------------------------------------

RA_ORDER = ["Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
            "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"]


def test_image(h, w, seed):
    """Smooth colour ramps, a few flat rectangles and noise: exercises every op's rounding."""
    g = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([40 + 150 * x / w, 30 + 180 * y / h, 128 + 60 * np.sin(x / 5.0 + y / 7.0)], -1)
    for _ in range(4):
        t, l = g.integers(0, h - 8), g.integers(0, w - 8)
        img[t:t + g.integers(4, 16), l:l + g.integers(4, 16)] = g.integers(0, 256, 3)
    img += g.normal(0, 12, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_aug():
    from PIL import Image
    import torchvision
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.autoaugment import _apply_op
    print("torchvision", torchvision.__version__)

    # RandAugment ops at M = 10 of 31 bins, both signs, on a 48x64 image
    h, w = 48, 64
    img = test_image(h, w, 3)
    save("aug_img", img)
    space = T.RandAugment(num_ops=2, magnitude=10)._augmentation_space(31, (h, w))
    assert list(space.keys()) == RA_ORDER
    mags, outs = [], []
    for name in RA_ORDER:
        m, signed = space[name]
        mag = float(m[10].item()) if m.ndim > 0 else 0.0
        mags.append([mag, float(signed)])
        for sgn in (1.0, -1.0):
            sgn = sgn if signed else 1.0   # unsigned ops: the "-" slot repeats the "+" one
            o = _apply_op(Image.fromarray(img), name, sgn * mag, InterpolationMode.NEAREST, None)
            outs.append(np.asarray(o))
    save("aug_ra_mag", np.array(mags, np.float64))     # (14, 2) magnitude, signed
    save("aug_ra_out", np.stack(outs))                 # (28, h, w, 3) op-major, + then -
    # the magnitude table at other sizes and levels: rows (h, w, M, 14 magnitudes)
    tab = []
    for (th, tw) in ((224, 224), (224, 301), (37, 19)):
        sp = T.RandAugment()._augmentation_space(31, (th, tw))
        for M in (0, 1, 5, 9, 10, 15, 29, 30):
            tab.append([th, tw, M] + [float(sp[n][0][M].item()) if sp[n][0].ndim > 0 else 0.0
                                      for n in RA_ORDER])
    save("aug_ra_mag_table", np.array(tab, np.float64))
    # a second image with a narrow histogram (AutoContrast / Equalize / Contrast stretch it)
    img2 = (test_image(h, w, 4) // 4 + 90).astype(np.uint8)
    save("aug_img2", img2)
    outs2 = [np.asarray(_apply_op(Image.fromarray(img2), n, 0.0 if n in ("AutoContrast",
             "Equalize") else float(space[n][0][10].item()), InterpolationMode.NEAREST, None))
             for n in ("AutoContrast", "Equalize", "Contrast", "Sharpness", "Color")]
    save("aug_ra_out2", np.stack(outs2))

    # resized crops (bicubic), including upscaling and the vertical-first pass order
    src = test_image(60, 80, 5)
    save("aug_src", src)
    boxes = [(0, 0, 60, 80, 32, 32), (5, 7, 20, 30, 32, 32), (10, 3, 50, 12, 24, 24),
             (2, 4, 55, 40, 16, 30), (0, 0, 60, 80, 60, 80), (13, 21, 7, 9, 40, 40),
             (1, 2, 59, 77, 59, 20), (3, 1, 40, 70, 10, 70)]
    crops = []
    for (t, l, ch, cw, oh, ow) in boxes:
        o = TF.resized_crop(Image.fromarray(src), t, l, ch, cw, [oh, ow],
                            InterpolationMode.BICUBIC)
        crops.append(np.asarray(o).reshape(-1))
    save("aug_boxes", np.array(boxes, np.int32))
    save("aug_crops", np.concatenate(crops))

    # RandomResizedCrop parameter statistics: quantiles of area fraction and log aspect ratio
    torch.manual_seed(123)
    qs = np.linspace(0.05, 0.95, 19)
    stats = []
    for (H, W) in ((224, 224), (300, 200), (100, 400)):
        d = [T.RandomResizedCrop.get_params(torch.empty(1, H, W), (0.08, 1.0), (3 / 4, 4 / 3))
             for _ in range(20000)]
        d = np.array(d, np.float64)
        scale = d[:, 2] * d[:, 3] / (H * W)
        logr = np.log(d[:, 3] / d[:, 2])
        stats.append(np.concatenate([[H, W], np.quantile(scale, qs), np.quantile(logr, qs)]))
    save("aug_rrc_q", np.array(stats))   # (3, 2 + 19 + 19)


CJ_NAMES = ["brightness", "contrast", "saturation", "hue"]   # ColorJitter's fn_idx order


def make_cj():
    """SEIC's strong-view colour ops (SPEC §9.3) on PIL images, torchvision 0.29."""
    from PIL import Image
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    h, w = 48, 64
    img = test_image(h, w, 3)   # the RandAugment test image (aug_img.npy)
    pil = Image.fromarray(img)
    # single adjustments: rows (op, factor as float32), outputs (n, h, w, 3)
    cases = [(0, 0.68), (0, 1.32), (1, 0.68), (1, 1.3177), (2, 0.68), (2, 1.32), (2, 0.0),
             (3, -0.08), (3, 0.0123), (3, -0.0041), (3, -0.5), (3, 0.5)]
    fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    rows, outs = [], []
    for op, f in cases:
        f = float(np.float32(f))   # torchvision's factors are float(float32 draws)
        rows.append([op, f])
        outs.append(np.asarray(fns[op](pil, f)))
    save("cj_cases", np.array(rows, np.float64))
    save("cj_out", np.stack(outs))
    # the narrow-histogram image (aug_img2) through contrast and saturation
    img2 = (test_image(h, w, 4) // 4 + 90).astype(np.uint8)
    outs2 = [np.asarray(TF.adjust_contrast(Image.fromarray(img2), float(np.float32(1.3)))),
             np.asarray(TF.adjust_saturation(Image.fromarray(img2), float(np.float32(0.7)))),
             np.asarray(TF.adjust_hue(Image.fromarray(img2), float(np.float32(0.06))))]
    save("cj_out2", np.stack(outs2))
    save("cj_gray", np.asarray(TF.rgb_to_grayscale(pil, num_output_channels=3)))

    # whole transforms with the random draws fixed: ColorJitter.get_params is replaced by the
    # listed values, so T.ColorJitter.forward itself runs (order of the four adjustments)
    def fixed_params(order, b, c, s, hh):
        return lambda *a: (torch.tensor(order), b, c, s, hh)

    jit = [([2, 0, 3, 1], 1.21, 0.74, 1.05, -0.031), ([3, 1, 0, 2], 0.69, 1.3, 0.81, 0.077),
           ([0, 1, 2, 3], 1.0, 1.0, 1.0, 0.0), ([1, 3, 2, 0], 1.31, 0.7, 0.0, 0.05)]
    jrows, jouts = [], []
    saved = T.ColorJitter.get_params
    try:
        for order, b, c, sat, hh in jit:
            b, c, sat, hh = (float(np.float32(v)) for v in (b, c, sat, hh))
            T.ColorJitter.get_params = staticmethod(fixed_params(order, b, c, sat, hh))
            jrows.append(order + [b, c, sat, hh])
            jouts.append(np.asarray(T.ColorJitter(0.32, 0.32, 0.32, 0.08)(pil)))
    finally:
        T.ColorJitter.get_params = saved
    save("cj_jitter_params", np.array(jrows, np.float64))   # (n, 4 order + 4 factors)
    save("cj_jitter_out", np.stack(jouts))

    # SEIC strong views of aug_src (60x80) to 32x32 with fixed draws: crop box, flip, jitter
    # (applied or not; order, factors), grayscale. Rows: top, left, ch, cw, flip, jitter,
    # order[4], b, c, s, h, gray
    src = test_image(60, 80, 5)
    views = [(3, 5, 50, 70, 1, 1, [3, 0, 2, 1], 1.12, 0.71, 1.29, 0.064, 0),
             (0, 0, 60, 80, 0, 1, [1, 2, 3, 0], 0.83, 1.17, 0.69, -0.072, 1),
             (10, 20, 40, 41, 1, 0, [0, 1, 2, 3], 1.0, 1.0, 1.0, 0.0, 0),
             (7, 2, 44, 60, 0, 0, [0, 1, 2, 3], 1.0, 1.0, 1.0, 0.0, 1)]
    vrows, vouts = [], []
    for (t, l, ch, cw, flip, jon, order, b, c, sat, hh, gray) in views:
        b, c, sat, hh = (float(np.float32(v)) for v in (b, c, sat, hh))
        o = TF.resized_crop(Image.fromarray(src), t, l, ch, cw, [32, 32], InterpolationMode.BICUBIC)
        if flip:
            o = TF.hflip(o)
        if jon:
            T.ColorJitter.get_params = staticmethod(fixed_params(order, b, c, sat, hh))
            try:
                o = T.ColorJitter(0.32, 0.32, 0.32, 0.08)(o)
            finally:
                T.ColorJitter.get_params = saved
        if gray:
            o = TF.rgb_to_grayscale(o, num_output_channels=3)
        vrows.append([t, l, ch, cw, flip, jon] + order + [b, c, sat, hh, gray])
        vouts.append(np.asarray(o))
    save("cj_view_params", np.array(vrows, np.float64))
    save("cj_view_out", np.stack(vouts))

    # RandomResizedCrop(scale (0.5, 1)) statistics, as aug_rrc_q
    torch.manual_seed(321)
    qs = np.linspace(0.05, 0.95, 19)
    stats = []
    for (H, W) in ((224, 224), (300, 200), (100, 400)):
        d = np.array([T.RandomResizedCrop.get_params(torch.empty(1, H, W), (0.5, 1.0), (3 / 4, 4 / 3))
                      for _ in range(20000)], np.float64)
        scale = d[:, 2] * d[:, 3] / (H * W)
        logr = np.log(d[:, 3] / d[:, 2])
        stats.append(np.concatenate([[H, W], np.quantile(scale, qs), np.quantile(logr, qs)]))
    save("cj_rrc_q", np.array(stats))


if __name__ == "__main__":
    import sys
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    # `--only cj` rewrites just the ColorJitter goldens (the others come out a few ulps apart
    # across torch versions; keep the committed ones unless they must change)
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    for name, fn in (("loss", make_loss), ("sgd", make_sgd), ("aug", make_aug), ("cj", make_cj)):
        if only is None or name in only:
            fn()
