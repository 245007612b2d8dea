"""The one table of preprocess and training-objective settings: each default, range and flag written once."""

# Built from it: the preprocess flags (options.build_arg_parser), PreprocessConfig's defaults, the sampler's
# and the history block's defaults, the pipeline parameters feeding the Preprocess step and its arguments
# (pipeline/parameters.py, pipeline/build/preprocess.py) and docs/data.md's table; tests/features/
# test_settings.py fails when a default is written anywhere else. FM's own hyperparameters have their table
# in fmrec.model.hyperparameters.PIPELINE_PARAMETERS.

from __future__ import annotations

from dataclasses import dataclass

# EASE (fmrec.features.ease) inverts a dense catalogue x catalogue float64 matrix: 20,000 movies is 3.2 GB
EASE_MAX_ITEMS = 20_000


@dataclass(frozen=True)
class Setting:
    field: str  # PreprocessConfig's field
    flag: str  # the preprocess step's (and `fmrec preprocess`'s) flag
    kind: str  # "Integer" | "Float" | "String" | "Boolean" (a pipeline String "true"/"false")
    default: int | float | str | bool
    help: str
    parameter: str | None = None  # the pipeline parameter that sets it, None if the pipeline does not
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive

    def bounds(self) -> tuple[float, float]:
        if self.minimum is None or self.maximum is None:
            raise ValueError(f"{self.field}: the table gives it no closed range")
        return self.minimum, self.maximum

    def range_text(self) -> str:
        if self.choices:
            return ", ".join(self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum:g}..{self.maximum:g}"
        if self.minimum is not None:
            return f">= {self.minimum:g}"
        return ""


# Defaults of the objective settings: the search in docs/tuning.md ("The ranking defaults") chose them.
SETTINGS: tuple[Setting, ...] = (
    Setting("split", "--split", "String", "auto", "ua (ml-100k default), ub, u1..u5, or holdout"),
    Setting("holdout_per_user", "--holdout-per-user", "Integer", 10, "ratings per user held out", minimum=1),
    Setting(
        "label",
        "--label",
        "String",
        "binary",
        "binary: 1.0 if rating >= --threshold, else 0.0; regression: the rating",
        choices=("binary", "regression"),
    ),
    Setting(
        "threshold",
        "--threshold",
        "Float",
        4.0,
        "binary label: rating >= threshold",
        parameter="LabelThreshold",
    ),
    Setting(
        "aux",
        "--aux",
        "String",
        "none",
        "auxiliary features: none, all, or a comma list of age,gender,occupation,genres,year",
    ),
    # the search in docs/tuning.md ("Issue 22: genre and year columns") chose its default, on synthetic data
    # only: at 1 the aux columns cost 0.02-0.03 NDCG@10 on both presets, at 0.1 they cost nothing
    Setting(
        "aux_value",
        "--aux-value",
        "Float",
        0.1,
        "the value every auxiliary column carries in a row (the user and movie columns carry 1)",
        minimum=0.01,
        maximum=1,
    ),
    Setting(
        "shards",
        "--shards",
        "Integer",
        1,
        "train files, for multi-instance training",
        minimum=1,
        maximum=1000,
    ),
    Setting(
        "user_shards",
        "--user-shards",
        "Integer",
        1,
        "split the channels' rows by user across this many Processing instances (on SageMaker the step reads "
        "the instance's place from resourceconfig.json)",
        minimum=1,
        maximum=1000,
    ),
    Setting(
        "user_shard",
        "--user-shard",
        "Integer",
        0,
        "this instance's share of the users, 0..user-shards - 1",
        minimum=0,
        maximum=999,
    ),
    Setting("seed", "--seed", "Integer", 0, "seed of the holdout split and the sampling", minimum=0),
    Setting(
        "max_reject_fraction",
        "--max-reject-fraction",
        "Float",
        0.05,
        "a ratings file with more rejected rows than this fraction is an error",
        minimum=0,
        maximum=1,
    ),
    # The training objective (fmrec/features/objective.py, sampling.py): these, in this order, are the
    # pipeline's objective parameters and the Preprocess step's arguments after --threshold and --shards.
    Setting(
        "objective",
        "--objective",
        "String",
        "ranking",
        "ranking: rated movies as positives plus sampled unrated movies as negatives; rating: the seed's "
        "task, labels from the ratings of rated pairs only",
        parameter="Objective",
        choices=("ranking", "rating"),
    ),
    Setting(
        "negatives_per_positive",
        "--negatives",
        "Integer",
        4,
        "ranking: unrated movies sampled per positive",
        parameter="NegativesPerPositive",
        minimum=0,
        maximum=100,
    ),
    Setting(
        "negative_exponent",
        "--negative-exponent",
        "Float",
        0.5,
        "ranking: a negative is drawn with weight (train count) ** X: 0 uniform, 1 as popular as it is",
        parameter="NegativeExponent",
        minimum=0,
        maximum=1,
    ),
    Setting(
        "positives",
        "--positives",
        "String",
        "weighted",
        "ranking: weighted = every rated movie is a positive, a liked one (>= --threshold) twice; "
        "all = every rated movie once; liked = only ratings >= --threshold",
        parameter="PositiveRule",
        choices=("all", "liked", "weighted"),
    ),
    Setting(
        "below_threshold_negatives",
        "--below-threshold-negatives",
        "Boolean",
        False,
        "ranking with --positives liked: ratings below --threshold become negatives too (a bare flag means "
        "true; the pipeline passes true/false)",
        parameter="BelowThresholdNegatives",
    ),
    Setting(
        "predictor_type",
        "--predictor-type",
        "String",
        "binary_classifier",
        "the FM predictor_type that trains these rows (ranking needs binary_classifier; the pipeline always "
        "trains one)",
        choices=("binary_classifier", "regressor"),
    ),
    Setting(
        "history",
        "--history",
        "Integer",
        64,
        "ranking: the user's rated movies as weighted columns, at most N per row (0 = none; the rating "
        "objective has none and ignores it)",
        parameter="HistoryLength",
        minimum=0,
        maximum=4096,
    ),
    # docs/tuning.md ("Issue 22: fresh negatives and fixed histories") chose it with Epochs 4 (12 passes over
    # the positives, the work of 12 one-pass epochs): negatives drawn afresh for each pass are memorised less
    # than one draw seen in every epoch
    Setting(
        "passes",
        "--passes",
        "Integer",
        3,
        "ranking: the train channel holds N passes over the positives, each copy of a positive with its own "
        "sampled negatives and history draws, so one training epoch is N passes (the test channel holds one)",
        parameter="SamplingPasses",
        minimum=1,
        maximum=20,
    ),
    # The neighbour column (fmrec/features/neighbours.py; docs/tuning.md, "an item-item score beside the FM"):
    # on by default (10 / 200 / 0.2: the carves of both presets chose them, session 6); the evaluate step
    # writes the served model's weight
    Setting(
        "neighbours",
        "--neighbours",
        "Integer",
        10,
        "ranking: a neighbour column and its table in the lookup, each rated movie's N strongest EASE "
        "weights (0 = none)",
        parameter="NeighbourTargets",
        minimum=0,
        maximum=1000,
    ),
    Setting(
        "neighbour_l2",
        "--neighbour-l2",
        "Float",
        200.0,
        "the neighbour table's EASE regularisation (lambda)",
        parameter="NeighbourL2",
        minimum=1,
        maximum=1e6,
    ),
    Setting(
        "neighbour_movies",
        "--neighbour-movies",
        "Integer",
        10_000,
        "the neighbour table covers the N most-rated movies (EASE holds an N x N matrix: 10,000 is 0.8 GB); "
        "the rest are no one's neighbour",
        parameter="NeighbourMovies",
        minimum=2,
        maximum=EASE_MAX_ITEMS,
    ),
    Setting(
        "neighbour_weight",
        "--neighbour-weight",
        "Float",
        0.2,
        "the neighbour column's weight in the served model (the evaluate step writes it; unit-RMS values)",
        parameter="NeighbourWeight",
        minimum=0,
        maximum=100,
    ),
)
BY_FIELD = {s.field: s for s in SETTINGS}
DEFAULTS = {s.field: s.default for s in SETTINGS}
# The settings of the training objective, in the pipeline's and the step's order (see the comment above).
OBJECTIVE_FIELDS = tuple(s.field for s in SETTINGS[SETTINGS.index(BY_FIELD["objective"]) :])


def markdown_table() -> str:
    """docs/data.md's table of the preprocess flags (tests/features/test_settings.py keeps the doc equal)."""
    rows = ["| flag (pipeline parameter) | default | range | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        name = f"`{s.flag}`" + (f" (`{s.parameter}`)" if s.parameter else "")
        default = str(s.default).lower() if isinstance(s.default, bool) else f"`{s.default}`"
        rows.append(f"| {name} | {default} | {s.range_text()} | {s.help} |")
    return "\n".join(rows) + "\n"
