#!/usr/bin/env python3
"""bench_train_torch.py — a PyTorch CoOp-style prompt-learning loop, the baseline laic's trainer
(host/train/trainer.c) is timed against (issue 7 bench; SPEC §7).

Same recipe as laic:
  - frozen HF CLIPModel (random init of the architecture: the arithmetic, hence the time, of the
    real model; eval mode, no gradient through the image tower);
  - K prompts "<SOT> a photo of a v_1..v_M <EOT>", M = 4 learnable vectors per class, N(0, 0.02²),
    run at their own length T = 10 like laic (CoOp pads to 77; --pad77 for that);
  - views per image: weak = RandomResizedCrop(S, (0.08, 1), bicubic) + horizontal flip, strong =
    an independent weak view + RandAugment(2, 10) — torchvision transforms on PIL images;
  - loss: GCE (q 0.7) on high-quality samples (strong view), MSE between the softmax of the
    strong view and the detached weak view on the others, minus the entropy of the batch's mean
    prediction; logits 100 · cos; weights 1, 1, 1;
  - SGD lr 0.002, momentum 0.9, weight decay 5e-4; CoOp schedule: 1 warm-up epoch at 1e-5 then
    cosine over max_epoch = 20 (the recursive torch formula, as host/train/train.c's train_lr).
Data: --data synthetic (N random RGB images of --src-size pixels, labels i % K, 3 of 4 samples
high-quality, like bench/bench_train_cpu.sh) or a folder of images (pseudo-labels i % K).

Prints one line per measurement: one step (after one warm-up step), and each epoch, with the
split views / image encoder / text+loss+backward+update, img/s.

  python3 bench/bench_train_torch.py --arch tiny --epochs 1 --n 128
  python3 bench/bench_train_torch.py --arch vit-b-32 --steps 1 --device cuda
"""
import argparse
import glob
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T
from transformers import CLIPConfig, CLIPModel

SOT, EOT = 49406, 49407
PREFIX = [320, 1125, 539, 320]   # "a photo of a" in CLIP's BPE (laic tokenize agrees)
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)

ARCHS = {   # host/model/weights.c presets
    "vit-b-32": dict(image_size=224, patch_size=32, vision_width=768, vision_layers=12,
                     vision_heads=12, vision_mlp=3072, text_width=512, text_layers=12,
                     text_heads=8, text_mlp=2048, embed_dim=512),
    "tiny": dict(image_size=32, patch_size=8, vision_width=64, vision_layers=2, vision_heads=4,
                 vision_mlp=256, text_width=32, text_layers=2, text_heads=4, text_mlp=128,
                 embed_dim=32),
}


def make_model(arch, device):
    a = ARCHS[arch]
    cfg = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=a["text_width"],
                         intermediate_size=a["text_mlp"], num_hidden_layers=a["text_layers"],
                         num_attention_heads=a["text_heads"], max_position_embeddings=77,
                         hidden_act="quick_gelu", bos_token_id=SOT, eos_token_id=EOT,
                         projection_dim=a["embed_dim"]),
        vision_config=dict(hidden_size=a["vision_width"], intermediate_size=a["vision_mlp"],
                           num_hidden_layers=a["vision_layers"],
                           num_attention_heads=a["vision_heads"], image_size=a["image_size"],
                           patch_size=a["patch_size"], hidden_act="quick_gelu",
                           projection_dim=a["embed_dim"]),
        projection_dim=a["embed_dim"])
    m = CLIPModel(cfg).to(device).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m, a


class PromptLearner(torch.nn.Module):
    """CoOp's class-specific context: K x M vectors between the frozen prefix and EOT."""

    def __init__(self, model, K, M, pad77, device):
        super().__init__()
        tm = model.text_model
        D = tm.config.hidden_size
        g = torch.Generator().manual_seed(0)
        self.ctx = torch.nn.Parameter((torch.randn(K, M, D, generator=g) * 0.02).to(device))
        tok = tm.embeddings.token_embedding.weight
        self.register_buffer("head", tok[[SOT] + PREFIX].detach().clone())   # (1+P, D)
        self.register_buffer("eot", tok[[EOT]].detach().clone())             # (1, D)
        self.T = 1 + len(PREFIX) + M + 1
        self.Tpad = 77 if pad77 else self.T
        self.K = K

    def forward(self):
        K, D = self.K, self.head.shape[1]
        parts = [self.head.expand(K, -1, -1), self.ctx, self.eot.expand(K, -1, -1)]
        if self.Tpad > self.T:   # CoOp: padding tokens (id 0 embedding) after EOT
            parts.append(torch.zeros(K, self.Tpad - self.T, D, device=self.ctx.device))
        return torch.cat(parts, 1)


def encode_prompts(model, emb, eot_pos):
    """Frozen text tower on input embeddings (K,T,D) -> (K,E) unnormalised features."""
    tm = model.text_model
    Tn = emb.shape[1]
    pos = tm.embeddings.position_embedding.weight[:Tn]
    h = emb + pos
    mask = torch.full((Tn, Tn), float("-inf"), device=emb.device).triu(1)[None, None]
    h = tm.encoder(inputs_embeds=h, attention_mask=mask).last_hidden_state
    h = tm.final_layer_norm(h)
    return model.text_projection(h[:, eot_pos])


def encode_images(model, pix):
    with torch.no_grad():
        out = model.vision_model(pixel_values=pix)
        return model.visual_projection(out.pooler_output)


def loss_fn(fw, fs, W, y, hq, q=0.7, alpha=1.0, beta=1.0, scale=100.0):
    ps = torch.softmax(scale * fs @ W.T, 1)
    pw = torch.softmax(scale * fw @ W.T, 1).detach()
    zero = W.sum() * 0
    gce = ((1 - ps[hq, y[hq]] ** q) / q).mean() if hq.any() else zero
    mse = F.mse_loss(ps[~hq], pw[~hq]) if (~hq).any() else zero
    pbar = ps.mean(0)
    H = -(pbar * torch.log(pbar)).sum()
    return gce + alpha * mse - beta * H


def coop_lr(epoch, base=0.002, max_epoch=20, warmup=1, warmup_lr=1e-5):
    """host/train/train.c train_lr: constant warm-up, then torch's recursive cosine."""
    if epoch < warmup:
        return warmup_lr
    lr, Tm = base, float(max_epoch)
    for t in range(1, epoch - warmup + 1):
        if math.fmod(t - 1 - Tm, 2 * Tm) == 0:
            lr = lr + base * (1 - math.cos(math.pi / Tm)) / 2
        else:
            lr = (1 + math.cos(math.pi * t / Tm)) / (1 + math.cos(math.pi * (t - 1) / Tm)) * lr
    return lr


class Views(torch.utils.data.Dataset):
    def __init__(self, images, S):
        self.images = images
        weak = [T.RandomResizedCrop(S, scale=(0.08, 1.0),
                                    interpolation=T.InterpolationMode.BICUBIC),
                T.RandomHorizontalFlip()]
        tail = [T.ToTensor(), T.Normalize(MEAN, STD)]
        self.weak = T.Compose(weak + tail)
        self.strong = T.Compose(weak + [T.RandAugment(2, 10)] + tail)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        im = self.images[i]
        if isinstance(im, str):
            im = Image.open(im).convert("RGB")
        return self.weak(im), self.strong(im), i


def load_images(args):
    if args.data == "synthetic":
        rs = np.random.RandomState(args.seed)
        return [Image.fromarray(rs.randint(0, 256, (args.src_size, args.src_size, 3), np.uint8))
                for _ in range(args.n)]
    files = sorted(f for e in ("jpg", "jpeg", "png", "JPEG") for f in
                   glob.glob(os.path.join(args.data, "**", "*." + e), recursive=True))
    return files[:args.n] if args.n else files


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="tiny", choices=sorted(ARCHS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", default="synthetic", help="'synthetic' or an image folder")
    ap.add_argument("--n", type=int, default=128, help="images (synthetic) / max images")
    ap.add_argument("--src-size", type=int, default=32, help="synthetic image side")
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--M", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1, help="epochs to time (0 = step only)")
    ap.add_argument("--steps", type=int, default=0, help="cap on steps per epoch (0 = all)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for the views")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--pad77", action="store_true", help="pad prompts to 77 tokens like CoOp")
    ap.add_argument("--check", action="store_true",
                    help="check the embeddings path against text_model(input_ids) and exit")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bf16", action="store_true",
                    help="image encoder under torch.autocast(bfloat16) (laic's --precision bf16)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    model, a = make_model(args.arch, dev)

    if args.check:   # the prompt path must equal HF's own forward for real token ids
        ids = torch.tensor([[SOT] + PREFIX + [1000, 2000, 3000, 4000, EOT]], device=dev)
        ref = model.get_text_features(input_ids=ids)
        ref = ref.pooler_output if hasattr(ref, "pooler_output") else ref
        emb = model.text_model.embeddings.token_embedding(ids)
        got = encode_prompts(model, emb, ids.shape[1] - 1)
        err = (got - ref).abs().max().item()
        print(f"check: max |prompt path - HF text features| = {err:.3g}")
        raise SystemExit(0 if err < 1e-5 else 1)

    pl = PromptLearner(model, args.K, args.M, args.pad77, dev)
    opt = torch.optim.SGD([pl.ctx], lr=coop_lr(0), momentum=0.9, weight_decay=5e-4)
    images = load_images(args)
    N = len(images)
    y_all = torch.arange(N) % args.K
    hq_all = (torch.arange(N) % 4) != 0
    ds = Views(images, a["image_size"])
    g = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, generator=g,
                                         num_workers=args.workers, drop_last=False)

    def step(batch, lr):
        t0 = time.perf_counter()
        xw, xs, idx = batch
        xw, xs = xw.to(dev, non_blocking=True), xs.to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            f = encode_images(model, torch.cat([xw, xs]))
        f = F.normalize(f.float(), dim=-1)
        sync(dev)
        t1 = time.perf_counter()
        for gr in opt.param_groups:
            gr["lr"] = lr
        U = encode_prompts(model, pl(), pl.T - 1)
        W = F.normalize(U, dim=-1)
        b = xw.shape[0]
        loss = loss_fn(f[:b], f[b:], W, y_all[idx].to(dev), hq_all[idx].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(dev)
        return loss.item(), t1 - t0, time.perf_counter() - t1

    print(f"torch {torch.__version__} on {dev} ({torch.get_num_threads()} threads), arch "
          f"{args.arch}, N={N}, K={args.K}, batch {args.batch}, T={pl.Tpad}, workers "
          f"{args.workers}")
    # one step: a warm-up step first (allocator, kernels), then the timed one
    it = iter(loader)
    tv0 = time.perf_counter()
    batch = next(it)
    step(batch, coop_lr(0))
    tv1 = time.perf_counter()
    batch = next(it) if N > args.batch else batch
    tv2 = time.perf_counter()
    _, ti, tt = step(batch, coop_lr(0))
    b = batch[0].shape[0]
    tot = tv2 - tv1 + ti + tt
    print(f"step     {b:5d} images  {tot:8.3f} s  {b / tot:8.1f} img/s   views {tv2 - tv1:.3f} s  "
          f"image {ti:.3f} s  text+loss+update {tt:.3f} s   (warm-up step {tv1 - tv0:.2f} s)")
    for ep in range(args.epochs):
        lr = coop_lr(ep)
        t_ep, tv, timg, ttxt, seen, loss_sum, steps = time.perf_counter(), 0.0, 0.0, 0.0, 0, 0.0, 0
        t = time.perf_counter()
        for batch in loader:
            tv += time.perf_counter() - t
            loss, ti, tt = step(batch, lr)
            timg, ttxt, loss_sum, steps = timg + ti, ttxt + tt, loss_sum + loss, steps + 1
            seen += batch[0].shape[0]
            t = time.perf_counter()
            if args.steps and steps >= args.steps:
                break
        secs = time.perf_counter() - t_ep
        print(f"epoch {ep + 1:2d} {seen:5d} images  {secs:8.3f} s  {seen / secs:8.1f} img/s   "
              f"views {tv:.3f} s  image {timg:.3f} s  text+loss+update {ttxt:.3f} s   lr {lr:.3g}"
              f"  loss {loss_sum / steps:.5f} ({steps} steps)")


if __name__ == "__main__":
    main()
