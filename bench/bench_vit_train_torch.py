#!/usr/bin/env python3
"""
bench_vit_train_torch.py — PyTorch's side of bench/bench_vit_train.c: one image-encoder training
step of ViT-B/32 (forward, backward, AdamW) with the same spec, batch and step structure.

    python3 bench/bench_vit_train_torch.py [--spec lora|full_last_k|all] [--batch B] [--steps N]
        [--warmup W] [--device cpu|cuda] [--bf16] [--compile] [--rank R] [--alpha A] [--k K]
        [--threads T] [--arch vit-b-32|tiny]

Model: transformers CLIPModel's vision tower + visual_projection, random init, quick_gelu (the
numbers laic's weights describe), fp32 parameters. Specs as laic's: lora = PEFT-style adapters
lora_B(lora_A(x)) * α/r on q_proj and v_proj of every layer (base frozen), full_last_k = layers
>= k + post_layernorm + visual_projection, all = every vision parameter. Step = forward, loss =
sum(F * G) for a fixed random G (so the backward starts from dL/dF = G, as laic's bench), backward,
torch.optim.AdamW (foreach default), zero_grad(set_to_none=False). --bf16: torch.autocast(bf16)
around forward + loss (fp32 master weights, as laic's bf16). --compile: torch.compile(model)
(default mode). Prints one JSON line like the C bench.
"""
import argparse
import json
import time

import torch


def vit_config(arch):
    from transformers import CLIPVisionConfig
    if arch == "tiny":
        return CLIPVisionConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                                num_attention_heads=4, image_size=32, patch_size=8,
                                hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32)
    return CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                            num_attention_heads=12, image_size=224, patch_size=32,
                            hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=512)


class LoRA(torch.nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scale = base, alpha / r
        self.lora_A = torch.nn.Linear(base.in_features, r, bias=False)
        self.lora_B = torch.nn.Linear(r, base.out_features, bias=False)
        torch.nn.init.kaiming_uniform_(self.lora_A.weight, a=5 ** 0.5)
        torch.nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale


class Encoder(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        from transformers import CLIPVisionModel
        m = CLIPVisionModel(cfg)
        # transformers < 5 wraps the tower in .vision_model; 5.x is the tower itself
        self.vision = getattr(m, "vision_model", m)
        self.proj = torch.nn.Linear(cfg.hidden_size, cfg.projection_dim, bias=False)

    def forward(self, pix):
        return self.proj(self.vision(pixel_values=pix).pooler_output)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--spec", default="lora", choices=["lora", "full_last_k", "all"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--rank", type=int, default=128)
    ap.add_argument("--alpha", type=float, default=128.0)
    ap.add_argument("--k", type=int, default=9)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--arch", default="vit-b-32")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = vit_config(a.arch)
    model = Encoder(cfg)
    for p in model.parameters():
        p.requires_grad_(a.spec == "all")
    if a.spec == "lora":
        for layer in model.vision.encoder.layers:
            layer.self_attn.q_proj = LoRA(layer.self_attn.q_proj, a.rank, a.alpha)
            layer.self_attn.v_proj = LoRA(layer.self_attn.v_proj, a.rank, a.alpha)
    elif a.spec == "full_last_k":
        k = min(a.k, cfg.num_hidden_layers - 1)
        for layer in model.vision.encoder.layers[k:]:
            layer.requires_grad_(True)
        model.vision.post_layernorm.requires_grad_(True)
        model.proj.requires_grad_(True)
    model = model.to(a.device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-5 if a.spec == "lora" else 1e-5, weight_decay=0.0)
    run = torch.compile(model) if a.compile else model
    g = torch.Generator().manual_seed(1)
    S = cfg.image_size
    pix = torch.randn(a.batch, 3, S, S, generator=g).to(a.device)
    G = (torch.randn(a.batch, cfg.projection_dim, generator=g) * 0.01).to(a.device)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    tf = tb = to = 0.0
    best = float("inf")
    for s in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        with torch.autocast(a.device.split(":")[0], dtype=torch.bfloat16, enabled=a.bf16):
            loss = (run(pix).float() * G).sum()
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=False)
        sync()
        t3 = time.perf_counter()
        if s < a.warmup:
            continue
        tf, tb, to = tf + t1 - t0, tb + t2 - t1, to + t3 - t2
        best = min(best, t3 - t0)
    step = (tf + tb + to) / a.steps
    impl = "torch.compile" if a.compile else "torch eager"
    print(json.dumps({"impl": impl, "device": a.device, "precision": "bf16" if a.bf16 else "fp32",
                      "spec": a.spec, "batch": a.batch, "steps": a.steps,
                      "img_s": round(a.batch / step, 3), "img_s_best": round(a.batch / best, 3),
                      "ms_step": round(1e3 * step, 1), "ms_fwd": round(1e3 * tf / a.steps, 1),
                      "ms_bwd": round(1e3 * tb / a.steps, 1), "ms_opt": round(1e3 * to / a.steps, 1),
                      "trainable": sum(p.numel() for p in params), "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
