# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Convert an upstream Kronos checkpoint (NeoQuasar/Kronos-* on the Hub, or a directory written by upstream's
`save_pretrained`) into a transformers checkpoint with remote code and a model card.

    python conversion_scripts/convert_kronos_original_to_hf.py --checkpoint NeoQuasar/Kronos-small \\
        --output converted/Kronos-small --verify

See docs/conversion.md. Errors end with a one-line message on stderr and exit status 1; nothing is written then.
"""

import argparse
import os
import sys
import warnings


def _import_conversion():
    try:
        from transformers_kronos import conversion
    except ImportError:
        # run from a source checkout without installing the package
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))
        from transformers_kronos import conversion
    return conversion


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # one line, like every other failure of this script (argparse would print the usage first)
        self.exit(2, f"error: {' '.join(message.split())} (see --help)\n")


def build_parser():
    parser = _Parser(
        prog="convert_kronos_original_to_hf.py",
        description="Convert an upstream Kronos checkpoint into a transformers checkpoint.",
    )
    parser.add_argument("--checkpoint", required=True, help="upstream checkpoint directory or Hub repo id (owner/name)")
    parser.add_argument("--output", required=True, help="directory to write (must not exist unless --force)")
    parser.add_argument("--kind", choices=("auto", "model", "tokenizer"), default="auto",
                        help="predictor ('model') or tokenizer; detected from config.json by default")
    parser.add_argument("--max-context", type=int, default=None,
                        help="the predictor's max_context (default 512; Kronos-mini was trained with 2048)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None,
                        help="storage dtype of the weights (default: as stored in the source)")
    parser.add_argument("--verify", action="store_true",
                        help="compare with the upstream implementation on random inputs (needs it installed)")
    parser.add_argument("--force", action="store_true", help="replace an existing output directory (an empty one or a Kronos checkpoint only)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="accept a pickled pytorch_model.bin (read with torch.load(weights_only=True))")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", default=None, help="upload the result to this Hub repo")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of a Hub checkpoint")
    parser.add_argument("--cache-dir", default=None, help="Hub cache directory")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from transformers.utils import logging

    verbosity, progress_bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        conversion = _import_conversion()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)  # ConversionNote and the config's own warnings
            result = conversion.convert_checkpoint(
                args.checkpoint,
                args.output,
                kind=args.kind,
                max_context=args.max_context,
                dtype=args.dtype,
                verify=args.verify,
                force=args.force,
                allow_pickle=args.allow_pickle,
                push_to_hub=args.push_to_hub,
                revision=args.revision,
                cache_dir=args.cache_dir,
            )
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # every failure is reported as one line, without a traceback
        message = " ".join(str(err).split())
        if not isinstance(err, (ValueError, TypeError)):
            message = f"{type(err).__name__}: {message}"
        print(f"error: {message}", file=sys.stderr)
        return 1
    finally:
        logging.set_verbosity(verbosity)
        if progress_bars:
            logging.enable_progress_bar()
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"note: {warning.message}", file=sys.stderr)
    what = "tokenizer" if result["kind"] == "tokenizer" else "predictor"
    print(f"converted {what} ({result['dtype']}, from {result['source']}) -> {result['path']}")
    if result["verification"] is not None:
        diffs = ", ".join(
            f"{k} {v:.1e}" if isinstance(v, float) else f"{k} {v}" for k, v in result["verification"].items()
        )
        print(f"verified against upstream: {diffs}")
    if args.push_to_hub:
        print(f"pushed to https://huggingface.co/{args.push_to_hub}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
