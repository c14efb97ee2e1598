"""python -m replication.compare --results R.csv [R2.csv ...] [--metric top5] [--layer-map conv_1=conv1,...]
[--conventions ours|authors] [--after-block3-conv1 every|conv]

Every quantitative claim of the paper beside our value, and whether it holds
(`analysis.claims`, which says how each claim is read), then the paper's linear fits
read both ways (ours and the authors', `analysis.stats.CONVENTIONS`).
"""

import sys

from replication.analysis.experiments import METRICS
from replication.commands.common import new_parser, output_file, run_cli
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
                        help="the fit 'falls linearly' is read on: ours (through the per-level means) or the authors' (every "
                        "trial plus one baseline per layer); the r² claims are judged on the authors' fit either way, the "
                        "statistic that produced the paper's numbers, and both fits are printed")
    parser.add_argument("--after-block3-conv1", choices=("every", "conv"), default="every",
                        help="Figure 5's 'every layer after block3_conv1': every layer after it, fc1, fc2 and predictions "
                        "included (default), or its convolutional layers only")
    parser.add_argument("--csv", type=output_file, help="also write the table as CSV")
    parser.add_argument("--markdown", type=output_file, help="also write the table as Markdown")
    args = parser.parse_args(argv)

    from replication.analysis.comparison import compare_claims, write_comparison

    comparison = compare_claims(args.results, args.metric, args.layer_map, model=args.model, semantics=args.semantics,
                                relative=not args.absolute, conventions=args.conventions,
                                after_block3_conv1=args.after_block3_conv1)
    print(comparison.text)
    write_comparison(comparison, args.csv, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
