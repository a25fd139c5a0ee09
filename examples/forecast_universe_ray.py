# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Forecast a universe of series on Ray Data; writes the layout of `kronos-forecast --output-dir` with its numbers.

    python examples/forecast_universe_ray.py --data universe.parquet --id-column ticker --output-dir out \
        --model NeoQuasar/Kronos-small --tokenizer NeoQuasar/Kronos-Tokenizer-base --pred-len 20 --samples 10 \
        [--concurrency 4] [--num-gpus 1] [--address auto]

Every flag of `kronos-forecast` works the same way (`--seed`, `--quantiles`, `--lookback`, ...). On a laptop Ray
starts a local cluster; on a cluster, start Ray on each machine (`ray start --head` on one, `ray start --address
HEAD:6379` on the others) and pass `--address auto`: one actor per `--concurrency` loads the model once and
forecasts whole series (`map_groups` over `--id-column`). Writes `DIR/forecasts/*.parquet` (read them all with
`pd.read_parquet(DIR / "forecasts")`), `DIR/errors.csv` and exits 0 (every series forecast), 3 (some reported in
errors.csv) or 2 (bad arguments or input, with nothing written).
"""

import sys
from pathlib import Path


from transformers_kronos.cli import CliError, build_parser
from transformers_kronos.io_utils import atomic_directory, one_line
from transformers_kronos.reading import KlineReadError, read_klines
from transformers_kronos.universe import ForecastSettings


def parse_args(argv):
    parser = build_parser()
    parser.prog = "forecast_universe_ray.py"
    parser.add_argument("--concurrency", type=int, default=1, help="actors, each with its own copy of the model")
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs per actor (default: 0)")
    parser.add_argument("--address", default=None, help="Ray cluster to join (default: start a local one)")
    args = parser.parse_args(argv)
    if args.id_column is None or args.output_dir is None:
        raise CliError("needs --id-column NAME and --output-dir DIR")
    if Path(args.output_dir).exists():
        raise CliError(f"--output-dir {args.output_dir}: exists; choose a new folder")
    return args


def forecast(args):
    """`(forecasts, errors)` of every series, computed by Ray actors."""
    import ray

    from transformers_kronos.integrations.ray import KronosRayForecaster, split_results

    source = args.data if args.data is not None else args.csv
    try:  # read on the driver: the same reader, checks and notes as kronos-forecast
        klines = read_klines(source, id_column=args.id_column, timestamp_column=args.timestamp_column,
                             columns=args.columns)
    except KlineReadError as err:
        raise CliError(str(err)) from None
    ray.init(address=args.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        dataset = ray.data.from_pandas(klines)
        results = dataset.groupby(args.id_column).map_groups(
            KronosRayForecaster,
            fn_constructor_kwargs={"model": args.model, "tokenizer": args.tokenizer, "id_column": args.id_column,
                                   "settings": ForecastSettings.from_args(args), "dtype": args.dtype,
                                   "device": None if args.device == "auto" else args.device},
            batch_format="pandas", concurrency=args.concurrency, num_gpus=args.num_gpus,
        ).to_pandas()
    finally:
        ray.shutdown()
    return split_results(results, args.id_column)


def main(argv=None):
    try:
        args = parse_args(argv)
        forecasts, errors = forecast(args)
    except CliError as err:
        print(f"forecast_universe_ray.py: error: {one_line(err)}", file=sys.stderr)
        return 2
    forecasts = forecasts.sort_values([args.id_column, "step"]).reset_index(drop=True)
    with atomic_directory(args.output_dir) as folder:
        (folder / "forecasts").mkdir()
        forecasts.to_parquet(folder / "forecasts" / "part-00000.parquet", index=False)
        errors.to_csv(folder / "errors.csv", index=False)
    output_dir = Path(args.output_dir)
    print(f"wrote {output_dir / 'forecasts'} ({forecasts[args.id_column].nunique()} series)"
          + (f"; {len(errors)} could not be forecast, see {output_dir / 'errors.csv'}" if len(errors) else ""))
    return 3 if len(errors) else 0


if __name__ == "__main__":
    sys.exit(main())
