"""WGAN-GP losses with the drift term (Gulrajani et al. 2017; Karras et al. 2018).

    G loss = -E[D(G(z))]
    D loss =  E[D(fake)] - E[D(real)] + gp_weight * E[(||grad_xhat D(xhat)||_2 - 1)^2]
              + drift_weight * E[D(real)^2]
    xhat = eps * real + (1 - eps) * fake, eps ~ U[0, 1] per sample.
"""

from __future__ import annotations

import tensorflow as tf


def generator_loss(fake_scores):
    return -tf.reduce_mean(fake_scores)


def interpolate(real, fake, eps):
    """xhat = eps * real + (1 - eps) * fake, eps of shape [N, 1, 1, 1]."""
    return eps * real + (1.0 - eps) * fake


def gradient_penalty(critic, xhat):
    """E[(||grad_x critic(x)||_2 - 1)^2] at the points `xhat`, per-sample norms.

    `critic` maps images to scores [N, 1]; each score depends only on its own
    image (up to MiniBatchStd), so the gradient of the summed scores gives the
    per-sample gradients.
    """
    with tf.GradientTape() as tape:
        tape.watch(xhat)
        total = tf.reduce_sum(critic(xhat))
    grads = tape.gradient(total, xhat)
    norms = tf.sqrt(tf.reduce_sum(tf.square(tf.cast(grads, tf.float32)), axis=[1, 2, 3]))
    return tf.reduce_mean(tf.square(norms - 1.0))


def discriminator_loss(real_scores, fake_scores, penalty, gp_weight=10.0, drift_weight=0.001):
    """The D loss and its terms, as a dict of scalars (all float32)."""
    wasserstein = tf.reduce_mean(real_scores) - tf.reduce_mean(fake_scores)
    drift = tf.reduce_mean(tf.square(real_scores))
    loss = -wasserstein + gp_weight * penalty + drift_weight * drift
    return {"d_loss": loss, "wasserstein": wasserstein, "gradient_penalty": penalty,
            "drift": drift}
