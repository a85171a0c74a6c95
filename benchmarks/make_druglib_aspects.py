"""A multi-label dataset derived from DrugLib, for recipes/druglib-aspects-minilm.yaml.

    python benchmarks/make_druglib_aspects.py ../shared/data/druglib data/druglib-aspects

DrugLib (UCI, Graesser et al. 2018) grades every review on two scales besides its rating: the drug's
effectiveness and its side effects. Each review gets the set of these labels its grades imply
(any number of them, the empty set included):

    effective            Highly / Considerably Effective
    ineffective          Ineffective / Marginally Effective   (Moderately Effective: neither)
    side_effects         Moderate / Severe / Extremely Severe Side Effects
    severe_side_effects  Severe / Extremely Severe Side Effects (a subset of side_effects)

The three review fields are kept as they are (the recipe joins them); train.parquet and
test.parquet keep DrugLib's own split, with the label set in a list column `aspects`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

EFFECTIVE = {"Highly Effective", "Considerably Effective"}
INEFFECTIVE = {"Ineffective", "Marginally Effective"}
SIDE_EFFECTS = {"Moderate Side Effects", "Severe Side Effects", "Extremely Severe Side Effects"}
SEVERE = {"Severe Side Effects", "Extremely Severe Side Effects"}
FIELDS = ["benefitsReview", "sideEffectsReview", "commentsReview"]


def aspects(effectiveness: str, side_effects: str) -> list[str]:
    out = []
    if effectiveness in EFFECTIVE:
        out.append("effective")
    if effectiveness in INEFFECTIVE:
        out.append("ineffective")
    if side_effects in SIDE_EFFECTS:
        out.append("side_effects")
    if side_effects in SEVERE:
        out.append("severe_side_effects")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("druglib", help="folder holding DrugLib's train.parquet / test.parquet (../shared/data/druglib)")
    parser.add_argument("out", help="folder to write train.parquet / test.parquet into")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        frame = pd.read_parquet(Path(args.druglib) / f"{split}.parquet")
        frame = frame.assign(aspects=[aspects(e, s) for e, s in zip(frame["effectiveness"], frame["sideEffects"])])
        frame[["id", *FIELDS, "aspects"]].to_parquet(out / f"{split}.parquet", index=False)
        counts = pd.Series([a for labels in frame["aspects"] for a in labels]).value_counts().to_dict()
        empty = int((frame["aspects"].map(len) == 0).sum())
        print(f"{split}: {len(frame)} reviews, {counts}, {empty} with none")


if __name__ == "__main__":
    main()
