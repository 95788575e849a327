"""ESPnet task for training the WaveNet vocoder with ESPnet's Trainer."""

import argparse
import logging
import math
from typing import Callable, Collection, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.layers.global_mvn import GlobalMVN
from espnet2.tasks.abs_task import AbsTask
from espnet2.train.class_choices import ClassChoices
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import str2bool
from typeguard import typechecked

from espnet_wavenet.data.shaping import Shaping, build_shaping
from espnet_wavenet.distributions import DISTRIBUTIONS
from espnet_wavenet.features import DEFAULT_FEATS_CONF
from espnet_wavenet.models.builder import build_wavenet
from espnet_wavenet.models.wavenet import WaveNet
from espnet_wavenet.train.collate import SegmentCollateFn
from espnet_wavenet.train.espnet_model import ESPnetWaveNetModel
from espnet_wavenet.train.residual_stack import TILE
from espnet_wavenet.train.trainer import WaveNetTrainer, safe_io
from espnet_wavenet.utils.cpu import has_bf16_products

normalize_choices = ClassChoices(
    "normalize",
    classes=dict(global_mvn=GlobalMVN),
    type_check=AbsNormalize,
    default=None,
    optional=True,
)


class WaveNetVocoderTask(AbsTask):
    """Mel-conditioned WaveNet: data ``speech`` (wav.scp, sound) and ``feats``
    (feats.scp, kaldi_ark or npy), optional ``sids`` (utt2sid, text_int)."""

    num_optimizers: int = 1
    class_choices_list = [normalize_choices]
    trainer = WaveNetTrainer

    @classmethod
    @typechecked
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument(
            "--feats_conf",
            action=NestedDictAction,
            default=dict(DEFAULT_FEATS_CONF),
            help="Feature definition (ESPnet LogMelFbank arguments: fs, n_fft, "
            "win_length, hop_length, window, n_mels, fmin, fmax, htk, log_base)",
        )
        group.add_argument(
            "--wavenet_conf",
            action=NestedDictAction,
            default=dict(),
            help="Keyword arguments of espnet_wavenet.models.WaveNet "
            "(aux_channels comes from feats_conf.n_mels)",
        )
        group.add_argument(
            "--distribution",
            type=str,
            default="mulaw",
            choices=sorted(DISTRIBUTIONS),
            help="Output distribution",
        )
        group.add_argument(
            "--distribution_conf",
            action=NestedDictAction,
            default=dict(),
            help="Keyword arguments of the output distribution",
        )
        group.add_argument(
            "--noise_shaping_conf",
            action=NestedDictAction,
            default=dict(),
            help="Shape the quantization noise (espnet_wavenet.data.shaping): "
            "pre_emphasis (e.g. 0.85: train on pre-emphasized audio, de-emphasize "
            "the output) or lpc_order (e.g. 24: train on the LPC excitation from "
            "the mels, all-pole synthesis of the output); highpass_hz (DC "
            "high-pass, default 70)",
        )
        group.add_argument(
            "--segment_frames",
            type=int,
            default=32,
            help="Frames per training segment (samples = frames x hop)",
        )
        group.add_argument(
            "--ema_decay",
            type=float,
            default=0.9999,
            help="Decay of the weights' exponential moving average (0: off)",
        )
        group.add_argument(
            "--train_budget_samples",
            type=float,
            default=None,
            help="Train on this many samples (segments x segment length), "
            "rounded up to whole epochs: sets --max_epoch from --batch_size, "
            "--segment_frames, the hop and --num_iters_per_epoch",
        )
        group.add_argument(
            "--max_nonfinite_steps",
            type=int,
            default=20,
            help="Stop after this many non-finite losses in a row (0: never)",
        )
        group.add_argument(
            "--cpu_bf16",
            type=str,
            default="false",
            help="true: train the network under bf16 autocast on the CPU (validation "
            "stays float32; the layers then run unfused); auto: where the CPU has "
            "bf16 products. Off by default: the fused float32 layers train faster on "
            "the Emerald Rapids Xeon measured, whose bf16 products (no AMX) ran at "
            "half float32's speed; not yet re-measured on Zen 5. On GPUs use ESPnet's "
            "--use_amp",
        )
        group.add_argument(
            "--cpu_micro_batch",
            type=int,
            default=2,
            help="Training on the CPU in one process (--ngpu 0): each batch of "
            "--batch_size segments runs as micro-batches of this many with ESPnet's "
            "--accum_grad (the same gradient, the same steps per epoch: "
            "--num_iters_per_epoch scaled); a smaller step's activations stay in the "
            "CPU's caches (1.9x faster measured). 0: off",
        )
        group.add_argument(
            "--cpu_num_workers",
            type=int,
            default=0,
            help="Training on the CPU (--ngpu 0): data loader worker processes, in place "
            "of --num_workers (which the configs size for GPUs). Workers compete with the "
            "training threads for the cores: on the 2-core Xeon measured, 2 workers made "
            "a step 1.96 s instead of 1.54 s, and loading in the main process took 5 ms "
            "per micro-batch",
        )
        group.add_argument(
            "--compile",
            type=str2bool,
            default=False,
            help="Train the network through torch.compile (CPU and GPU; needs a C++ "
            "compiler on the CPU, Triton on GPUs); the first steps of training and "
            "of validation pay the compilation",
        )
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    @classmethod
    def main_worker(cls, args: argparse.Namespace):
        if getattr(args, "train_budget_samples", None) and not args.collect_stats:
            args.max_epoch = budget_epochs(args)
        split_cpu_batches(args)
        cpu_data_workers(args)
        # --init_param / --resume files are read in here, in every (spawned) rank
        with safe_io():
            super().main_worker(args)
        # ESPnet leaves the process group to interpreter exit, where gloo's
        # threads can be torn down while a peer still talks (std::terminate,
        # exit code -6). Meet, then close it, in every rank.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()

    @classmethod
    def context_frames(cls, args: argparse.Namespace) -> int:
        return int(args.wavenet_conf.get("aux_context_window", 2))

    @classmethod
    @typechecked
    def build_collate_fn(cls, args: argparse.Namespace, train: bool) -> Callable[
        [Collection[Tuple[str, Dict[str, np.ndarray]]]],
        Tuple[List[str], Dict[str, torch.Tensor]],
    ]:
        if getattr(args, "collect_stats", False):
            # Statistics are collected over whole utterances.
            return CommonCollateFn(float_pad_value=0.0, int_pad_value=0)
        return SegmentCollateFn(
            hop=int(args.feats_conf["hop_length"]),
            segment_frames=args.segment_frames,
            context=cls.context_frames(args),
            train=train,
            n_mels=int(args.feats_conf["n_mels"]),
        )

    @classmethod
    @typechecked
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable[[str, Dict[str, np.array]], Dict[str, np.ndarray]]]:
        shaping = build_shaping(getattr(args, "noise_shaping_conf", None), args.feats_conf)
        return ShapeSpeech(shaping) if shaping.enabled else None

    @classmethod
    def required_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ("feats",) if inference else ("speech", "feats")

    @classmethod
    def optional_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ("sids",)

    @classmethod
    @typechecked
    def build_model(cls, args: argparse.Namespace) -> ESPnetWaveNetModel:
        net, dist = build_wavenet(
            args.feats_conf, args.wavenet_conf, args.distribution, args.distribution_conf
        )
        normalize = None
        # Statistics collection runs before the stats file exists.
        if args.normalize is not None and not getattr(args, "collect_stats", False):
            normalize = normalize_choices.get_class(args.normalize)(
                **args.normalize_conf
            )
        use_compile = bool(getattr(args, "compile", False)) and not getattr(
            args, "collect_stats", False
        )
        model = ESPnetWaveNetModel(
            net,
            dist,
            normalize,
            ema_decay=args.ema_decay,
            max_nonfinite_steps=args.max_nonfinite_steps,
            cpu_bf16=cpu_bf16_enabled(getattr(args, "cpu_bf16", False)),
            compile=use_compile,
        )
        if getattr(args, "train_budget_samples", None):
            logging.info("--train_budget_samples %.4g: --max_epoch %d",
                         args.train_budget_samples, args.max_epoch)
        if getattr(args, "cpu_micro_batch_split", None):
            logging.info("--cpu_micro_batch: batches of %d segments as %d micro-batches of %d "
                         "(--batch_size %d --accum_grad %d --num_iters_per_epoch %s)",
                         *args.cpu_micro_batch_split, args.batch_size, args.accum_grad,
                         args.num_iters_per_epoch)
        if getattr(args, "cpu_num_workers_replaced", None) is not None:
            logging.info("--cpu_num_workers: %d data loader workers, not --num_workers %d "
                         "(on the CPU they compete with training for the cores)",
                         args.num_workers, args.cpu_num_workers_replaced)
        if args.ngpu == 0:
            logging.info("CPU float training: %s", stack_kernel_use(net))
        logging.info(
            "WaveNet: %d parameters, receptive field %d samples%s",
            sum(p.numel() for p in net.parameters()),
            net.receptive_field,
            ", through torch.compile" if use_compile else "",
        )
        return model


def cpu_bf16_enabled(value: Union[bool, str]) -> bool:
    """``--cpu_bf16`` (true / false / auto; a config may hold a bool) as a decision."""
    if isinstance(value, str) and value.lower() == "auto":
        enabled = has_bf16_products()
        logging.info("--cpu_bf16 auto: CPU training in %s (%s bf16 products)",
                     "bf16 autocast" if enabled else "float32",
                     "the CPU has" if enabled else "no")
        return enabled
    return value if isinstance(value, bool) else str2bool(value)


def split_cpu_batches(args: argparse.Namespace) -> None:
    """``--cpu_micro_batch``: rewrite the batch options of single-process CPU
    training into micro-batches with gradient accumulation (before ESPnet builds
    its iterators and writes config.yaml, which then holds what ran)."""
    micro = int(getattr(args, "cpu_micro_batch", 0) or 0)
    args.cpu_micro_batch_split = None
    if (
        micro <= 0 or args.ngpu > 0 or args.collect_stats
        or getattr(args, "distributed", False) or args.batch_type != "unsorted"
        or args.batch_size <= micro or args.batch_size % micro != 0
    ):
        return
    factor = args.batch_size // micro
    args.cpu_micro_batch_split = (args.batch_size, factor, micro)
    if args.valid_batch_size is None:  # validation has no backward pass to split
        args.valid_batch_size = args.batch_size
    args.batch_size = micro
    args.accum_grad = args.accum_grad * factor
    if args.num_iters_per_epoch:
        args.num_iters_per_epoch *= factor


def stack_kernel_use(net: WaveNet) -> str:
    """What CPU float training runs the residual stack with, in words."""
    if net.stack_kernel is None:
        return "torch ops (no compiled kernel)"
    if net.stack_kernel_for(TILE) is None:  # the network's sizes, at a segment it takes
        hop = "" if net.upsample is None else " and a hop in multiples of 16"
        return ("torch ops: the compiled stack takes kernel size 2, residual and skip "
                "channels in multiples of 16, gate channels in multiples of 64" + hop)
    return "the compiled kernel's residual stack (segments of a multiple of 64 samples)"


def cpu_data_workers(args: argparse.Namespace) -> None:
    """``--cpu_num_workers``: CPU training's data loader workers (before ESPnet
    writes config.yaml, which then holds what ran)."""
    workers = getattr(args, "cpu_num_workers", None)
    args.cpu_num_workers_replaced = None
    if workers is None or args.ngpu > 0 or args.collect_stats or workers == args.num_workers:
        return
    # logged by build_model: a log line now would set up logging before ESPnet does
    args.cpu_num_workers_replaced = args.num_workers
    args.num_workers = workers


def budget_epochs(args: argparse.Namespace) -> int:
    """Epochs that train on ``--train_budget_samples`` samples (at least that many)."""
    if not args.num_iters_per_epoch or args.batch_type != "unsorted":
        raise ValueError(
            "--train_budget_samples needs --num_iters_per_epoch and "
            "--batch_type unsorted (a fixed number of segments per step)"
        )
    per_epoch = (
        args.num_iters_per_epoch * args.batch_size
        * args.segment_frames * int(args.feats_conf["hop_length"])
    )
    # No logging here: main_worker calls this before ESPnet configures logging,
    # and a root logging call then would silence ESPnet's INFO lines.
    return max(1, math.ceil(args.train_budget_samples / per_epoch))


class ShapeSpeech:
    """Preprocessing of each utterance: ``speech`` -> its noise-shaped target.

    Whole utterances are filtered (in the data loader's workers), so a segment
    cut later has the true filter history at its first sample.
    """

    def __init__(self, shaping: Shaping):
        self.shaping = shaping

    def __call__(self, uid: str, data: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        if "speech" in data:
            try:
                speech = self.shaping.analysis(data["speech"], data.get("feats"))
            except ValueError as e:
                raise ValueError(f"utterance {uid}: {e}") from e
            data = dict(data, speech=speech)
        return data
