"""lenskit: layer-wise ablation studies of language models.

Prune attention and FFW weights separately, per layer and component, exactly and
reversibly; measure fact recall against in-context learning; relate where sparsity falls to
what breaks. The whole public API is importable from here.
"""

from lenskit.models import (
    ARCHITECTURES,
    COMPONENTS,
    FAMILIES,
    LoadedModel,
    MaskSet,
    ModelLoadError,
    Selection,
    Site,
    SiteSelection,
    apply_masks,
    check_consistency,
    hf_model,
    load_model,
    make_tiny_model,
    model_info,
    pruned,
    restore,
    sites,
)

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "COMPONENTS",
    "FAMILIES",
    "LoadedModel",
    "MaskSet",
    "ModelLoadError",
    "Selection",
    "Site",
    "SiteSelection",
    "__version__",
    "apply_masks",
    "check_consistency",
    "hf_model",
    "load_model",
    "make_tiny_model",
    "model_info",
    "pruned",
    "restore",
    "sites",
]
