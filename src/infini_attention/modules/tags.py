"""Parameter tags: what the optimizer and the initialiser need to know about a parameter, set where it is made.

    self.beta = nn.Parameter(...)
    tag(self, "beta", init=("constant", 0.0), lr="gate", decay=False)

- init: "zeros", ("constant", value), or None (the model's default for its shape);
- lr: the name of an optimizer group with its own learning rate ("gate", "sharpness"), or None;
- decay: False for parameters that weight decay must not pull towards zero.

Tags are kept on the module under the parameter's name, not on the tensor, so that they survive
whatever replaces parameter objects (transformers' meta-device loading does). `parameter_tags(model)`
gives them for a whole model, keyed by parameter; the trainer (parameter_groups) and the
initialisers (InfiniTransformer.init_weights, the Hugging Face conversion) read them instead of
recognising parameters by their names.
"""

from __future__ import annotations

from torch import nn

_ATTR = "_infini_tags"


def tag(module: nn.Module, name: str, **tags) -> None:
    unknown = set(tags) - {"init", "lr", "decay"}
    if unknown:
        raise ValueError(f"unknown parameter tags {sorted(unknown)}: expected init, lr, decay")
    table = module.__dict__.setdefault(_ATTR, {})
    table[name] = {**table.get(name, {}), **tags}


def module_tags(module: nn.Module) -> dict[str, dict]:
    """This module's own tags: parameter name (local) -> tags."""
    return module.__dict__.get(_ATTR, {})


def parameter_tags(model: nn.Module) -> dict[int, dict]:
    """id(parameter) -> its tags, for every tagged parameter of `model`."""
    out = {}
    for module in model.modules():
        for name, tags in module_tags(module).items():
            p = getattr(module, name, None)
            if isinstance(p, nn.Parameter):
                out[id(p)] = tags
    return out
