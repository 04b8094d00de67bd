"""The run folder: its files' contract (store, records), its readers and what is derived from them.

No Textual here, and no TensorFlow but in `logger` (RunLogger, a Keras callback) and `tbexport`'s writer:
the app, the CLI and a foreign machine read runs through it.
"""
