#!/usr/bin/env python3
"""bench_heads_torch.py — the PyTorch side of bench/bench_heads.c: SIC and TAC (trained) on the
same cached features, as the authors' code runs them, on the CPU.

  python3 bench/bench_heads_torch.py sic DIR [--epochs 100] [--loader authors|tensor] [--threads 2] [--device cpu|cuda]
  python3 bench/bench_heads_torch.py tac DIR [--epochs 20]  [--loader authors|tensor] [--threads 2] [--device cpu|cuda]

DIR is what `build/bench/bench_heads gen DIR` writes (X_train, X_test, y_*, bank, nouns .npy).

SIC mirrors shaotiancai/SIC@a8969ac on cached features: faiss IndexFlatL2 top-21 (knn.py,
utils.py:153-165), sklearn KMeans(10, n_init=20) (evaluate_utils.py:82-105), the two semantic
filters over the bank in batches of 128 (semantic_filters.py), then per epoch the centre mapping
(compute_center.py) and the batches of train_utils.py with SICLoss (losses.py) and
Adam(1e-4, wd 1e-4), and the test ACC after every epoch (sic.py:148-155; the early stop is off so
every epoch runs, as on the laic side). The one thing not mirrored: the authors re-encode the
semantic space with CLIP's text encoder every epoch (search_sim_texts); both sides here read the
cached bank features.

TAC mirrors XLearning-SCU/2024-ICML-TAC@830e02c: the text counterparts of retrieve_text.py (fp32 on
the CPU instead of fp16 on a GPU), faiss IndexFlatIP top-51 with the first column dropped
(data_utils.py:107-116), ClusterHead (models.py), NeighborsDataset + DataLoader(batch 512,
shuffle, drop_last) and the loop of train_head.py:106-155 (DistillLoss, consistency, entropy,
Adam betas (0.9, 0.99)), with the test inference after every epoch.

--loader authors (default) uses the authors' Dataset / DataLoader (per-item __getitem__ with one
np.random.choice per neighbour); --loader tensor draws the epoch's shuffle and neighbours with
vectorised torch ops and slices batches: the same maths without the per-item Python cost.
--device cuda runs the training loop (and the per-epoch mapping and evaluation) on the GPU, as the
authors do; the setup (faiss, sklearn) stays on the CPU.
Printed: one line per phase with seconds, then the test ACC, in bench_heads.c's format.
"""
import argparse
import time

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from torch.utils.data import DataLoader, Dataset, TensorDataset


def acc(pred, y):
    k = max(pred.max(), y.max()) + 1
    w = np.zeros((k, k), dtype=np.int64)
    np.add.at(w, (pred, y), 1)
    r, c = linear_sum_assignment(-w)
    return w[r, c].sum() / len(y)


def load(d, name):
    return np.load(f"{d}/{name}.npy")


# --- SIC -------------------------------------------------------------------------------------------

class SICLoss(torch.nn.Module):
    def __init__(self, entropy_weight=5.0, ce_weight=0.1):
        super().__init__()
        self.entropy_weight, self.ce_weight = entropy_weight, ce_weight
        self.CE = torch.nn.CrossEntropyLoss(reduction="mean")

    def forward(self, image_output, image_nb_output, image_feature, text_center):
        b, c = image_nb_output.size()
        image_prob = torch.softmax(image_output, dim=-1)
        image_nb_prob = torch.softmax(image_nb_output, dim=-1)
        similarity = torch.bmm(image_prob.view(b, 1, c), image_nb_prob.view(b, c, 1)).squeeze()
        consistency_loss = -torch.sum(torch.log(similarity), dim=0) / b
        x_ = torch.clamp(torch.mean(image_prob, 0), min=1e-8)
        entropy_loss = -(x_ * torch.log(x_)).sum()
        text_prob = torch.mm(image_feature, text_center.T).softmax(dim=-1)
        _, pseudo_label = torch.max(text_prob, dim=1)
        ce_loss = self.CE(image_output, pseudo_label)
        total = consistency_loss - self.entropy_weight * entropy_loss + self.ce_weight * ce_loss
        return total, consistency_loss, entropy_loss, ce_loss


class SICNeighbors(Dataset):
    """custom_dataset.py NeighborsDataset on cached features: index and one neighbour index."""

    def __init__(self, indices):
        self.indices = indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return {"index": index, "n_index": torch.tensor(np.random.choice(self.indices[index], 1)[0])}


def sic(args):
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    X = load(args.dir, "X_train").astype(np.float32)
    Xe = torch.from_numpy(load(args.dir, "X_test").astype(np.float32))
    ye = load(args.dir, "y_test")
    bank = torch.from_numpy(load(args.dir, "bank").astype(np.float32))
    N, E, K = X.shape[0], X.shape[1], 10
    print(f"torch sic | cpu | N {N} x {E}, test {len(ye)}, bank {len(bank)}, K {K}, {args.epochs} epochs, "
          f"loader {args.loader}, {args.threads} threads", flush=True)
    t0 = time.time()
    index = faiss.IndexFlatL2(E)
    index.add(X)
    _, nbr = index.search(X, 21)   # self included
    t_knn = time.time() - t0
    t = time.time()
    km = KMeans(n_clusters=K, n_init=20)
    km.fit(X)
    C0 = torch.from_numpy(km.cluster_centers_.astype(np.float32))
    t_km = time.time() - t
    t = time.time()
    sims = [torch.cosine_similarity(C0.unsqueeze(1), bank[i:i + 128].unsqueeze(0), dim=2)
            for i in range(0, len(bank), 128)]
    R = torch.topk(torch.cat(sims, dim=1), 500).indices.reshape(-1)
    mean = np.array([bank[i:i + 128].numpy().mean(axis=0) for i in range(0, len(bank), 128)]).mean(axis=0)
    mean = torch.tensor(mean).unsqueeze(0)
    U = torch.cat([torch.arange(i, min(i + 128, len(bank)))[
        torch.cosine_similarity(bank[i:i + 128], mean) < 0.95] for i in range(0, len(bank), 128)])
    S_idx = torch.from_numpy(np.intersect1d(R.numpy(), U.numpy()))
    S = bank[S_idx]
    t_space = time.time() - t
    print(f"torch sic | setup: kNN (21, L2, faiss) {t_knn:.2f} s, k-means (sklearn, n_init 20) {t_km:.2f} s, "
          f"semantic space {t_space:.2f} s ({len(S)} nouns) | total {time.time() - t0:.2f} s", flush=True)

    dev = torch.device(args.device)
    torch.manual_seed(0)
    np.random.seed(0)
    head = torch.nn.Linear(E, K).to(dev)
    opt = torch.optim.Adam(head.parameters(), lr=1e-4, weight_decay=1e-4)
    crit = SICLoss()
    feats = torch.from_numpy(X).to(dev)
    S = S.to(dev)
    Xe = Xe.to(dev)
    nbr_t = torch.from_numpy(nbr).to(dev)
    if args.loader == "authors":
        loader = DataLoader(SICNeighbors(nbr), batch_size=128, shuffle=True, drop_last=False, num_workers=0)
    t1 = time.time()
    t_map = t_eval = 0.0
    steps = 0
    accs = []
    for epoch in range(args.epochs):
        t = time.time()
        head.eval()   # model.eval() in sic_train (update_cluster_head_only)
        with torch.no_grad():   # get_centers: head on the features in batches of 1024
            scores = torch.cat([head(feats[i:i + 1024]) for i in range(0, N, 1024)])
        _, idx_max = torch.sort(scores, dim=0, descending=True)
        topk = int((N // K) * 0.9)
        idx_max = idx_max[:topk, :]
        centers = torch.cat([feats[idx_max[:, c], :].mean(axis=0).unsqueeze(0) for c in range(K)])
        centers = F.normalize(centers, dim=1)
        sim = torch.cosine_similarity(centers.unsqueeze(1), S.unsqueeze(0), dim=2)
        ind = torch.topk(sim, 30).indices.reshape(-1)
        near = S[ind]
        text_centers = torch.cat([(torch.sum(near[i:i + 30], dim=0).unsqueeze(0)) / 30 for i in range(0, len(ind), 30)])
        text_centers = F.normalize(text_centers, dim=1)
        t_map += time.time() - t
        if args.loader == "authors":
            batches = ((b["index"], b["n_index"]) for b in loader)
        else:
            perm = torch.randperm(N, device=dev)
            pick = nbr_t[perm, torch.randint(0, 21, (N,), device=dev)]
            batches = ((perm[i:i + 128], pick[i:i + 128]) for i in range(0, N, 128))
        for indices, n_indices in batches:
            anchor = feats[indices.to(dev)]
            neighbor = feats[n_indices.to(dev)]
            total, _, _, _ = crit(head(anchor), head(neighbor), anchor, text_centers)
            opt.zero_grad()
            total.backward()
            opt.step()
            for g in opt.param_groups:   # run_scheduler, 'constant'
                g["lr"] = 1e-4
            steps += 1
        t = time.time()
        with torch.no_grad():
            pred = torch.cat([head(Xe[i:i + 1024]) for i in range(0, len(Xe), 1024)]).argmax(1).cpu().numpy()
        accs.append(acc(pred, ye))
        t_eval += time.time() - t
    if args.device == "cuda":
        torch.cuda.synchronize()
    tt = time.time() - t1
    print(f"torch sic | train {args.epochs} epochs: {tt:.2f} s (centre mapping {t_map:.2f} s, batches "
          f"{tt - t_map - t_eval:.2f} s, test eval {t_eval:.2f} s; {steps} steps, "
          f"{1e6 * (tt - t_map - t_eval) / steps:.1f} us/step) | last-epoch test ACC {accs[-1]:.4f}, "
          f"best {max(accs):.4f} (epoch {int(np.argmax(accs)) + 1})", flush=True)


# --- TAC -------------------------------------------------------------------------------------------

class ClusterHead(torch.nn.Module):
    def __init__(self, in_dim=512, num_clusters=10):
        super().__init__()
        mk = lambda: torch.nn.Sequential(torch.nn.Linear(in_dim, in_dim), torch.nn.BatchNorm1d(in_dim),
                                         torch.nn.ReLU(), torch.nn.Linear(in_dim, num_clusters),
                                         torch.nn.Softmax(dim=1))
        self.cluster_head_text = mk()
        self.cluster_head_image = mk()
        for seq in (self.cluster_head_text, self.cluster_head_image):
            torch.nn.init.trunc_normal_(seq[0].weight, std=0.02)
            torch.nn.init.trunc_normal_(seq[3].weight, std=0.02)

    def forward(self, text, image):
        return self.cluster_head_text(text), self.cluster_head_image(image)


def entropy(logit):
    logit = logit.mean(dim=0)
    logit_ = torch.clamp(logit, min=1e-9)
    return -(logit_ * torch.log(logit_)).sum()


def consistency_loss(anchors, neighbors):
    b, n = anchors.size()
    similarity = torch.bmm(anchors.view(b, 1, n), neighbors.view(b, n, 1)).squeeze()
    return F.binary_cross_entropy(similarity, torch.ones_like(similarity))


class DistillLoss(torch.nn.Module):
    def __init__(self, class_num, temperature):
        super().__init__()
        self.class_num, self.temperature = class_num, temperature
        N = 2 * class_num
        mask = torch.ones((N, N)).fill_diagonal_(0)
        for i in range(class_num):
            mask[i, class_num + i] = 0
            mask[class_num + i, i] = 0
        self.mask = mask.bool()
        self.criterion = torch.nn.CrossEntropyLoss(reduction="sum")

    def forward(self, c_i, c_j):
        N = 2 * self.class_num
        c = F.normalize(torch.cat((c_i.t(), c_j.t()), dim=0), dim=1)
        sim = c @ c.T / self.temperature
        pos = torch.cat((torch.diag(sim, self.class_num), torch.diag(sim, -self.class_num)), dim=0).reshape(N, 1)
        neg = sim[self.mask].reshape(N, -1)
        logits = torch.cat((pos, neg), dim=1)
        return self.criterion(logits, torch.zeros(N, device=logits.device).long()) / N


class TACNeighbors(Dataset):
    """data_utils.py:119-141."""

    def __init__(self, dataset_text, dataset_image, indices_text, indices_image):
        self.dataset_text, self.dataset_image = dataset_text, dataset_image
        self.indices_text, self.indices_image = indices_text, indices_image

    def __len__(self):
        return len(self.dataset_text)

    def __getitem__(self, index):
        anchor_text = self.dataset_text.__getitem__(index)
        anchor_image = self.dataset_image.__getitem__(index)
        neighbor_text = self.dataset_text.__getitem__(np.random.choice(self.indices_text[index], 1)[0])
        neighbor_image = self.dataset_image.__getitem__(np.random.choice(self.indices_image[index], 1)[0])
        return anchor_text, anchor_image, neighbor_text, neighbor_image


def tac(args):
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    X = load(args.dir, "X_train").astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Xe = load(args.dir, "X_test").astype(np.float32)
    Xe /= np.linalg.norm(Xe, axis=1, keepdims=True)
    ye = load(args.dir, "y_test")
    nouns = torch.from_numpy(load(args.dir, "nouns").astype(np.float32))
    nouns = nouns / nouns.norm(dim=1, keepdim=True)
    N, E, K, bs = X.shape[0], X.shape[1], 10, 512
    print(f"torch tac | cpu | N {N} x {E}, test {len(ye)}, nouns {len(nouns)}, K {K}, {args.epochs} epochs, "
          f"batch {bs}, tau 0.5, loader {args.loader}, {args.threads} threads", flush=True)
    t0 = time.time()
    Xt = torch.from_numpy(X)
    ret = []
    for i in range(N // 8192 + 1):   # retrieve_text.py:24-34
        s = torch.softmax(Xt[i * 8192:(i + 1) * 8192] @ nouns.T / 0.005, dim=1)
        ret.append(s @ nouns)
    T = F.normalize(torch.cat(ret), dim=1).numpy()
    T = T / np.linalg.norm(T, axis=1, keepdims=True)   # train_head.py:54
    t_ret = time.time() - t0
    t = time.time()

    def mine(f):
        index = faiss.IndexFlatIP(E)
        index.add(f)
        return index.search(f, 51)[1][:, 1:]

    it, ix = mine(T), mine(X)
    t_knn = time.time() - t
    print(f"torch tac | setup: text counterparts {t_ret:.2f} s, kNN (50, X and t, faiss) {t_knn:.2f} s | "
          f"total {time.time() - t0:.2f} s", flush=True)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    np.random.seed(0)
    model = ClusterHead(E, K).to(dev)
    opt = torch.optim.Adam(model.parameters(), betas=(0.9, 0.99))
    distill = DistillLoss(K, 0.5)
    distill.mask = distill.mask.to(dev)
    Tt = torch.from_numpy(T)
    if args.loader == "authors":
        loader = DataLoader(TACNeighbors(TensorDataset(Tt), TensorDataset(Xt), it, ix), batch_size=bs,
                            shuffle=True, drop_last=True)
    t1 = time.time()
    t_eval = 0.0
    steps = 0
    for epoch in range(args.epochs):
        model.train()
        if args.loader == "authors":
            batches = ((a[0], b[0], c[0], d[0]) for a, b, c, d in loader)
        else:
            perm = torch.randperm(N)[:N // bs * bs]
            nt = torch.from_numpy(it)[perm, torch.randint(0, 50, (len(perm),))]
            nx = torch.from_numpy(ix)[perm, torch.randint(0, 50, (len(perm),))]
            batches = ((Tt[perm[i:i + bs]], Xt[perm[i:i + bs]], Tt[nt[i:i + bs]], Xt[nx[i:i + bs]])
                       for i in range(0, len(perm), bs))
        for text, image, neigh_text, neigh_image in batches:
            text, image = text.to(dev), image.to(dev)
            neigh_text, neigh_image = neigh_text.to(dev), neigh_image.to(dev)
            logit_text, logit_image = model(text, image)
            neigh_logit_text, neigh_logit_image = model(neigh_text, neigh_image)
            loss = (distill(logit_image, neigh_logit_text) + distill(logit_text, neigh_logit_image)
                    + consistency_loss(logit_text, logit_image)
                    - 5 * (entropy(logit_text) + entropy(logit_image)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
        t = time.time()
        model.eval()
        with torch.no_grad():
            Xet = torch.from_numpy(Xe).to(dev)
            pred = torch.cat([model(Xet[i:i + bs], Xet[i:i + bs])[1] for i in range(0, len(Xe), bs)]).argmax(1).cpu().numpy()
        last = acc(pred, ye)
        t_eval += time.time() - t
    if args.device == "cuda":
        torch.cuda.synchronize()
    tt = time.time() - t1
    print(f"torch tac | train {args.epochs} epochs: {tt:.2f} s (batches {tt - t_eval:.2f} s, test eval {t_eval:.2f} s; "
          f"{steps} steps, {1e3 * (tt - t_eval) / steps:.2f} ms/step) | test ACC {last:.4f}", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("method", choices=["sic", "tac"])
    ap.add_argument("dir")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--loader", choices=["authors", "tensor"], default="authors")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    a = ap.parse_args()
    if a.epochs is None:
        a.epochs = 100 if a.method == "sic" else 20
    (sic if a.method == "sic" else tac)(a)
