"""Discovery of vocoders registered under the ``espnet.vocoders`` entry-point group.

The contract, for any package (this one included) that wants ESPnet TTS to use
its vocoder through :mod:`espnet_wavenet.integration`:

1. Declare an entry point in the group ``espnet.vocoders`` of the package's own
   metadata, e.g. in ``setup.py``::

       entry_points={"espnet.vocoders": ["myvoc = my_pkg.vocoder:MyVocoder"]}

   or in ``pyproject.toml``::

       [project.entry-points."espnet.vocoders"]
       myvoc = "my_pkg.vocoder:MyVocoder"

2. The object it names (usually a class) offers
   ``from_pretrained(path, device="cpu") -> vocoder``, where ``path`` is the
   packed model directory.
3. The vocoder is a ``torch.nn.Module`` (or any callable) with an ``fs``
   attribute; ``vocoder(feats)`` takes **denormalized** log-mel features
   ``(T_feats, n_mels)`` (ESPnet's ``feat_gen_denorm``) and returns a 1-D float
   waveform in [-1, 1]. It applies its own normalization, if any.
4. Optional: a ``feats_conf`` dict on the vocoder (keys of
   :data:`espnet_wavenet.features.FEATS_FIELDS`) lets the hook check it against
   the TTS model's features; ``mean``/``std`` tensors describe its normalization.
5. Optional: a classmethod ``accepts(path) -> bool`` lets the hook recognise the
   package's packed directories without being told the name. A packed
   ``config.yaml`` may also name its vocoder with a top-level ``vocoder_type:
   <entry-point name>`` field, and ``--vocoder_file <name>:<path>`` names it
   explicitly.

Nothing in this package has to change for a second package to register.
"""

import logging
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

GROUP = "espnet.vocoders"
PACKED_CONFIG = "config.yaml"
# The field a packed config.yaml may carry to name its entry point.
TYPE_FIELD = "vocoder_type"


def _entry_points() -> List[metadata.EntryPoint]:
    return list(metadata.entry_points(group=GROUP))


def list_vocoders() -> Dict[str, str]:
    """Registered name -> ``module:attr`` for every installed distribution.

    When two distributions register the same name, the first one found wins and
    a warning names both.
    """
    found: Dict[str, str] = {}
    for ep in _entry_points():
        if ep.name in found and found[ep.name] != ep.value:
            logging.warning(
                "vocoder %r is registered twice (%s and %s); using the first",
                ep.name,
                found[ep.name],
                ep.value,
            )
            continue
        found[ep.name] = ep.value
    return found


def get_vocoder_class(name: str) -> Any:
    """Load the object registered as ``name`` and check it offers from_pretrained."""
    for ep in _entry_points():
        if ep.name == name:
            try:
                obj = ep.load()
            except Exception as e:  # noqa: BLE001 - re-raised with the entry point
                raise ImportError(
                    f"vocoder {name!r} ({ep.value}) failed to import: {e}"
                ) from e
            if not callable(getattr(obj, "from_pretrained", None)):
                raise TypeError(
                    f"vocoder {name!r} ({ep.value}) has no from_pretrained(path)"
                )
            return obj
    raise KeyError(
        f"no vocoder named {name!r} in entry-point group {GROUP!r}; "
        f"registered: {sorted(list_vocoders())}"
    )


def build_vocoder(
    name: str, model_path: Union[str, Path], device: str = "cpu", **kwargs: Any
) -> Any:
    """Build the registered vocoder ``name`` from its packed model path."""
    cls = get_vocoder_class(name)
    logging.info("building vocoder %r from %s", name, model_path)
    return cls.from_pretrained(str(model_path), device=device, **kwargs)


def packed_dir(path: Union[str, Path]) -> Optional[Path]:
    """The packed model directory for a directory or a file inside one.

    ``exp/pack``, ``exp/pack/model.pth`` and ``exp/pack/config.yaml`` all give
    ``exp/pack`` when it holds a ``config.yaml``; anything else gives None.
    """
    p = Path(path)
    if p.is_dir():
        return p if (p / PACKED_CONFIG).is_file() else None
    if p.is_file() and (p.parent / PACKED_CONFIG).is_file():
        return p.parent
    return None


def _read_packed_config(model_dir: Path) -> Dict[str, Any]:
    try:
        with open(model_dir / PACKED_CONFIG, encoding="utf-8") as f:
            conf = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        logging.debug("%s: unreadable config (%s)", model_dir, e)
        return {}
    return conf if isinstance(conf, dict) else {}


def _looks_like_wavenet(conf: Dict[str, Any]) -> bool:
    # Packs written by espnet_wavenet carry these two sections.
    return "wavenet_conf" in conf and "feats_conf" in conf


def split_named_path(vocoder_file: Union[str, Path]) -> tuple:
    """``"name:path"`` -> ``(name, path)`` when name is registered, else ``(None, path)``."""
    s = str(vocoder_file)
    if ":" in s:
        name, rest = s.split(":", 1)
        if name in list_vocoders() and Path(rest).exists():
            return name, rest
    return None, s


def resolve(vocoder_file: Union[str, Path]) -> Optional[tuple]:
    """Which registered vocoder handles ``vocoder_file``: ``(name, model_dir)`` or None.

    ``*.pkl`` files are always left to ESPnet (Parallel WaveGAN) unless named.
    Order: an explicit ``name:path``; the packed config's ``vocoder_type``; a
    config written by espnet_wavenet (``wavenet``); then each registered class's
    optional ``accepts(path)``. None leaves the file to ESPnet.
    """
    name, path = split_named_path(vocoder_file)
    model_dir = packed_dir(path)
    if name is not None:
        return name, model_dir or Path(path)
    if model_dir is None or path.endswith(".pkl"):
        # *.pkl stays ESPnet's (Parallel WaveGAN), wherever it lies.
        return None
    conf = _read_packed_config(model_dir)
    named = conf.get(TYPE_FIELD)
    if isinstance(named, str):
        if named not in list_vocoders():
            raise KeyError(
                f"{model_dir / PACKED_CONFIG}: {TYPE_FIELD} {named!r} is not registered; "
                f"registered: {sorted(list_vocoders())}"
            )
        return named, model_dir
    if _looks_like_wavenet(conf) and "wavenet" in list_vocoders():
        return "wavenet", model_dir
    for ep_name in list_vocoders():
        try:
            cls = get_vocoder_class(ep_name)
        except (ImportError, TypeError) as e:
            logging.warning("skipping vocoder %r: %s", ep_name, e)
            continue
        accepts = getattr(cls, "accepts", None)
        if callable(accepts) and accepts(str(model_dir)):
            return ep_name, model_dir
    return None
