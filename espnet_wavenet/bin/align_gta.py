#!/usr/bin/env python3
"""Match GTA features (ESPnet teacher-forced tts_inference) to the audio's frames."""

import argparse
import logging

from espnet_wavenet.integration.gta import align_gta_feats


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--gta_scp", required=True, help="<tts_inference out>/denorm/feats.scp")
    p.add_argument("--natural_scp", required=True, help="the vocoder's dump feats.scp")
    p.add_argument("--wav_scp", default=None, help="write a matching wav.scp too")
    p.add_argument("--out_dir", required=True, help="writes feats.scp, feats_shape, data/")
    p.add_argument("--max_diff", type=int, default=8, help="largest frame difference")
    return p


def main(cmd=None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    align_gta_feats(args.gta_scp, args.natural_scp, args.out_dir, args.max_diff, args.wav_scp)


if __name__ == "__main__":
    main()
