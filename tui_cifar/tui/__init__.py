"""The Textual user interface of cifar-tui (``cifar-tui`` with no arguments).

Import :func:`tui_cifar.tui.app.run_app` to open it, or :class:`tui_cifar.tui.app.CifarApp`
to drive it from tests. Nothing here imports TensorFlow at import time.
"""
