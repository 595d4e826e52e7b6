"""The web app (Dash on Flask), the `custseg` command line and the background jobs' entry points.

Import `webapp.app.create_app` for the app; this package's import stays light so that the CLI
starts fast.
"""
