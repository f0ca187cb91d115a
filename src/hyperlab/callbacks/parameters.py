"""Track small parameters epoch by epoch: the course's "watch the gradient and intercept converge" plot."""

import lightning as L


class ParameterTracker(L.Callback):
    """Logs every parameter tensor of at most `max_numel` elements as `params/<name>[.<i>]` after each epoch."""

    def __init__(self, max_numel: int) -> None:
        self.max_numel = max_numel

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for name, parameter in pl_module.net.named_parameters():
            if parameter.numel() > self.max_numel:
                continue
            values = parameter.detach().flatten()
            if len(values) == 1:
                pl_module.log(f"params/{name}", values[0])
            else:
                for i, value in enumerate(values):
                    pl_module.log(f"params/{name}.{i}", value)
