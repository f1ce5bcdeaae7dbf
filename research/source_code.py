"""Driving the source's own code: zassou65535/image_generator_2 (PyTorch).

Imports the source's networks and gradient penalty from a clone and runs the
loop body of its PGGAN_train.py: used by source_parity.py and source_study.py.
Nothing of the source is copied here.
"""

from __future__ import annotations

import copy
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types

EPS_RES = 1e-7          # the source's `eps` in res -> (layer, alpha)


# ---- the source ------------------------------------------------------------------

def import_source(path):
    """The source's Generator, Discriminator and gradient_penalty.

    Its importer pulls in torchvision, matplotlib and tqdm for data loading and
    plots; none is used by the networks or the penalty, so they are stubbed.
    """
    for name in ("torchvision", "matplotlib", "matplotlib.pyplot", "tqdm"):
        if name not in sys.modules:
            stub = types.ModuleType(name)
            stub.models = stub.transforms = stub.pyplot = None
            stub.use = lambda *a, **k: None
            stub.tqdm = None
            sys.modules[name] = stub
    clone = os.path.abspath(path)
    # The clone is no installable package: its folder `module` is registered by
    # location, so that its files' own `from module.x import *` find each other.
    package = importlib.machinery.PathFinder.find_spec("module", [clone])
    if package is None:
        raise FileNotFoundError(f"{clone} has no folder module/: not a clone of "
                                "zassou65535/image_generator_2")
    sys.modules.setdefault("module", importlib.util.module_from_spec(package))
    train = importlib.util.spec_from_file_location("PGGAN_train",
                                                   os.path.join(clone, "PGGAN_train.py"))
    pggan_train = importlib.util.module_from_spec(train)
    train.loader.exec_module(pggan_train)
    networks = (importlib.import_module("module.generator").Generator,
                importlib.import_module("module.discriminator").Discriminator)
    return (*networks, pggan_train.gradient_penalty)


def stage_of(res):
    """The source's (layer index, alpha) for progress `res` (generator.py, discriminator.py)."""
    layer = max(int(res - EPS_RES), 0)
    return layer, (res - int(res - EPS_RES) if layer else 1.0)


class SourceRun:
    """The source's networks, optimizers and the loop body of PGGAN_train.py."""

    def __init__(self, torch, modules, dtype, init_seed):
        Generator, Discriminator, self._gradient_penalty = modules
        self.torch = torch
        torch.manual_seed(init_seed)
        self.netG, self.netD = Generator(), Discriminator()
        self.netG.to(dtype)
        self.netD.to(dtype)
        # The source builds its average generator separately; the EMA decay at
        # iteration 0 is 0, so after the first step it equals netG either way.
        self.netG_mavg = copy.deepcopy(self.netG)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=0.0005, betas=(0.0, 0.99))
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=0.0005, betas=(0.0, 0.99))
        self.dtype = dtype

    def state(self) -> dict:
        """Everything a resumed run needs: the three networks, both optimizers and
        torch's global random state (the latents and the penalty's mixing weights)."""
        return {"netG": self.netG.state_dict(), "netD": self.netD.state_dict(),
                "netG_mavg": self.netG_mavg.state_dict(), "optG": self.optG.state_dict(),
                "optD": self.optD.state_dict(), "rng": self.torch.get_rng_state()}

    def load_state(self, state: dict):
        for name in ("netG", "netD", "netG_mavg", "optG", "optD"):
            getattr(self, name).load_state_dict(state[name])
        self.torch.set_rng_state(state["rng"])

    def _penalty(self, real, fake, res, eps):
        """PGGAN_train.gradient_penalty; with `eps`, those mixing weights replace its
        own torch.rand draw."""
        if eps is None:
            return self._gradient_penalty(self.netD, real, fake, res, real.shape[0])
        torch, rand = self.torch, self.torch.rand
        torch.rand = lambda *shape, requires_grad=False: eps.clone().requires_grad_(requires_grad)
        try:
            return self._gradient_penalty(self.netD, real, fake, res, real.shape[0])
        finally:
            torch.rand = rand

    def step(self, iteration, res, real, z_g, z_d, eps):
        """One iteration of PGGAN_train.py's loop; returns (lossG, lossD). `eps`:
        the penalty's mixing weights, or None for the source's own draw."""
        F = self.torch.nn.functional
        x_ = self.netG.forward(z_g, res)
        lossG = -self.netD.forward(x_, res).mean()
        self.optG.zero_grad()
        lossG.backward()
        self.optG.step()
        decay = min(1.0 - (1 / (iteration + 1)), 0.995)
        for p_mavg, p in zip(self.netG_mavg.parameters(), self.netG.parameters()):
            p_mavg.data = decay * p_mavg.data + (1.0 - decay) * p.data
        x_ = self.netG.forward(z_d, res)
        x = F.adaptive_avg_pool2d(real, x_.shape[2:4])
        d = self.netD.forward(x, res)
        d_ = self.netD.forward(x_, res)
        penalty = self._penalty(x.data, x_.data, res, eps)
        lossD = -d.mean() + d_.mean() + 10.0 * penalty + 0.001 * (d ** 2).mean()
        self.optD.zero_grad()
        lossD.backward()
        self.optD.step()
        return float(lossG), float(lossD)


# ---- the source's weights beside mel_tf's seed preset ----------------------------

def source_pairs(run, model, stages):
    """(network, torch parameter, mel_tf variable) for every weight of the first `stages`
    stages; network is "G", "D" or "EMA"."""
    def conv(module):          # the source's Conv2d wraps an nn.Conv2d at index 2
        return module.layers[2]

    pairs = []

    def add(net, torch_conv, layer):
        pairs.append((net, torch_conv.weight, layer.kernel))
        pairs.append((net, torch_conv.bias, layer.bias))

    for net, net_g, mel_g in (("G", run.netG, model.generator),
                              ("EMA", run.netG_mavg, model.generator_ema)):
        for k in range(stages):
            seq = net_g.blocks[k].layers
            convs = [conv(seq[0]), conv(seq[2])] if k == 0 else [conv(seq[1]), conv(seq[3])]
            for torch_conv, mel in zip(convs, mel_g.blocks[k].convs):
                add(net, torch_conv, mel.conv)
            add(net, net_g.toRGBs[k], mel_g.to_rgb[k])
    disc = model.discriminator
    for k in range(stages):
        add("D", run.netD.fromRGBs[k], disc.from_rgb[k].conv)
        seq = run.netD.blocks[k].layers
        if k == 0:
            add("D", conv(seq[1]), disc.head.conv0.conv)
            add("D", conv(seq[3]), disc.head.conv1.conv)
            add("D", seq[5], disc.head.out)
        else:
            add("D", conv(seq[0]), disc.blocks[k].conv0.conv)
            add("D", conv(seq[2]), disc.blocks[k].conv1.conv)
    return pairs


def to_tf_layout(array):
    """torch [out, in, kh, kw] -> TF [kh, kw, in, out]; biases unchanged."""
    return array.transpose(2, 3, 1, 0) if array.ndim == 4 else array


def numpy_of(param):
    """A float64 copy in TF's layout (a float64 tensor's .numpy() would share memory)."""
    return to_tf_layout(param.detach().cpu().double().numpy()).copy()
