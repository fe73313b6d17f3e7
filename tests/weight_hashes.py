"""Bitwise fingerprints of a model's weights, shared by the tests that check exact restores."""

import hashlib

from lenskit.models import model_info


def weights_hash(model) -> str:
    """SHA-256 of every parameter of the plain HF model and of the bridge (its views and,
    for GPT-NeoX, its own split q/k/v copies), bit for bit."""
    h = hashlib.sha256()
    for source in (model_info(model).hf.state_dict(), model.state_dict()):
        for name, p in sorted(source.items()):
            h.update(name.encode())
            h.update(p.detach().contiguous().numpy().tobytes())
    return h.hexdigest()
