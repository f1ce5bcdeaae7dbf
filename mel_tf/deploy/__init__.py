"""Deployment: from a trained run to icons on a phone or in a browser.

    export (SavedModel, .tflite, the web page through web) -> serving (load any of
    them) -> generate (icons from seeds, seeds.py's rule)

Export reads a run directory and its networks from `mel_tf.training`; `serving`,
`seeds` and `generate` import TensorFlow only for SavedModels and run
directories, so `generate` runs a .tflite file with numpy, Pillow and LiteRT.
"""
