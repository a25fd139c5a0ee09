# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Export a Kronos predictor or tokenizer (upstream-format or converted; a local directory or a Hub repo id) to ONNX,
with dynamic batch and length, for transformers_kronos.onnx.OnnxForecaster or any ONNX Runtime.

    python conversion_scripts/export_onnx.py --checkpoint converted/Kronos-small --output onnx/Kronos-small --verify
    python conversion_scripts/export_onnx.py --checkpoint converted/Kronos-Tokenizer-base \\
        --output onnx/Kronos-Tokenizer-base --verify

See docs/deployment.md. Bad input (a missing checkpoint, an existing output without --force, an unsupported opset)
ends with one line on stderr and exit status 2, a failed verification or any other failure with exit status 1;
nothing is written then.
"""

import os
import sys


def _import_package():
    try:
        from transformers_kronos import cli, onnx_export
    except ImportError:
        # run from a source checkout without installing the package
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))
        from transformers_kronos import cli, onnx_export
    return cli, onnx_export


cli, onnx_export = _import_package()
PROG = "export_onnx.py"


def build_parser():
    parser = cli.CliArgumentParser(prog=PROG, description="Export a Kronos predictor or tokenizer to ONNX.")
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (upstream-format or converted) or Hub repo id")
    parser.add_argument("--output", required=True, help="directory to write (must not exist unless --force)")
    parser.add_argument("--opset", type=int, default=onnx_export.DEFAULT_OPSET,
                        help=f"ONNX opset, {onnx_export.SUPPORTED_OPSETS[0]}-{onnx_export.SUPPORTED_OPSETS[-1]} "
                             f"(default {onnx_export.DEFAULT_OPSET})")
    parser.add_argument("--verify", action="store_true",
                        help=f"run every graph in ONNX Runtime against PyTorch at two shapes (fails above "
                             f"{onnx_export.VERIFY_TOLERANCE:g}; token ids must be equal)")
    parser.add_argument("--force", action="store_true", help="replace an existing output (an empty one or an earlier export only)")
    return parser


def run(args) -> int:
    try:
        onnx_export.check_opset(args.opset)
        onnx_export.check_output(args.output, args.force)
        onnx_export.check_checkpoint(args.checkpoint)
    except ValueError as err:
        raise cli.CliError(str(err)) from None
    from transformers.utils import logging

    progress_bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # the weights' loading bar; this prints one line per step instead
    try:
        result = onnx_export.export_checkpoint(args.checkpoint, args.output, args.opset, args.verify, args.force)
    finally:
        if progress_bars:
            logging.enable_progress_bar()
    print(f"exported {result['kind']} (opset {result['opset']}) -> {result['path']}: {', '.join(result['graphs'])}")
    if result["verification"] is not None:
        errors = ", ".join(f"{graph} {error:.1e}" for graph, error in result["verification"].items())
        print(f"verified against PyTorch (largest absolute difference): {errors}")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    return cli.run_command(PROG, lambda: run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
