"""Running the gateway: settings discovery, the app factory, worker processes, the CLI and the
demo.
"""
