"""Named activations of the conditioning paths (original config values)."""

from keras import ops

_ACTIVATIONS = {
    "identity": lambda x: x,
    "sigmoid": ops.sigmoid,
    "tanh": ops.tanh,
    "relu": ops.relu,
}


def get_activation(name: str):
    """Returns the activation called `name` by the original configs.

    Raises:
      ValueError: naming the accepted values, for a typo in a config.
    """
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"Unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}."
        ) from None


def check_choice(name: str, value, choices) -> None:
    """Raises a ValueError naming `name` when `value` is not one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {list(choices)}.")
