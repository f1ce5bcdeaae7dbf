"""mel_tf: a TensorFlow/Keras Progressive GAN for small sets of icons."""

__version__ = "0.1.0"
