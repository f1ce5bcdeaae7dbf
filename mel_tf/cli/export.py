"""Export a run's generator: SavedModel, and LiteRT (.tflite) models for phones.

    mel-export --tflite      # the demo run (runs/demo) -> runs/demo/export/
    mel-export --logdir=runs/faces --out=exports/faces --tflite --quantize=float16,int8

(`python export.py ...` is the same program) writes exports/faces/saved_model/,
generator.tflite (float32), generator_float16.tflite, generator_int8.tflite and a JSON
beside each (see mel_tf/export.py). With --web it also writes exports/faces/web/, a
static page that makes icons in the browser with LiteRT.js:

    mel-export --web && python -m http.server -d runs/demo/export/web
    mel-export --web --title="Jane's icons" --credit="Trained by Jane on her sketches"

(--web needs the LiteRT.js npm packages: `npm ci` in the checkout.) The stage exported is
the highest completed resolution unless --resolution says otherwise; a stage still fading
in needs --allow_partial_fade.

Exports add up: another format exported into the same --out (say --tflite, then --web,
then --quantize=int8) is added and the others are kept; the SavedModel and generator.json,
shared by all, are rewritten, and generator.json records the formats present and the run,
checkpoint and stage they came from. An --out holding an export of another run, checkpoint
or stage, or files but no export, is refused unless --overwrite, which replaces only what
this call writes and the shared files: never another format's files or your own. A failed
export leaves --out as it was. Errors are one line on stderr, exit status 1.
"""

import os
import sys

# TensorFlow's C++ start-up chatter would bury a one-line error.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging

from mel_tf.cli import fail, run_app
from mel_tf.deploy.export import QUANTIZE_MODES, ExportError, export_generator

flags.DEFINE_string("logdir", "runs/demo", "Run directory to export (default: the demo's).")
flags.DEFINE_string("out", None, "Output folder (default: LOGDIR/export).")
flags.DEFINE_bool("tflite", False, "Also write LiteRT models (.tflite).")
flags.DEFINE_list("quantize", ["none"], f"Comma list of {', '.join(QUANTIZE_MODES)}: "
                  "quantized .tflite variants besides the float32 one (implies --tflite).")
flags.DEFINE_integer("resolution", None, "Stage to export (default: highest completed).")
flags.DEFINE_bool("allow_partial_fade", False, "Allow a stage whose fade is not finished "
                  "(exported at a=1).")
flags.DEFINE_bool("overwrite", False, "Write into an --out holding an export of another "
                  "run, checkpoint or stage (or other files); only this call's formats and "
                  "the shared SavedModel and generator.json are replaced.")
flags.DEFINE_string("dataset_credit", None, "Dataset credit for the JSON (default: from "
                    "the run's dataset.json).")
flags.DEFINE_bool("web", False, "Also write OUT/web/: a static page generating icons in the "
                  "browser with LiteRT.js (needs `npm ci` in the checkout).")
flags.DEFINE_string("title", None, "Title of the --web page (default: "
                    "'mel_tf icons').")
flags.DEFINE_string("credit", None, "A credit line shown under the --web page's title (e.g. "
                    "who made the model); the data set's credit is shown in any case.")
flags.DEFINE_bool("validate", True, "Check the exported models against the Keras generator.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        if not FLAGS.web and (FLAGS.title is not None or FLAGS.credit is not None):
            raise ExportError("--title and --credit are for the page: add --web")
        summary = export_generator(
            FLAGS.logdir, FLAGS.out or os.path.join(FLAGS.logdir, "export"),
            tflite=FLAGS.tflite, quantize=FLAGS.quantize, resolution=FLAGS.resolution,
            allow_partial_fade=FLAGS.allow_partial_fade, validate=FLAGS.validate,
            overwrite=FLAGS.overwrite, dataset_credit=FLAGS.dataset_credit, web=FLAGS.web,
            page_title=FLAGS.title, page_credit=FLAGS.credit, log=logging.info)
    except ExportError as e:
        fail(e)
    print(f"{summary['resolution']}x{summary['resolution']} generator exported to "
          f"{summary['out_dir']}")
    for entry in summary["tflite"]:
        psnr = entry["psnr_db"]
        quality = "" if psnr is None else (
            ", identical to float32" if psnr == float("inf") else f", PSNR {psnr:.1f} dB")
        print(f"  {os.path.basename(entry['path'])}: {entry['bytes'] / 1e6:.2f} MB{quality}")
    if summary["kept"]:
        print(f"  kept: {', '.join(summary['kept'])}")
    if "web" in summary:
        print(f"  web page: {summary['web']['path']} (serve it: python -m http.server -d "
              f"{summary['web']['path']})")


def run():
    run_app(main, sys.modules[__name__])


if __name__ == "__main__":
    run()
