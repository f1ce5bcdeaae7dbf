"""Adam as the source trains with it (PyTorch's torch.optim.Adam).

Keras's Adam differs from PyTorch's in two ways that change training:

* Bias correction. Keras corrects with the optimizer's step count, PyTorch
  with each parameter's own (a parameter that gets no gradient takes no
  step). In a growing network the layers of a new stage start when the
  optimizer has taken thousands of steps: with Keras's count their first
  update is lr * g / sqrt((1 - beta2) g^2) = 10 lr at beta2 = 0.99, and it
  takes some hundred steps to settle to lr; with PyTorch's it is lr.
* Epsilon. Keras adds it to sqrt(v) before the bias correction, PyTorch after:
  update = lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps).

`Adam` here is PyTorch's rule, built from Keras's public Optimizer API.
"""

from __future__ import annotations

import keras
from keras import ops


class Adam(keras.optimizers.Optimizer):
    """Adam with per-variable step counts and PyTorch's placement of epsilon."""

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 name="adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = self.add_optimizer_variables(var_list, ["m", "v"])
        self._t = [self.add_variable((), dtype="float32", name=f"t_{i}")
                   for i in range(len(var_list))]

    def slots(self, variable):
        """(first moment, second moment, step count) of a variable."""
        # Keras 3.15 has no public lookup from a variable to its slots; this is
        # the one its own optimizers use, and it also finds the slots of a
        # variable handed over by tf.distribute (a key by path would not).
        i = self._get_variable_index(variable)
        return self._m[i], self._v[i], self._t[i]

    def update_step(self, gradient, variable, learning_rate):
        m, v, t = self.slots(variable)
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        self.assign_add(t, 1.0)
        step = ops.cast(t, dtype)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1.0 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1.0 - self.beta_2))
        correction1 = 1.0 - ops.power(ops.cast(self.beta_1, dtype), step)
        correction2 = 1.0 - ops.power(ops.cast(self.beta_2, dtype), step)
        denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(correction2)), self.epsilon)
        step_size = ops.divide(ops.cast(learning_rate, dtype), correction1)
        self.assign_sub(variable, ops.multiply(step_size, ops.divide(m, denominator)))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}
