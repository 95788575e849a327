#!/usr/bin/env python3
"""Check that a training config's feats_conf is the recipe's feature definition.

The recipe's feature options (``--fs --n_fft --n_shift ...`` of run.sh, written
by stage 1 to dump/feats_conf.yaml) define the features every stage uses; a
training config that says otherwise is an error, not silently overridden.
"""

import argparse
import sys

import yaml

from espnet_wavenet.features import feats_conf_mismatch


def read_feats_conf(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    if not isinstance(conf, dict):
        sys.exit(f"ERROR: {path}: not a YAML mapping")
    return conf.get("feats_conf") or {}


def main(cmd=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True, help="training config (YAML with feats_conf)")
    p.add_argument("--recipe_feats_conf", required=True, help="dump/feats_conf.yaml of stage 1")
    args = p.parse_args(cmd)
    diff = feats_conf_mismatch(read_feats_conf(args.config), read_feats_conf(args.recipe_feats_conf))
    if diff:
        fields = ", ".join(f"{k}: {a} in the config, {b} in the recipe" for k, (a, b) in diff.items())
        sys.exit(f"ERROR: {args.config}: feats_conf differs from the recipe's features "
                 f"({args.recipe_feats_conf}): {fields}. Make them equal (the recipe's "
                 "--fs --n_fft --n_shift --win_length --window --fmin --fmax --n_mels).")


if __name__ == "__main__":
    main()
