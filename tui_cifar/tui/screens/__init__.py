"""The app's screens, one module (and one stylesheet) each, plus the shared base and dialogs."""
