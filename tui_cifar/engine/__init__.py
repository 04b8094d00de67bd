"""Training and using a model: data, backbones, the model, features, training, forward passes, devices.

Modules that need Keras import it at the top; the CLI and the app import them inside functions only, so
`cifar-tui --help` and the app's first frame load no TensorFlow.
"""
