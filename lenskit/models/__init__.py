"""Models: loading hooked models, the map of prunable sites, exact reversible masks."""

from lenskit.models.architectures import (
    ARCHITECTURES,
    ATTN_COMPONENTS,
    COMPONENTS,
    FAMILIES,
    MLP_COMPONENTS,
    ArchitectureSpec,
    ComponentSpec,
    architecture_for,
)
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
    check_sparsity,
    parse_site_name,
    pruned,
    restore,
)
from lenskit.models.sites import Binding, Selection, Site, SiteSelection, select_sites
from lenskit.models.tiny import TINY_FAMILIES, make_tiny_model

__all__ = [
    "ARCHITECTURES",
    "ATTN_COMPONENTS",
    "COMPONENTS",
    "FAMILIES",
    "MLP_COMPONENTS",
    "TINY_FAMILIES",
    "ArchitectureSpec",
    "Binding",
    "ComponentSpec",
    "LoadedModel",
    "MaskSet",
    "ModelLoadError",
    "Selection",
    "Site",
    "SiteSelection",
    "apply_masks",
    "architecture_for",
    "check_consistency",
    "check_sparsity",
    "describe",
    "hf_model",
    "load_model",
    "make_tiny_model",
    "model_info",
    "organism_path",
    "parse_site_name",
    "pruned",
    "restore",
    "select_sites",
    "sites",
]
