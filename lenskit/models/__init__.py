"""Models: loading hooked models, the map of prunable sites, exact reversible masks, and the
calibration source a model directory declares."""

from lenskit.models.architectures import (
    ARCHITECTURES,
    ATTN_COMPONENTS,
    COMPONENTS,
    FAMILIES,
    MLP_COMPONENTS,
    ArchitectureSpec,
    ComponentSpec,
    architecture_for,
    register_architecture,
)
from lenskit.models.devices import (
    DTYPES,
    OutOfMemoryError,
    memory_error,
    oom_hint,
    parse_dtype,
    resolve_device,
)
from lenskit.models.families import family_table
from lenskit.models.loading import (
    LoadedModel,
    ModelLoadError,
    describe,
    hf_model,
    load_model,
    model_info,
    organism_path,
    sites,
)
from lenskit.models.masks import (
    MaskSet,
    apply_masks,
    check_consistency,
    check_masks,
    check_sparsity,
    offload,
    parse_site_name,
    pruned,
    restore,
)
from lenskit.models.organisms import (
    dense_siblings,
    install_family,
    organism_width,
    shipped_organisms,
)
from lenskit.models.sites import Binding, Selection, Site, SiteSelection, select_sites
from lenskit.models.sources import declared_calibration_source, register_calibration_source
from lenskit.models.tiny import FAMILY_CONFIGS, TINY_FAMILIES, make_tiny_model

__all__ = [
    "ARCHITECTURES",
    "ATTN_COMPONENTS",
    "COMPONENTS",
    "DTYPES",
    "FAMILIES",
    "FAMILY_CONFIGS",
    "MLP_COMPONENTS",
    "TINY_FAMILIES",
    "ArchitectureSpec",
    "Binding",
    "ComponentSpec",
    "LoadedModel",
    "MaskSet",
    "ModelLoadError",
    "OutOfMemoryError",
    "Selection",
    "Site",
    "SiteSelection",
    "apply_masks",
    "architecture_for",
    "check_consistency",
    "check_masks",
    "check_sparsity",
    "declared_calibration_source",
    "dense_siblings",
    "describe",
    "family_table",
    "hf_model",
    "install_family",
    "load_model",
    "make_tiny_model",
    "memory_error",
    "model_info",
    "offload",
    "oom_hint",
    "organism_path",
    "organism_width",
    "parse_dtype",
    "parse_site_name",
    "pruned",
    "register_architecture",
    "register_calibration_source",
    "resolve_device",
    "restore",
    "select_sites",
    "shipped_organisms",
    "sites",
]
