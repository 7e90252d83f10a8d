"""The original's optimizers and Polyak averaging (RMSprop at 3e-4 with the Keras 2
update; an exponential moving average of the weights with decay 0.999)."""

import keras
import tensorflow as tf
from keras import ops


class OriginalRMSprop(keras.optimizers.RMSprop):
    """RMSprop as Keras 2 applied it: var -= lr * g / (sqrt(ms) + epsilon).

    Keras 3's RMSprop puts epsilon inside the square root; the original ColTran
    trained with the Keras 2 update (momentum 0, not centered), reproduced here.
    """

    def __init__(self, learning_rate: float = 3e-4, rho: float = 0.9, epsilon: float = 1e-7,
                 name: str = "rmsprop", **kwargs):
        super().__init__(learning_rate=learning_rate, rho=rho, momentum=0.0, epsilon=epsilon,
                         centered=False, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        # Sparse (embedding) gradients are densified: Keras 2's sparse update
        # decayed every row too, so the result is the same.
        gradient = ops.cast(tf.convert_to_tensor(gradient), variable.dtype)
        velocity = self._velocities[self._get_variable_index(variable)]
        self.assign(velocity, self.rho * velocity + (1 - self.rho) * ops.square(gradient))
        self.assign_sub(variable, lr * gradient / (ops.sqrt(velocity) + self.epsilon))


def build_optimizer(optimizer_config) -> keras.optimizers.Optimizer:
    """config.optimizer {type: rmsprop|adam, learning_rate} -> a Keras optimizer."""
    kind, lr = optimizer_config.type, float(optimizer_config.learning_rate)
    if kind == "rmsprop":
        return OriginalRMSprop(learning_rate=lr)
    if kind == "adam":
        return keras.optimizers.Adam(learning_rate=lr, name="adam")
    raise ValueError(f"config.optimizer.type={kind!r} is not supported; use 'rmsprop' "
                     "(the paper's) or 'adam'.")


class PolyakAverage(tf.Module):
    """Exponential moving average of variables, as `tf.train.ExponentialMovingAverage`.

    shadow <- decay * shadow + (1 - decay) * value after every step, with the
    shadows starting from the variables' initial values (no zero-debiasing, no
    num_updates), which is what the original averaged and evaluated.
    Create it under the distribution strategy's scope.
    """

    def __init__(self, variables, decay: float = 0.999, name: str = "ema"):
        super().__init__(name=name)
        self.decay = float(decay)
        self._sources = list(variables)
        self.shadows = [
            tf.Variable(tf.identity(_tf_value(v)), trainable=False,
                        name=v.path.replace("/", "_") + "_ema",
                        synchronization=tf.VariableSynchronization.ON_WRITE,
                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            for v in self._sources
        ]

    def update(self) -> None:
        """Call in replica context after the optimizer step (one merge call)."""
        context = tf.distribute.get_replica_context()
        if context is None:
            self._apply(tf.distribute.get_strategy())
        else:
            context.merge_call(self._apply)

    def _apply(self, strategy) -> None:
        decay = self.decay
        for shadow, source in zip(self.shadows, self._sources):
            strategy.extended.update(
                shadow, lambda s, v: s.assign(decay * s + (1.0 - decay) * v),
                args=(_tf_value(source),), group=False)

    def copy_to(self, variables) -> None:
        """Assigns the averages to `variables` (e.g. the model, for eval/export)."""
        for shadow, variable in zip(self.shadows, variables):
            variable.assign(shadow.read_value() if hasattr(shadow, "read_value") else shadow)


def _tf_value(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable
