"""Which variable of the original ColTran each of our variables is.

The original's checkpoints are keyed by Keras-2 variable names, several of
them global auto-names (`dense_17`, `self_attention_nd_3`,
`conditional_layer_norm_5`) whose numbers depend on how many layers the
process had built before (Keras 2 numbers layers globally). Both sides are therefore put in
a canonical form in which every auto-numbered component is replaced by its
rank among its siblings of the same kind: `dense_14` -> `dense#8` when it is
the ninth numbered `dense` under the same parent. Explicitly named layers
(`mask_col_att_0`, `affine_r_1`, `auto_logits`) keep their names.

`reference_slots(model)` lists (canonical name, our variable) for a model in
the original's construction order; `canonical_names(names)` converts the
original's names.
"""

import re
from collections import defaultdict

from coltran_tf.configs import stages

AUTO_BASES = (
    "dense", "self_attention_nd", "layer_normalization", "conditional_layer_norm",
    "position_embed", "factorized_attention", "gray_scale_encoder",
    *(stage.reference_scope for stage in stages.STAGES),
)
_AUTO = re.compile(rf"^({'|'.join(AUTO_BASES)})(?:_(\d+))?$")
MODEL_SCOPES = {stage.model_name: stage.reference_scope for stage in stages.STAGES}


def canonical_names(names):
    """Maps original variable names ('a/b_3/kernel', no ':0') to canonical ones."""
    numbers = defaultdict(set)  # (parent path, base) -> numbers seen
    split = [name.split("/") for name in names]
    for parts in split:
        for i, part in enumerate(parts[:-1]):
            match = _AUTO.match(part)
            if match:
                numbers["/".join(parts[:i]), match.group(1)].add(int(match.group(2) or 0))
    ranks = {key: {n: r for r, n in enumerate(sorted(nums))} for key, nums in numbers.items()}
    result = {}
    for name, parts in zip(names, split):
        canonical = []
        for i, part in enumerate(parts):
            match = _AUTO.match(part) if i < len(parts) - 1 else None
            if match:
                rank = ranks["/".join(parts[:i]), match.group(1)][int(match.group(2) or 0)]
                part = f"{match.group(1)}#{rank}"
            canonical.append(part)
        result[name] = "/".join(canonical)
    return result


class _Slots:
    """Collects (canonical name, variable) pairs; root-level FFN denses apart."""

    def __init__(self):
        self.named = []
        self.ffn = []  # FeedForward layers, in the original's construction order

    def add(self, name, variable):
        self.named.append((name, variable))

    def dense(self, prefix, layer, use_bias=True):
        self.add(f"{prefix}/kernel", layer.kernel)
        if use_bias:
            self.add(f"{prefix}/bias", layer.bias)

    def layer_norm(self, prefix, layer):
        self.add(f"{prefix}/gamma", layer.gamma)
        self.add(f"{prefix}/beta", layer.beta)

    def position_embedding(self, prefix, layer):
        self.add(f"{prefix}/position_embed#0/position_embedding_0", layer.row_embedding)
        self.add(f"{prefix}/position_embed#0/position_embedding_1", layer.column_embedding)

    def attention(self, prefix, layer):
        for which in ("q", "k", "v"):
            self.add(f"{prefix}/{which}/kernel", getattr(layer, which).kernel)
        self.add(f"{prefix}/output/kernel", layer.output_projection.kernel)
        axis = 1 if layer.axis == "row" else 0
        self.add(f"{prefix}/relative_attention_bias_{axis}", layer.relative_bias)
        for which in layer.conditioned:
            self.add(f"{prefix}/cond_{which}/kernel",
                     getattr(layer, f"cond_{which}_projection").kernel)

    def encoder(self, prefix, encoder):
        """The original FactorizedAttention under `prefix`."""
        self.position_embedding(prefix, encoder.position_embedding)
        norms = []
        for i, layer in enumerate(encoder.encoder_layers):
            self.attention(f"{prefix}/self_attention_nd#{2 * i}", layer.row_attention)
            self.ffn.append(layer.row_mlp)
            self.attention(f"{prefix}/self_attention_nd#{2 * i + 1}", layer.column_attention)
            self.ffn.append(layer.column_mlp)
            norms += [layer.row_attention_residual, layer.row_mlp_residual,
                      layer.column_attention_residual, layer.column_mlp_residual]
        for j, residual in enumerate(norms):
            self.layer_norm(f"{prefix}/layer_normalization#{j}", residual.norm)

    def decoder(self, prefix, decoder, attention_names, mlp_names):
        """OuterDecoder or InnerDecoder; names per block position within a layer."""
        self.position_embedding(prefix, decoder.position_embedding)
        per_layer = len(attention_names) + len(mlp_names)
        for b, block in enumerate(decoder.blocks):
            layer_index, position = divmod(b, per_layer)
            if hasattr(block, "attention"):
                name = attention_names[position // 2]
                self.attention(f"{prefix}/{name}_{layer_index}", block.attention)
            else:
                mlp = block.mlp
                if block.is_conditional:
                    self.ffn.append(mlp.mlp)
                    mode = block.conditioning["cond_mlp"]
                    name = f"{mode}_{mlp_names[position // 2]}_{layer_index}"
                    self.dense(f"{prefix}/{name}", mlp.cond)
                else:
                    self.ffn.append(mlp)
            self._decoder_norm(prefix, b, block.residual)

    def _decoder_norm(self, prefix, index, residual):
        norm = residual.norm
        if not residual.conditional:
            self.layer_norm(f"{prefix}/layer_normalization#{index}", norm)
            return
        cln = f"{prefix}/conditional_layer_norm#{index}"
        if norm.spatial_average == "learnable":
            self.add(f"{cln}/spatial_average", norm.spatial_weights)
        self.dense(f"{cln}/dense#0", norm.dense)
        self.layer_norm(f"{cln}/normalize", norm.normalize)

    def finish(self):
        """All pairs, with the un-scoped FFN denses numbered in order."""
        pairs = list(self.named)
        for i, ffn in enumerate(self.ffn):
            pairs.append((f"dense#{2 * i}/kernel", ffn.expand.kernel))
            pairs.append((f"dense#{2 * i}/bias", ffn.expand.bias))
            pairs.append((f"dense#{2 * i + 1}/kernel", ffn.project.kernel))
            pairs.append((f"dense#{2 * i + 1}/bias", ffn.project.bias))
        return pairs


def _colorizer_slots(model, slots):
    root = "col_tran_core#0"
    slots.dense(f"{root}/dense#0", model.pixel_embedding, use_bias=False)
    encoder = f"{root}/gray_scale_encoder#0"
    slots.dense(f"{encoder}/dense#0", model.gray_embedding)
    slots.encoder(f"{encoder}/factorized_attention#0", model.encoder)
    if model.has_parallel_head:
        slots.dense(f"{root}/parallel_logits", model.parallel_logits, use_bias=False)
    slots.decoder(f"{root}/outer_decoder", model.outer_decoder,
                  ("unmask_row_att", "mask_col_att"), ("r", "c"))
    slots.decoder(f"{root}/inner_decoder", model.inner_decoder, ("mask_row_att",), ("c",))
    slots.dense(f"{root}/auto_logits", model.auto_logits)
    slots.layer_norm(f"{root}/layer_normalization#0", model.final_norm)


def _upsampler_slots(model, slots, scope):
    root = f"{scope}#0"
    slots.dense(f"{root}/dense#0", model.channel_embedding, use_bias=False)
    slots.dense(f"{root}/dense#1", model.gray_embedding, use_bias=False)
    slots.dense(f"{root}/dense#2", model.input_dense)
    slots.dense(f"{root}/dense#3", model.final_dense)
    slots.encoder(f"{root}/factorized_attention#0", model.encoder)


def reference_slots(model):
    """[(canonical original name, our variable)] for a built ColTran model."""
    from coltran_tf.models import ColorUpsampler, ColTranCore, SpatialUpsampler

    slots = _Slots()
    if isinstance(model, ColTranCore):
        _colorizer_slots(model, slots)
    elif isinstance(model, ColorUpsampler):
        _upsampler_slots(model, slots, "color_upsampler")
    elif isinstance(model, SpatialUpsampler):
        _upsampler_slots(model, slots, "spatial_upsampler")
    else:
        raise TypeError(f"No reference layout for {type(model).__name__}.")
    return slots.finish()
