"""cifar-tui: transfer learning on CIFAR-10 from the terminal, and a monitor for any Keras run.

``from tui_cifar import RunLogger`` is the public Keras callback. It is exported
lazily, so importing the package (the CLI's --help, the app) loads no TensorFlow.
"""

__all__ = ["RunLogger"]


def __getattr__(name: str):
    if name == "RunLogger":
        from .runs.logger import RunLogger

        return RunLogger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
