"""Same-machine baseline: a PyTorch port of the source's "seed" Progressive GAN.

Needs PyTorch, which is NOT a dependency of mel_tf:

    pip install torch==2.13.0

    python -m research.source_torch_bench --resolutions=4,8,16,32,64,128,256 \
        --iterations=10 --out=FILE.json

The source (the "Mel Icon Generator v2" PyTorch code, zassou65535/image_generator_2)
was timed on another machine; this script re-implements its networks and
training iteration (NCHW, as the source) so that mel_tf can be compared with it
side by side on the same CPU.

Networks (seed architecture):
- Generator: z ~ N(0, I), 8192 dims reshaped to 512x4x4 (no dense, no pixel norm
  on z); blocks [nearest 2x upsample, except the first] -> conv3x3 -> pixel norm
  -> lrelu(0.2) -> conv3x3 -> pixel norm -> lrelu; toRGB 1x1 per block; fade
  (1-a) * toRGB[k-1](up(h)) + a * toRGB[k](block[k](h)); sigmoid output.
- Discriminator: fromRGB 1x1 (+ lrelu) per block; blocks conv3x3 -> pixel norm
  -> lrelu -> conv3x3 -> pixel norm -> lrelu -> 2x2 avg pool; final 4x4 block
  MiniBatchStd (whole batch, unbiased, no epsilon, one scalar map) -> conv3x3
  257->512 -> pixel norm -> lrelu -> conv4x4 valid -> lrelu -> conv1x1 -> 1.
- Every 3x3 conv uses reflection padding and a bias. Weight scaling as the
  source does it: each conv's INPUT is multiplied by sqrt(2 / C_in) and the
  weights are He-initialised as well.

One iteration (batch 8, random data in [0, 1], fade at a = 0.5, train mode):
G step (-E[D(G(z))], Adam), then D step (E[D(fake)] - E[D(real)]
+ 10 * GP + 0.001 * E[D(real)^2], fresh detached fakes, D(real) and D(fake) as
separate calls, GP through torch.autograd.grad(create_graph=True)), then the
generator EMA update. Adam lr 5e-4, betas (0, 0.99) for both networks.

Timing protocol (as the source was timed): torch.set_num_threads(2); per
resolution, networks holding only the stages that resolution needs, 3 warm-up
iterations, then the median (and min) of N timed iterations. Also the
generator forward at 256x256, batch 1, eval mode (median of 20 after warm-up).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import statistics
import sys
import time

from benchmarks.machine import machine_info

RESOLUTIONS = (4, 8, 16, 32, 64, 128, 256)
LATENT_DIM = 8192
LATENT_CHANNELS = 512
# Generator block channels (in, out) at 4, 8, ..., 256.
G_CHANNELS = ((512, 256), (256, 128), (128, 64), (64, 32), (32, 16), (16, 8), (8, 4))
# Discriminator block channels (in, out) at 256, 128, ..., 8.
D_CHANNELS = {256: (4, 8), 128: (8, 16), 64: (16, 32), 32: (32, 64), 16: (64, 128), 8: (128, 256)}
# fromRGB output channels per resolution.
D_FROM_RGB = {256: 4, 128: 8, 64: 16, 32: 32, 16: 64, 8: 128, 4: 256}
EXPECTED_G_PARAMS = 2_361_713
EXPECTED_D_PARAMS = 6_562_497

# The source's own code timed on another, faster 2-core machine, s/iteration.
REFERENCE_SEC_PER_ITER = {4: 0.137, 8: 0.255, 16: 0.364, 32: 0.501, 64: 0.731, 128: 1.112, 256: 2.469}
REFERENCE_GEN_FORWARD_MS = 9.9


def build(torch):
    """Module classes; torch is imported lazily so the file imports without it."""
    nn = torch.nn
    F = torch.nn.functional

    class ScaledConv(nn.Module):
        """Conv with the source's weight scaling: input * sqrt(2 / C_in), He-initialised weights."""

        def __init__(self, cin, cout, k, reflect_pad=0):
            super().__init__()
            self.scale = math.sqrt(2.0 / cin)
            self.conv = nn.Conv2d(cin, cout, k, padding=reflect_pad,
                                  padding_mode="reflect" if reflect_pad else "zeros", bias=True)
            nn.init.kaiming_normal_(self.conv.weight)
            nn.init.zeros_(self.conv.bias)

        def forward(self, x):
            return self.conv(x * self.scale)

    def pixel_norm(x):
        return x / (torch.sqrt(torch.mean(x * x, dim=1, keepdim=True)) + 1e-7)

    def lrelu(x):
        return F.leaky_relu(x, 0.2)

    class ConvBlock(nn.Module):
        """conv3x3 -> pixel norm -> lrelu, twice."""

        def __init__(self, cin, cout):
            super().__init__()
            self.conv1 = ScaledConv(cin, cout, 3, reflect_pad=1)
            self.conv2 = ScaledConv(cout, cout, 3, reflect_pad=1)

        def forward(self, x):
            x = lrelu(pixel_norm(self.conv1(x)))
            return lrelu(pixel_norm(self.conv2(x)))

    class Generator(nn.Module):
        def __init__(self, resolution):
            super().__init__()
            n = int(math.log2(resolution)) - 1  # stages: 4 -> 1, 256 -> 7
            self.blocks = nn.ModuleList(ConvBlock(ci, co) for ci, co in G_CHANNELS[:n])
            self.to_rgb = nn.ModuleList(ScaledConv(co, 3, 1) for _, co in G_CHANNELS[:n])

        def forward(self, z, alpha):
            h = z.view(-1, LATENT_CHANNELS, 4, 4)
            h = self.blocks[0](h)
            last = len(self.blocks) - 1
            if last == 0:
                return torch.sigmoid(self.to_rgb[0](h))
            for blk in self.blocks[1:last]:
                h = blk(F.interpolate(h, scale_factor=2, mode="nearest"))
            up = F.interpolate(h, scale_factor=2, mode="nearest")
            old = self.to_rgb[last - 1](up)
            new = self.to_rgb[last](self.blocks[last](up))
            return torch.sigmoid((1.0 - alpha) * old + alpha * new)

    class MiniBatchStd(nn.Module):
        """Std over the whole batch (unbiased, no epsilon), averaged to a scalar, one map."""

        def forward(self, x):
            s = torch.std(x, dim=0, unbiased=True).mean()
            n, _, h, w = x.shape
            return torch.cat([x, s.expand(n, 1, h, w)], dim=1)

    class DBlock(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.convs = ConvBlock(cin, cout)

        def forward(self, x):
            return F.avg_pool2d(self.convs(x), 2)

    class FinalDBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.mbstd = MiniBatchStd()
            self.conv1 = ScaledConv(257, 512, 3, reflect_pad=1)
            self.conv2 = ScaledConv(512, 512, 4)  # valid: 4x4 -> 1x1
            self.conv3 = ScaledConv(512, 1, 1)

        def forward(self, x):
            x = lrelu(pixel_norm(self.conv1(self.mbstd(x))))
            x = lrelu(self.conv2(x))
            return self.conv3(x)

    class FromRGB(nn.Module):
        def __init__(self, cout):
            super().__init__()
            self.conv = ScaledConv(3, cout, 1)

        def forward(self, x):
            return lrelu(self.conv(x))

    class Discriminator(nn.Module):
        def __init__(self, resolution):
            super().__init__()
            res = [r for r in RESOLUTIONS if r <= resolution]  # 4, 8, ..., resolution
            # Index i handles resolution res[i]; blocks[0] is the final 4x4 block.
            self.res = res
            self.from_rgb = nn.ModuleList(FromRGB(D_FROM_RGB[r]) for r in res)
            self.blocks = nn.ModuleList(
                [FinalDBlock()] + [DBlock(*D_CHANNELS[r]) for r in res[1:]])

        def forward(self, img, alpha):
            top = len(self.blocks) - 1
            if top == 0:
                h = self.from_rgb[0](img)
            else:
                old = self.from_rgb[top - 1](F.avg_pool2d(img, 2))
                new = self.blocks[top](self.from_rgb[top](img))
                h = (1.0 - alpha) * old + alpha * new
                for i in range(top - 1, 0, -1):
                    h = self.blocks[i](h)
            return self.blocks[0](h).view(-1)

    return Generator, Discriminator


def count(module):
    return sum(p.numel() for p in module.parameters())


def time_resolution(torch, Generator, Discriminator, resolution, args):
    torch.manual_seed(resolution)
    batch = args.batch_size
    alpha = 0.5 if resolution > 4 else 1.0
    G, D = Generator(resolution), Discriminator(resolution)
    G_ema = copy.deepcopy(G)
    for p in G_ema.parameters():
        p.requires_grad_(False)
    G.train(), D.train()
    opt_g = torch.optim.Adam(G.parameters(), lr=5e-4, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=5e-4, betas=(0.0, 0.99))
    real = torch.rand(batch, 3, resolution, resolution)
    step = [0]

    def iteration():
        # Generator step.
        z = torch.randn(batch, LATENT_DIM)
        fake = G(z, alpha)
        g_loss = -D(fake, alpha).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        # Discriminator step, on fresh fakes.
        z = torch.randn(batch, LATENT_DIM)
        fake = G(z, alpha).detach()
        d_real = D(real, alpha)
        d_fake = D(fake, alpha)
        eps = torch.rand(batch, 1, 1, 1)
        xhat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
        d_hat = D(xhat, alpha)
        grad = torch.autograd.grad(outputs=d_hat, inputs=xhat,
                                   grad_outputs=torch.ones_like(d_hat),
                                   create_graph=True, retain_graph=True)[0]
        gp = ((grad.view(batch, -1).norm(2, dim=1) - 1.0) ** 2).mean()
        d_loss = d_fake.mean() - d_real.mean() + 10.0 * gp + 0.001 * (d_real ** 2).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        # Generator EMA.
        t = step[0]
        decay = min(1.0 - 1.0 / (t + 1), 0.995)
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
        step[0] += 1
        return d_loss.detach().item()

    for _ in range(args.warmup):
        iteration()
    times = []
    for _ in range(args.iterations):
        t0 = time.perf_counter()
        loss = iteration()
        times.append(time.perf_counter() - t0)
    if not math.isfinite(loss):
        raise RuntimeError(f"non-finite D loss at {resolution}: {loss}")
    return {"resolution": resolution,
            "sec_per_iter": round(statistics.median(times), 4),
            "min_sec_per_iter": round(min(times), 4)}


def time_generator_forward(torch, Generator, args):
    """Generator forward, batch 1, 256x256, eval mode (the final network, alpha = 1)."""
    torch.manual_seed(0)
    G = Generator(256).eval()
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.forward_iterations):
            z = torch.randn(1, LATENT_DIM)
            t0 = time.perf_counter()
            img = G(z, 1.0)
            dt = time.perf_counter() - t0
            if i >= args.warmup:
                times.append(dt)
    assert img.shape == (1, 3, 256, 256), img.shape
    return round(1e3 * statistics.median(times), 3)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolutions", default="4,8,16,32,64,128,256")
    parser.add_argument("--iterations", type=int, default=10, help="Timed iterations (median reported).")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--forward_iterations", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        sys.exit("This benchmark needs PyTorch: pip install torch==2.13.0")
    torch.set_num_threads(args.threads)
    Generator, Discriminator = build(torch)

    g_params, d_params = count(Generator(256)), count(Discriminator(256))
    assert g_params == EXPECTED_G_PARAMS, (g_params, EXPECTED_G_PARAMS)
    assert d_params == EXPECTED_D_PARAMS, (d_params, EXPECTED_D_PARAMS)
    print(f"parameters at 256: G {g_params:,}  D {d_params:,}  (the source's)", flush=True)

    resolutions = [int(r) for r in args.resolutions.split(",") if r]
    load_before = os.getloadavg()
    results = []
    for r in resolutions:
        if r not in RESOLUTIONS:
            sys.exit(f"unknown resolution {r}")
        res = time_resolution(torch, Generator, Discriminator, r, args)
        ref = REFERENCE_SEC_PER_ITER[r]
        print(f"{r:4d}x{r:<4d} {res['sec_per_iter']:.4f} s/iter (min {res['min_sec_per_iter']:.4f}); "
              f"source on the other machine {ref:.3f} (x{res['sec_per_iter'] / ref:.2f})", flush=True)
        results.append(res)
    fwd_ms = time_generator_forward(torch, Generator, args)
    print(f"generator forward 256x256 batch 1: {fwd_ms:.2f} ms; source on the other machine {REFERENCE_GEN_FORWARD_MS} ms",
          flush=True)

    out = {
        "implementation": "pytorch port of the source (seed)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(("torch",)),
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "iterations": args.iterations,
        "parameters": {"generator": g_params, "discriminator": d_params},
        # 1/5/15-minute load averages: the machine is shared, so say how busy it was.
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "results": results,
        "generator_forward_256_batch1_ms": fwd_ms,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
