"""python -m replication.compare --results R.csv [R2.csv ...] [--metric top5] [--layer-map conv_1=conv1,...]
[--conventions ours|authors]

Every quantitative claim of the paper beside our value, and whether it holds
(`analysis.claims`, which says how each claim is read), then the paper's linear fits
read both ways (ours and the authors', `analysis.stats.CONVENTIONS`).
"""

import sys

from replication.analysis.experiments import METRICS
from replication.commands.common import new_parser, output_file, run_cli
from replication.errors import ReplicationError
from replication.files import atomic_output
from replication.perturb.registry import SEMANTICS


def main(argv=None) -> int:
    parser = new_parser("python -m replication.compare",
                        "Every quantitative claim of the paper beside our value, and whether it holds.", tensorflow=False)
    parser.add_argument("--results", required=True, nargs="+",
                        help="results CSV(s) written by sweeps (figure1..4); give several to check the claims "
                        "that compare node with synapse knockout")
    parser.add_argument("--metric", choices=tuple(METRICS), default="top5")
    parser.add_argument("--layer-map", help="which of our layers plays which AlexNet layer, e.g. conv_1=conv1,dense_3=conv10")
    parser.add_argument("--model", help="analyse only this model's rows (when the CSV holds several)")
    parser.add_argument("--semantics", choices=SEMANTICS, help="analyse only these perturbation semantics")
    parser.add_argument("--absolute", action="store_true", help="compare accuracy values raw, not as fractions of the baseline")
    parser.add_argument("--conventions", choices=("ours", "authors"), default="ours",
                        help="whose analysis decides the r² claims: ours (fits through the per-level means, conv_2–conv_5 "
                        "pooled) or the authors' (every trial plus one baseline per layer, all layers but conv_1 pooled); "
                        "both fits are printed either way")
    parser.add_argument("--csv", type=output_file, help="also write the table as CSV")
    parser.add_argument("--markdown", type=output_file, help="also write the table as Markdown")
    args = parser.parse_args(argv)

    from replication.analysis import claims, reports, stats
    from replication.run.table import read_table

    table = read_table(*args.results)
    if table.empty:
        raise ReplicationError(", ".join(args.results), "holds no finished trials (a header and no rows): run a sweep first")
    df = stats.select(stats.tidy(table, ", ".join(args.results)), model=args.model, semantics=args.semantics)
    if args.layer_map:
        layer_map, how = claims.parse_layer_map(args.layer_map), "--layer-map"
    else:
        layer_map, how = claims.default_layer_map(df)
    table = claims.claims_table(df, args.metric, layer_map, relative=not args.absolute, conventions=args.conventions)

    print(reports.claims_header(df, ", ".join(args.results), args.metric, layer_map, how, not args.absolute, args.conventions))
    print()
    print(reports.claims_text(table))
    held = table["holds"].value_counts()
    print(f"\n{held.get('yes', 0)} hold, {held.get('no', 0)} do not, {held.get('n.a.', 0)} not applicable (data missing)")
    print()
    print(reports.fits_text(claims.fit_readings(df, args.metric, layer_map)))
    if args.csv:
        with atomic_output(args.csv) as tmp:
            table.to_csv(tmp, index=False)
    if args.markdown:
        with atomic_output(args.markdown) as tmp:
            tmp.write_text(reports.claims_markdown(table), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
