"""Training: a minimal in-memory SVI loop (:func:`fit`) and the Lightning engine behind ``scripts/train.py``.

The engine (:mod:`pyro_dssm.training.engine`) imports Lightning, so it is loaded
on first use: ``from pyro_dssm.training import train, DSSMTask``.
"""

from .loop import fit, negative_elbo_per_step

__all__ = ["fit", "negative_elbo_per_step", "train", "load_run", "training_history", "evaluate_split", "DSSMTask",
           "SequenceDataModule", "AtomicCheckpointIO", "build_corpus", "build_model_and_guide", "load_run_config",
           "resume_run"]

_ENGINE = {"train", "load_run", "open_run", "training_history", "evaluate_split", "DSSMTask", "SequenceDataModule",
           "AtomicCheckpointIO", "build_corpus", "build_model_and_guide", "check_checkpoint", "load_weights",
           "make_trainer", "load_run_config", "resume_run"}


def __getattr__(name):
    if name in _ENGINE:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
