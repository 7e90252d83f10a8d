"""The decoder's conditioning switches, with the original config key names.

They are passed around as one plain dict so that every decoder layer takes the
same, validated options; `resolve_conditioning` fills defaults (the paper's
ColTran) and rejects unknown keys, so a typo in a config is an error.
"""

CONDITIONING_DEFAULTS = {
    "cond_mlp": "affine",  # "affine", "shift" or "" (none)
    "cond_mlp_act": "identity",
    "cond_ln": True,
    "cond_ln_act": "identity",
    "cond_ln_seq": "sc",
    "cond_ln_sp_ave": "learnable",
    "cond_ln_init": "glorot_uniform",
    "cond_att_act": "identity",
    "cond_att_q": True,
    "cond_att_k": True,
    "cond_att_v": True,
    "cond_att_scale": True,
    "cond_att_init": "glorot_uniform",
}

# ColTran-B (Kumar et al. 2021, Sec. 5.2): conditioning by addition only.
BASELINE_CONDITIONING = {
    "cond_mlp": "", "cond_ln": False,
    "cond_att_q": False, "cond_att_k": False, "cond_att_v": False,
}

_NO_COND_MLP = ("", "none", None)


def resolve_conditioning(options: dict | None = None) -> dict:
    """Returns the full, validated set of conditioning switches."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(CONDITIONING_DEFAULTS))
    if unknown:
        raise ValueError(
            f"Unknown decoder conditioning option(s) {unknown}; "
            f"valid keys are {sorted(CONDITIONING_DEFAULTS)}."
        )
    resolved = {**CONDITIONING_DEFAULTS, **options}
    if resolved["cond_mlp"] in _NO_COND_MLP:
        resolved["cond_mlp"] = ""
    for key in ("cond_ln", "cond_att_q", "cond_att_k", "cond_att_v", "cond_att_scale"):
        resolved[key] = bool(resolved[key])
    return resolved


def cond_ln_kwargs(conditioning: dict) -> dict:
    """ConditionalLayerNorm options from the conditioning switches."""
    return {
        "spatial_average": conditioning["cond_ln_sp_ave"],
        "sequence": conditioning["cond_ln_seq"],
        "out_init": conditioning["cond_ln_init"],
        "out_act": conditioning["cond_ln_act"],
    }


def cond_att_kwargs(conditioning: dict) -> dict:
    """AxialAttention conditioning options from the conditioning switches."""
    return {
        "cond_q": conditioning["cond_att_q"],
        "cond_k": conditioning["cond_att_k"],
        "cond_v": conditioning["cond_att_v"],
        "cond_scale": conditioning["cond_att_scale"],
        "cond_act": conditioning["cond_att_act"],
        "cond_init": conditioning["cond_att_init"],
    }
