"""FLOPs of the seed and paper networks, from a configuration's channel tables."""

from __future__ import annotations


def conv_flops(h, w, cin, cout, k):
    return 2 * h * w * cin * cout * k * k


def forward_flops(cfg, resolution, fading):
    """(generator, discriminator) forward FLOPs per image at a stage, from the config's tables."""
    g = 0
    if cfg.latent_mode == "dense":
        g += 2 * cfg.latent_dim * 16 * cfg.base_channels
    for r in cfg.resolutions:
        if r > resolution:
            break
        cin, cout = cfg.g_block_channels(r)
        convs = cfg.g_first_block_convs if r == 4 else 2
        g += conv_flops(r, r, cin, cout, 3) + (convs - 1) * conv_flops(r, r, cout, cout, 3)
    g += conv_flops(resolution, resolution, cfg.g_block_channels(resolution)[1], 3, 1)
    if fading:
        half = resolution // 2
        g += conv_flops(half, half, cfg.g_block_channels(half)[1], 3, 1)
    d = conv_flops(resolution, resolution, 3, cfg.d_from_rgb_channels(resolution), 1)
    if fading:
        half = resolution // 2
        d += conv_flops(half, half, 3, cfg.d_from_rgb_channels(half), 1)
    for r in cfg.resolutions[1:]:
        if r > resolution:
            break
        cin, cmid, cout = cfg.d_block_channels(r)
        d += conv_flops(r, r, cin, cmid, 3) + conv_flops(r, r, cmid, cout, 3)
    c0, c1, c2 = cfg.d_head_channels
    d += conv_flops(4, 4, c0 + 1, c1, 3)
    d += conv_flops(1, 1, c1, c2, 4)       # the 4x4 'valid' conv: one output pixel
    d += conv_flops(1, 1, c2, 1, 1)        # the score
    return g, d


def iteration_gflops(cfg, resolution: int, fading: bool, batch: int) -> float:
    """GFLOP of one training iteration: roughly 4 generator forwards and 14
    discriminator forwards per image (the G step, the D step on reals and fakes,
    the penalty's double backward); a multiply-add is 2 FLOPs."""
    g, d = forward_flops(cfg, resolution, fading)
    return batch * (4 * g + 14 * d) / 1e9
